"""Fine-tuning on a recorded rosbag2 through the real `training/train.py` path, from a checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import yaml

from selfdc_core.data.rosbag import write_synthetic_bag
from selfdc_core.model_io import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _model_overrides(checkpoint: Path) -> list[str]:
    """model.* overrides matching the checkpoint's architecture (the config must match `init`)."""
    config = load_checkpoint(checkpoint, map_location="cpu")["model_config"]
    keys = ("backbone", "num_classes", "prop_iterations")
    return [f"model.{k}={config[k]}" for k in keys if k in config]


def _train(tmp_path, bag, init, out, extra=()) -> subprocess.CompletedProcess:
    overrides = [
        f"bag={bag}", f"init={init}", f"train.out_dir={out}",
        "train.max_steps=3", "train.batch_size=2", "train.workers=0", "train.progress=false",
        "train.amp=false", "train.log_every=1", "train.device=cpu",
    ]
    for split in ("train", "val"):
        overrides += [f"data.{split}.cache_root={tmp_path / 'cache'}", f"data.{split}.val_fraction=0.25"]
    masks = tmp_path / "masks"
    overrides += [f"data.val.segments_root={masks}", f"segmentation.cache_root={masks}"]
    return subprocess.run(
        [sys.executable, "training/train.py", "--config", "config/finetune_rosbag.yaml", *overrides, *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_finetune_from_checkpoint_through_train_py(tmp_path, synthetic_checkpoint):
    bag = write_synthetic_bag(tmp_path / "field_bag", 12, storage="mcap", environment="warehouse",
                              height=64, width=80, lidar_beams=16)
    out = tmp_path / "run"
    proc = _train(tmp_path, bag.path, synthetic_checkpoint, out, _model_overrides(synthetic_checkpoint))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"initialised model weights from {synthetic_checkpoint}" in proc.stdout
    # Held-out end of the bag: self-supervised losses, and GT metrics since this bag carries GT.
    validation = [line for line in proc.stdout.splitlines() if line.startswith("validation at")]
    assert validation and "loss_total" in validation[-1] and "rmse" in validation[-1], proc.stdout
    assert yaml.safe_load((out / "config.yaml").read_text())["bag"] == str(bag.path)
    tuned = load_checkpoint(out / "last.pt", map_location="cpu")
    start = load_checkpoint(synthetic_checkpoint, map_location="cpu")
    assert tuned["step"] == 3
    changed = [k for k, v in start["model"].items()
               if v.is_floating_point() and not torch.equal(v, tuned["model"][k])]
    assert changed, "fine-tuning did not update the weights"


def test_train_from_scratch_and_bad_bag_messages(tmp_path):
    bag = write_synthetic_bag(tmp_path / "bag", 8, storage="sqlite3", height=48, width=64, lidar_beams=16)
    small = ["model.backbone=resnet18", "model.num_classes=8", "model.prop_iterations=2"]
    proc = _train(tmp_path, bag.path, "null", tmp_path / "scratch", small + ["train.max_steps=1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "scratch" / "last.pt").is_file()
    # A wrong topic name is a one-line error listing what the bag has, not a traceback.
    bad = _train(tmp_path, bag.path, "null", tmp_path / "bad", small + ["data.train.sparse_topic=/points"])
    assert bad.returncode != 0
    assert "/points" in bad.stderr and "/lidar/points" in bad.stderr and "Traceback" not in bad.stderr

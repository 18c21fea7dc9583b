#!/usr/bin/env python3
"""Field adaptation: does self-supervised fine-tuning on a bag of a NEW environment lower RMSE there?

1. Train a starting checkpoint on the default synthetic environment ("room"), self-supervised.
2. Record a rosbag2 (mcap, camera + 32-beam LiDAR + /tf_static + GT depth) in "warehouse",
   a different family of scenes (larger, deeper, other textures and camera height).
3. Fine-tune on the bag with config/finetune_rosbag.yaml (no labels; the GT topic is only read
   for scoring), through the same Trainer as training/train.py.
4. Score the starting and the fine-tuned checkpoint on the bag's held-out end (last 25% of the
   recording, never trained on) against the warehouse GT.

    python bench/bench_finetune_rosbag.py [--quick]
Prints a table and writes bench/results/finetune_rosbag.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = {"backbone": "resnet18", "num_classes": 16, "prop_iterations": 6}
H, W = 96, 128
MAX_DEPTH = 30.0


def train_start_checkpoint(out: Path, steps: int) -> tuple[Path, float]:
    from selfdc_core.training.config import config_from_dict
    from selfdc_core.training.trainer import Trainer

    cfg = config_from_dict({
        "model": MODEL,
        "data": {"train": {"name": "synthetic", "num_frames": 64, "seed": 0, "height": H, "width": W,
                           "sparse": "lidar", "lidar_beams": 32, "environment": "room", "segments": "oracle",
                           "cache": True},
                 "val": None, "max_depth": MAX_DEPTH},
        "loss": {"gc_window": 8},
        "optim": {"lr": 2.0e-3},
        "schedule": {"milestones": [], "factors": [1.0], "warmup_epochs": 0.2},
        "train": {"epochs": 1000, "max_steps": steps, "batch_size": 4, "workers": 0, "out_dir": str(out),
                  "seed": 0, "progress": False, "log_every": 50, "amp": False},
    })
    start = time.perf_counter()
    result = Trainer(cfg).fit()
    return result.last_checkpoint, time.perf_counter() - start


def finetune(bag: Path, init: Path, out: Path, cache: Path, steps: int) -> tuple[Path, float]:
    from selfdc_core.training.config import load_config
    from selfdc_core.training.trainer import Trainer

    overrides = [f"bag={bag}", f"init={init}", f"train.out_dir={out}", f"train.max_steps={steps}",
                 "train.epochs=1000", "train.batch_size=4", "train.workers=0", "train.progress=false",
                 "train.amp=false", "train.log_every=50", "data.val=null", f"data.max_depth={MAX_DEPTH}",
                 f"data.train.cache_root={cache}", "data.train.val_fraction=0.25", "optim.lr=5.0e-4",
                 f"segmentation.cache_root={out / 'masks'}"]
    overrides += [f"model.{k}={v}" for k, v in MODEL.items()]
    cfg = load_config(REPO / "config" / "finetune_rosbag.yaml", overrides)
    start = time.perf_counter()
    result = Trainer(cfg).fit()
    return result.last_checkpoint, time.perf_counter() - start


def score(checkpoint: Path, dataset) -> dict[str, dict[str, float]]:
    from selfdc_core.evaluation import completer_predict_fn, evaluate
    from selfdc_core.inference import DepthCompleter

    completer = DepthCompleter.from_checkpoint(checkpoint, device="auto")
    result = evaluate(completer_predict_fn(completer), dataset, MAX_DEPTH, batch_size=4, progress=False)
    return {s.method: s.mean for s in result.scores}


def main(argv=None) -> int:
    global H, W
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-steps", type=int, default=300, help="training steps on 'room'")
    parser.add_argument("--finetune-steps", type=int, default=150, help="fine-tuning steps on the bag")
    parser.add_argument("--frames", type=int, default=48, help="frames in the warehouse bag (10 Hz)")
    parser.add_argument("--size", type=int, nargs=2, default=[H, W], metavar=("H", "W"), help="frame size")
    parser.add_argument("--quick", action="store_true", help="a smoke run (few steps), not a measurement")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "finetune_rosbag.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.start_steps, args.finetune_steps, args.frames = 5, 5, 12
    H, W = args.size
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    from selfdc_core.data.rosbag import RosbagDataset, write_synthetic_bag

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        start_ckpt, start_time = train_start_checkpoint(tmp / "room", args.start_steps)
        t1 = time.perf_counter()
        bag = write_synthetic_bag(tmp / "warehouse_bag", args.frames, seed=7, environment="warehouse",
                                  height=H, width=W, lidar_beams=32, storage="mcap")
        record_time = time.perf_counter() - t1
        held_out = RosbagDataset(bag.path, split="val", val_fraction=0.25, cache_root=tmp / "cache",
                                 with_gt=True, progress=False)
        before = score(start_ckpt, held_out)
        tuned_ckpt, tune_time = finetune(bag.path, start_ckpt, tmp / "finetune", tmp / "cache",
                                         args.finetune_steps)
        after = score(tuned_ckpt, held_out)
        total = time.perf_counter() - t0

    results = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "image_size": [H, W],
        "model": MODEL,
        "start_environment": "room",
        "bag_environment": "warehouse",
        "bag_frames": args.frames,
        "held_out_frames": len(held_out),
        "start_steps": args.start_steps,
        "finetune_steps": args.finetune_steps,
        "rmse_before": before["SelfDC"]["rmse"],
        "rmse_after": after["SelfDC"]["rmse"],
        "mae_before": before["SelfDC"]["mae"],
        "mae_after": after["SelfDC"]["mae"],
        "rel_before": before["SelfDC"]["rel"],
        "rel_after": after["SelfDC"]["rel"],
        "baselines_rmse": {k: v["rmse"] for k, v in before.items() if k != "SelfDC"},
        "time_s": {"start_training": start_time, "record_bag": record_time, "finetune": tune_time,
                   "total": total},
        "quick": args.quick,
    }
    rows = [("metric", "start (room)", "fine-tuned (bag)"),
            ("RMSE [m]", f"{results['rmse_before']:.3f}", f"{results['rmse_after']:.3f}"),
            ("MAE [m]", f"{results['mae_before']:.3f}", f"{results['mae_after']:.3f}"),
            ("REL", f"{results['rel_before']:.3f}", f"{results['rel_after']:.3f}")]
    print(f"Fine-tuning on a {args.frames}-frame warehouse rosbag2 ({args.finetune_steps} steps), scored on "
          f"its held-out last 25% ({len(held_out)} frames) against GT:")
    for row in rows:
        print(f"  {row[0]:<10} {row[1]:>14} {row[2]:>18}")
    for name, value in results["baselines_rmse"].items():
        print(f"  ({name} of the same sparse input: RMSE {value:.3f} m)")
    print("  time: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["time_s"].items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""training/adapt_bag.py: a real rosbag2 replayed in recorded order through the node's online learner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from selfdc_core.data.rosbag import write_synthetic_bag
from selfdc_core.inference import DepthCompleter
from selfdc_core.model_io import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _adapt(bag, init, out, *extra):
    return subprocess.run(
        [sys.executable, "training/adapt_bag.py", str(bag), "--init", str(init), "--output", str(out),
         "--device", "cpu", "--cache-root", str(out.parent / "cache"), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )


def test_adapt_bag_writes_adapted_weights_and_a_summary(tmp_path, synthetic_checkpoint):
    bag = write_synthetic_bag(tmp_path / "bag", 10, storage="mcap", environment="warehouse", height=48,
                              width=64, lidar_beams=16)
    out = tmp_path / "adapted.pt"
    proc = _adapt(bag.path, synthetic_checkpoint, out, "--steps-per-frame", "1", "--set", "min_gap_s=0",
                  "--set", "swap_every=1", "--set", "holdout_every=3", "--set", "guard_tolerance=1e6",
                  "--set", "optim.lr=5e-4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["frames"] == 10 and [f["stamp"] for f in report["per_frame"]] == sorted(
        f["stamp"] for f in report["per_frame"])  # recorded order
    learner = report["learner"]
    assert learner["learner_steps"] >= 5 and learner["swaps"] >= 1 and learner["frames_kept"] == 10
    assert all(f["rmse"] is not None and np.isfinite(f["rmse"]) for f in report["per_frame"])  # GT topic
    adapted, start = load_checkpoint(out)["model"], load_checkpoint(synthetic_checkpoint)["model"]
    changed = [k for k, v in adapted.items() if v.is_floating_point() and not torch.equal(v, start[k])]
    assert changed  # the swaps reached the written weights
    completer = DepthCompleter.from_checkpoint(out, device="cpu")  # the node can deploy it as is
    rgb = np.zeros((48, 64, 3), np.uint8)
    sparse = np.zeros((48, 64), np.float32)
    sparse[::4, ::4] = 3.0
    assert np.isfinite(completer.complete(rgb, sparse)).all()


def test_adapt_bag_errors_are_one_line(tmp_path, synthetic_checkpoint):
    bag = write_synthetic_bag(tmp_path / "bag", 4, height=48, width=64, lidar_beams=16)
    proc = _adapt(bag.path, synthetic_checkpoint, tmp_path / "a.pt", "--sparse-topic", "/points")
    assert proc.returncode == 1 and "/points" in proc.stderr and "/lidar/points" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _adapt(bag.path, synthetic_checkpoint, tmp_path / "b.pt", "--set", "buffer_size=3")
    assert proc.returncode == 1 and "buffer_size" in proc.stderr and "Traceback" not in proc.stderr

#!/usr/bin/env python3
"""Training throughput on this machine, and whether the data loader keeps up.

Runs real optimiser steps of `config/train_synthetic.yaml` at 228x304 (batch 4, ResNet34,
the default self-supervised losses, 18 propagation iterations) through the same Trainer as
training/train.py, with the configured loader workers: frames render on the fly and pseudo-labels
come from the weight-free generator on the fly (an empty label cache), the slowest input path.
Per step it times the wait for the next batch (the loader's share) and the optimiser step.

    python bench/bench_training.py [--steps 4] [--warmup 1] [key=value ...]
Prints a table and writes bench/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SETTINGS = ["train.batch_size=4", "model.backbone=resnet34", "data.train.height=228", "data.train.width=304",
            "data.val=null", "train.progress=false", "train.amp=false"]


def measure(cfg: dict, steps: int, warmup: int) -> dict:
    from selfdc_core.training.trainer import Trainer

    trainer = Trainer(cfg)
    loader = trainer.train_loader
    loader.sampler.start(0)
    batches = iter(loader)
    waits, totals = [], []
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        if trainer.train_step(batch) is None:
            raise RuntimeError("a benchmark step was skipped (non-finite loss)")
        t2 = time.perf_counter()
        if k >= warmup:
            waits.append(t1 - t0)
            totals.append(t2 - t0)
        print(f"step {k + 1}/{warmup + steps}: loader wait {t1 - t0:.2f} s, step {t2 - t1:.2f} s"
              + (" (warm-up)" if k < warmup else ""), flush=True)
    del batches
    batch_size = int(cfg["train"]["batch_size"])
    mean_total, mean_wait = float(np.mean(totals)), float(np.mean(waits))
    return {
        "images_per_s": batch_size / mean_total,
        "step_s": mean_total,
        "loader_wait_s": mean_wait,
        "loader_share": mean_wait / mean_total,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps (default 4)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (default 1)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from selfdc_core.training.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*SETTINGS, f"train.out_dir={tmp}/run", f"segmentation.cache_root={tmp}/labels",
                     "segmentation.fallback=felzenszwalb", *args.overrides]
        cfg = load_config(REPO / "config" / "train_synthetic.yaml", overrides)
        result = measure(cfg, args.steps, args.warmup)

    data = cfg["data"]["train"]
    record = {
        "device": "cuda" if torch.cuda.is_available() and cfg["train"]["device"] != "cpu" else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "resolution": [data["height"], data["width"]],
        "batch_size": cfg["train"]["batch_size"],
        "backbone": cfg["model"]["backbone"],
        "prop_iterations": cfg["model"].get("prop_iterations", 18),
        "workers": cfg["train"]["workers"],
        "timed_steps": args.steps,
        **{k: round(v, 4) for k, v in result.items()},
        "loader_share_target": 0.2,
    }
    rows = [
        ("training images/s", f"{record['images_per_s']:.3f}"),
        ("step time (s)", f"{record['step_s']:.2f}"),
        ("loader wait per batch (s)", f"{record['loader_wait_s']:.3f}"),
        ("loader share of step", f"{100 * record['loader_share']:.1f}% (target < 20%)"),
    ]
    title = (f"training at {data['height']}x{data['width']}, batch {record['batch_size']}, "
             f"{record['backbone']}, {record['workers']} workers, "
             f"{record['device']} ({record['torch_threads']} threads)")
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    out = REPO / "bench" / "results" / "training.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

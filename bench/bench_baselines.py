"""Cost of the classical fills (nearest, morphological, linear) per frame, side by side.

    python bench/bench_baselines.py [--repeats 3]

Inputs are random sparse depths at the density of NYU's 500 samples (228x304) and of a 64-beam
LiDAR projected into KITTI's 352x1216 crop (about 5% of pixels). Each figure is the fastest of
--repeats passes, in wall-clock and in process CPU time (the fills are single-threaded, so CPU
time is what one core delivers even when other jobs share the machine). Prints a table and
writes bench/results/baselines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from selfdc_core.baselines import BASELINES

RESULTS = Path(__file__).resolve().parent / "results" / "baselines.json"
CASES = {"228x304, 500 points": ((228, 304), 500), "352x1216, 5% of pixels": ((352, 1216), 21400)}


def sparse_input(shape: tuple[int, int], points: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sparse = np.zeros(shape, np.float32)
    idx = rng.choice(shape[0] * shape[1], points, replace=False)
    sparse.flat[idx] = rng.uniform(0.5, 10.0, points)
    return sparse


def fastest(fill, sparse: np.ndarray, repeats: int) -> dict:
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fill(sparse)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall_ms": 1e3 * min(walls), "cpu_ms": 1e3 * min(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {}
    print("| input | fill | wall (ms) | CPU (ms) |\n|---|---|---:|---:|")
    for case, (shape, points) in CASES.items():
        sparse = sparse_input(shape, points)
        for name, fill in BASELINES.items():
            fill(sparse)  # first call pays the imports
            r = results.setdefault(case, {})[name] = fastest(fill, sparse, args.repeats)
            print(f"| {case} | {name} | {r['wall_ms']:.1f} | {r['cpu_ms']:.1f} |", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {"results": results, "repeats": args.repeats, "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "python": platform.python_version()}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Throughput of the synthetic scene generator (camera render, LiDAR sweep, dataset items).

    python bench/bench_synthetic.py [--frames 40]

Prints a table and writes bench/results/synthetic.json. Both wall-clock and process CPU time
are reported, each the fastest of 3 passes: the renderer is single-threaded numpy, so CPU-time
frames/s is what one core delivers even when other jobs share the machine (wall-clock then
reads lower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from selfdc_core.data.synthetic import LidarConfig, SyntheticScenes, make_scene, render_frame, simulate_lidar
from selfdc_core.data.synthetic.environments import get_environment
from selfdc_core.data.synthetic.frame import frame_rngs

RESULTS = Path(__file__).resolve().parent / "results" / "synthetic.json"


def timed(fn, n: int, repeats: int = 3) -> dict:
    """Mean per-frame time over n frames; the fastest of `repeats` passes (least disturbed by other jobs)."""
    fn(0)  # warm-up (caches of pixel rays, imports)
    passes = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            fn(i + 1)
        passes.append((time.process_time() - cpu, time.perf_counter() - wall))
    cpu, wall = min(passes)
    return {
        "n": n,
        "wall_ms": 1000 * wall / n,
        "cpu_ms": 1000 * cpu / n,
        "fps_wall": n / wall,
        "fps_cpu": n / cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=30, help="frames per measurement pass")
    args = parser.parse_args()
    n = args.frames
    results: dict = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "load_average_1min": os.getloadavg()[0],
        "size": "228x304",
        "render": {},
    }

    print(f"{'measurement':44s} {'wall ms':>8s} {'cpu ms':>8s} {'fps(wall)':>10s} {'fps(cpu)':>9s}")
    for env in ("room", "warehouse"):
        for shadows in (False, True):
            r = timed(
                lambda i, e=env, s=shadows: render_frame(0, i, environment=e, with_lidar=False, shadows=s), n
            )
            name = f"render rgb+depth+ids {env} shadows={shadows}"
            results["render"][f"{env}_shadows_{shadows}"] = r
            print(
                f"{name:44s} {r['wall_ms']:8.1f} {r['cpu_ms']:8.1f} {r['fps_wall']:10.1f} {r['fps_cpu']:9.1f}"
            )

    results["lidar"] = {}
    scenes = [make_scene(frame_rngs(0, i, "room")["scene"], get_environment("room")) for i in range(n + 1)]
    for beams in (16, 32, 64):
        config = LidarConfig(beams=beams)
        points = []
        r = timed(lambda i, c=config, out=points: out.append(len(simulate_lidar(scenes[i], c)[0])), n)
        r["rays"] = beams * len(config.azimuths_deg)
        r["points"] = float(np.mean(points))
        results["lidar"][f"beams_{beams}"] = r
        name = f"lidar sweep {beams} beams x {len(config.azimuths_deg)} ({r['points']:.0f} pts)"
        print(f"{name:44s} {r['wall_ms']:8.1f} {r['cpu_ms']:8.1f} {r['fps_wall']:10.1f} {r['fps_cpu']:9.1f}")

    results["dataset"] = {}
    for sparse in ("lidar", "tof", "random"):
        ds = SyntheticScenes(n + 1, seed=0, sparse=sparse, lidar_beams=32)
        r = timed(lambda i, d=ds: d[i], n)
        results["dataset"][sparse] = r
        name = f"SyntheticScenes item, sparse={sparse}"
        print(f"{name:44s} {r['wall_ms']:8.1f} {r['cpu_ms']:8.1f} {r['fps_wall']:10.1f} {r['fps_cpu']:9.1f}")

    results["load_average_1min_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

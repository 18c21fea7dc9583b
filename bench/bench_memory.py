#!/usr/bin/env python3
"""Peak host memory of one DepthCompleter forward (CPU) per megapixel of network input.

Each size runs in a fresh process and reads its peak RSS (VmHWM) before and after one
`complete` call, so the figure is the forward's own working set. The slope between sizes is
the memory per megapixel that `max_inference_pixels` bounds (GPU memory grows the same way:
the activations are the same tensors).

  python bench/bench_memory.py [--sizes 228x304 480x640] [--out bench/results/memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MODEL = {"backbone": "resnet34", "num_classes": 32, "prop_iterations": 18, "pretrained": False}


def _peak_kib() -> int:
    from proc_status import status_kib  # bench/, next to this script

    return status_kib("VmHWM")


def measure(height: int, width: int) -> dict:
    import numpy as np
    import torch

    from selfdc_core.inference import DepthCompleter
    from selfdc_core.models import build_model

    torch.set_num_threads(2)
    completer = DepthCompleter(build_model(MODEL), device="cpu")
    completer.limits = type(completer.limits)(max_pixels=0)  # run at the size asked for
    rgb = np.zeros((height, width, 3), np.uint8)
    sparse = np.zeros((height, width), np.float32)
    sparse[::8, ::8] = 2.0
    before = _peak_kib()
    completer.complete(rgb, sparse)
    return {"height": height, "width": width, "megapixels": height * width / 1e6,
            "forward_peak_mib": (_peak_kib() - before) / 1024}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["228x304", "480x640"], help="HxW sizes")
    parser.add_argument("--out", default="bench/results/memory.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*map(int, args.one.split("x")))))
        return 0
    rows = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", size]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{size}: {rows[-1]['forward_peak_mib']:.0f} MiB")
    a, b = rows[0], rows[-1]
    per_mp = (b["forward_peak_mib"] - a["forward_peak_mib"]) / (b["megapixels"] - a["megapixels"]) / 1024
    print(f"memory per megapixel of network input: {per_mp:.2f} GiB ({MODEL})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": MODEL, "device": "cpu", "sizes": rows,
                                          "gib_per_megapixel": per_mp}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

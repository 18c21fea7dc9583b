"""Deployment latency: the deform_conv2d eager model, the gather eager model (float32 and bfloat16
autocast) and onnxruntime, side by side.

Run: .venv/bin/python bench/bench_deploy.py [--sizes 228x304 352x1216] [--repeats N] [--threads N]
All run the same weights (ResNet34, 18 propagation steps, trained-like propagation weights) on the
same batch-1 input. The deform_conv2d reference is today's eager model (NCHW, float32); the gather rows
run the node's PyTorch path (DepthCompleter: NHWC, autocast per precision). The ONNX file is exported
with training/export.py's code path. Runs alternate between them, so a busy machine slows them alike;
the ratios are the figures to read. Prints a table and writes bench/results/deploy.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from selfdc_core.deploy.onnx_export import example_inputs, export_onnx
from selfdc_core.deploy.onnx_runtime import OnnxSession
from selfdc_core.inference import DepthCompleter
from selfdc_core.models import SelfDC

ROOT = Path(__file__).resolve().parents[1]
TARGET_ONNX_VS_DEFORM = 5.0


def trained_like_model(backbone: str, steps: int) -> SelfDC:
    torch.manual_seed(0)
    model = SelfDC(backbone=backbone, prop_iterations=steps, include_segmentation=False).eval()
    with torch.no_grad():
        model.propagation.offset_affinity.weight.normal_(0, 0.05)
        model.propagation.offset_affinity.bias.normal_(0, 0.8)
    return model


def measure_size(model: SelfDC, height: int, width: int, repeats: int, folder: Path) -> dict:
    reference = SelfDC(**dict(model.config, propagation="deform_conv")).eval()
    reference.load_state_dict(model.state_dict())
    started = time.perf_counter()
    path = export_onnx(model, folder / f"selfdc_{height}x{width}.onnx", height, width)
    export_s = time.perf_counter() - started
    session = OnnxSession(path, device="cpu")
    rgb_np, sparse_np = example_inputs(1, height, width)
    rgb, sparse = torch.from_numpy(rgb_np), torch.from_numpy(sparse_np)

    def eager(m):
        with torch.inference_mode():
            return m(rgb, sparse)["depth"].numpy()

    def completer(precision: str):
        """The node's PyTorch path: DepthCompleter (NHWC, autocast per `precision`) on tensors."""
        runner = DepthCompleter(copy.deepcopy(model), device="cpu", precision=precision)
        rgb_nhwc = rgb.contiguous(memory_format=torch.channels_last)
        return lambda: runner.predict(rgb_nhwc, sparse)["depth"].float().numpy()

    runners = {"deform_conv eager": lambda: eager(reference), "gather eager": completer("float32"),
               "gather eager bf16": completer("bfloat16"),
               "onnxruntime cpu": lambda: session.run(rgb_np, sparse_np)[0]}
    outputs = {name: run() for name, run in runners.items()}  # warm-up, and the outputs to compare
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(v) for name, v in times.items()}
    base = outputs["deform_conv eager"]
    return {
        "input": [height, width], "onnx_export_s": export_s, "onnx_file_mib": path.stat().st_size / 2**20,
        "latency_s_median": median, "latency_s_runs": times,
        "speedup_vs_deform_conv": {name: median["deform_conv eager"] / t for name, t in median.items()},
        "max_abs_depth_difference_m": {name: float(np.abs(out - base).max())
                                       for name, out in outputs.items()},
        # Relative to the mean depth: the untrained weights give depths of any scale.
        "mean_abs_depth_difference_rel": {name: float(np.abs(out - base).mean() / np.abs(base).mean())
                                          for name, out in outputs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["228x304", "352x1216"], help="HxW input sizes")
    parser.add_argument("--backbone", default="resnet34", choices=["resnet18", "resnet34"])
    parser.add_argument("--steps", type=int, default=18, help="propagation steps")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (after one warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "deploy.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = trained_like_model(args.backbone, args.steps)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
        per_size = [measure_size(model, h, w, args.repeats, Path(tmp)) for h, w in sizes]
    results = {
        "backbone": args.backbone, "steps": args.steps, "batch": 1, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "load_average_1min": [load_before, os.getloadavg()[0]],
        "sizes": per_size, "target_onnx_vs_deform_conv": TARGET_ONNX_VS_DEFORM,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"SelfDC {args.backbone}, {args.steps} propagation steps, batch 1, CPU, "
          f"{results['threads']} threads")
    print(f"{'input':<12}{'backend':<20}{'latency (s)':>12}{'speed-up':>10}{'max |Δdepth| (m)':>18}"
          f"{'mean |Δ| / mean':>16}")
    for r in per_size:
        for name, t in r["latency_s_median"].items():
            print(f"{'x'.join(map(str, r['input'])):<12}{name:<20}{t:>12.3f}"
                  f"{r['speedup_vs_deform_conv'][name]:>9.2f}×{r['max_abs_depth_difference_m'][name]:>18.1e}"
                  f"{r['mean_abs_depth_difference_rel'][name]:>16.1e}")
    print(f"1-min load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()

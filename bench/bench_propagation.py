"""NLSPN propagation: the gather/CSR implementation against the deform_conv2d reference, side by side.

Run: .venv/bin/python bench/bench_propagation.py [--device auto|cpu|cuda] [--repeats N]
Times the propagation module alone (offset/affinity conv, confidence sampling and all steps) at
batch 4, 228x304, 18 steps: forward under no_grad, and forward + backward to every input and
parameter. The two implementations alternate run by run, so a busy machine slows both alike; the
figures that matter are the ratios. Peak memory of forward + backward is measured in a fresh child
process per implementation, on its first run (on CPU the peak RSS above the RSS before the run, so
every page the run touches counts; on CUDA max_memory_allocated).
Prints a table and writes bench/results/propagation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from selfdc_core.models.nlspn import NonLocalPropagation

ROOT = Path(__file__).resolve().parents[1]
MODES = ("gather", "deform_conv")


def make_case(mode: str, device: torch.device, batch: int, height: int, width: int, steps: int):
    """A propagation with trained-like weights (offsets of about a pixel) and NYU-like inputs."""
    torch.manual_seed(0)
    prop = NonLocalPropagation(iterations=steps, mode=mode).to(device)
    with torch.no_grad():
        prop.offset_affinity.weight.normal_(0, 0.05)
        prop.offset_affinity.bias.normal_(0, 0.8)
    g = torch.Generator().manual_seed(1)
    depth = torch.rand(batch, 1, height, width, generator=g) * 9 + 0.5
    guidance = torch.randn(batch, 8, height, width, generator=g)
    confidence = torch.rand(batch, 1, height, width, generator=g)
    sparse = torch.where(torch.rand(batch, 1, height, width, generator=g) < 500 / (height * width),
                         depth, 0.0)
    return prop, [t.to(device) for t in (depth, guidance, confidence, sparse)]


def run_once(prop, inputs, backward: bool) -> None:
    depth, guidance, confidence, sparse = inputs
    if not backward:
        with torch.no_grad():
            prop(depth, guidance, confidence, sparse)
        return
    leaves = [t.detach().requires_grad_() for t in (depth, guidance, confidence)]
    prop.zero_grad(set_to_none=True)
    prop(*leaves, sparse).square().mean().backward()


def timed(prop, inputs, backward: bool, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run_once(prop, inputs, backward)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_worker(mode: str, device: str, batch: int, height: int, width: int, steps: int) -> None:
    """Child process: print the peak memory (MiB) of one forward + backward above the starting point."""
    dev = torch.device(device)
    prop, inputs = make_case(mode, dev, batch, height, width, steps)
    if dev.type == "cuda":
        run_once(prop, inputs, True)  # CUDA context and allocator warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_once(prop, inputs, True)
        torch.cuda.synchronize()
        print((torch.cuda.max_memory_allocated() - base) / 2**20)
        return
    Path("/proc/self/clear_refs").write_text("5")  # reset the kernel's peak-RSS mark (VmHWM)
    base = _status_kib("VmRSS")
    run_once(prop, inputs, True)
    print((_status_kib("VmHWM") - base) / 1024)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_memory(mode: str, device: torch.device, args) -> float:
    cmd = [sys.executable, __file__, "--memory-worker", mode, "--device", str(device), "--threads",
           str(args.threads),
           "--batch", str(args.batch), "--height", str(args.height), "--width", str(args.width),
           "--steps", str(args.steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each kind (after one warm-up)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int, default=228)
    parser.add_argument("--width", type=int, default=304)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default). On a machine shared with other "
                             "jobs, 1 keeps idle threads from spinning while they wait for each other")
    parser.add_argument("--memory-worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "propagation.json")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_worker:
        peak_memory_worker(args.memory_worker, str(device), args.batch, args.height, args.width, args.steps)
        return

    cases = {mode: make_case(mode, device, args.batch, args.height, args.width, args.steps) for mode in MODES}
    load_before = os.getloadavg()[0]
    times: dict[str, dict[str, list[float]]] = {m: {"forward": [], "forward_backward": []} for m in MODES}
    for i in range(args.repeats + 1):
        for kind, backward in (("forward", False), ("forward_backward", True)):
            for mode in MODES:  # alternate, so that load changes hit both implementations alike
                elapsed = timed(*cases[mode], backward, device)
                if i > 0:
                    times[mode][kind].append(elapsed)
    median = {m: {k: statistics.median(v) for k, v in kinds.items()} for m, kinds in times.items()}
    memory = {mode: peak_memory(mode, device, args) for mode in MODES}
    results = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch, "input": [args.height, args.width], "steps": args.steps,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "median_s": median,
        "runs_s": times,
        "peak_memory_forward_backward_mib": memory,
        "speedup_forward": median["deform_conv"]["forward"] / median["gather"]["forward"],
        "speedup_forward_backward": (median["deform_conv"]["forward_backward"]
                                     / median["gather"]["forward_backward"]),
        "memory_ratio": memory["gather"] / memory["deform_conv"],
        "targets": {"speedup_forward": 3.0, "speedup_forward_backward": 4.0, "memory_ratio_max": 1.5},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"NLSPN propagation, batch {args.batch}, {args.height}x{args.width}, {args.steps} steps, "
          f"on {results['device']} ({results['threads']} threads)")
    print(f"{'':<26}{'gather':>12}{'deform_conv':>14}{'ratio':>9}{'target':>9}")
    for kind, target in (("forward", "≥ 3×"), ("forward_backward", "≥ 4×")):
        g, d = median["gather"][kind], median["deform_conv"][kind]
        print(f"{kind + ' (s)':<26}{g:>12.3f}{d:>14.3f}{d / g:>8.2f}×{target:>9}")
    print(f"{'peak memory fwd+bwd (MiB)':<26}{memory['gather']:>12.0f}{memory['deform_conv']:>14.0f}"
          f"{results['memory_ratio']:>8.2f}×{'≤ 1.5×':>9}")
    print(f"1-min load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; wrote {args.out}")


if __name__ == "__main__":
    main()

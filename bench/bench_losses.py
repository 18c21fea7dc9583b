"""Vectorised L_gc / L_sms against the loop references, and the full SelfDCLoss step.

Run: .venv/bin/python bench/bench_losses.py [--repeats N]
Prints a table and writes bench/results/losses.json. 228x304, batch 4. L_sms is timed at several
segment counts: the loop reference iterates over segments, so its cost grows with them, while
the vectorised loss does not; Felzenszwalb gives tens of regions per image, SAM often 100-200.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure this checkout's package

from selfdc_core.losses import (  # noqa: E402
    SelfDCLoss,
    local_gradient_constraint_loss,
    selective_mask_aware_smoothness_loss,
)
from selfdc_core.testing.loss_reference import gc_loop, sms_loop  # noqa: E402

B, H, W, CLASSES = 4, 228, 304, 32


def make_segments(segments_per_image, device):
    """Voronoi regions 0..n-1 per image; 0 plays "unlabeled"."""
    g = torch.Generator().manual_seed(1)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    segs = []
    for _ in range(B):
        centres = torch.stack([torch.randint(0, H, (segments_per_image,), generator=g),
                               torch.randint(0, W, (segments_per_image,), generator=g)], 1).float()
        dist = (ys[None] - centres[:, 0, None, None]) ** 2 + (xs[None] - centres[:, 1, None, None]) ** 2
        segs.append(dist.argmin(0))
    return torch.stack(segs).long().to(device)


def make_inputs(device, segments_per_image):
    g = torch.Generator().manual_seed(0)
    depth = (torch.rand(B, 1, H, W, generator=g) * 10).to(device).requires_grad_(True)
    rgb = torch.rand(B, 3, H, W, generator=g).to(device)
    segments = make_segments(segments_per_image, device)
    sparse = torch.where(torch.rand(B, 1, H, W, generator=g) < 0.01, torch.rand(B, 1, H, W, generator=g) * 10,
                         torch.zeros(B, 1, H, W)).to(device)
    logits = torch.randn(B, CLASSES, H, W, generator=g).to(device).requires_grad_(True)
    return depth, rgb, segments, sparse, logits


def timed(fn, repeats, device, warmup=True):
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3  # median, ms


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--segments", type=int, nargs="+", default=[20, 150],
                        help="segments per image for the L_sms timings (the first is used elsewhere)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps timings stable on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    depth, rgb, segments, sparse, logits = make_inputs(device, args.segments[0])

    def fwd_bwd(loss_fn):
        return lambda: torch.autograd.grad(loss_fn(), depth)

    cases = {
        "L_gc window 8 (fwd+bwd)": (
            lambda: local_gradient_constraint_loss(depth, segments, window=8),
            lambda: gc_loop(depth, segments, window=8)),
        "L_gc window full (fwd+bwd)": (
            lambda: local_gradient_constraint_loss(depth, segments, window="full"),
            lambda: gc_loop(depth, segments, window="full")),
    }
    for n in args.segments:
        segs = make_segments(n, device)
        cases[f"L_sms {n} segments (fwd+bwd)"] = (
            lambda segs=segs: selective_mask_aware_smoothness_loss(depth, segs),
            lambda segs=segs: sms_loop(depth, segs))
    rows = []
    for name, (fast, loop) in cases.items():
        torch.testing.assert_close(fast(), loop(), rtol=1e-5, atol=1e-6)
        t_fast = timed(fwd_bwd(fast), args.repeats, device)
        t_loop = timed(fwd_bwd(loop), 1, device, warmup=False)  # the loops take seconds
        rows.append({"loss": name, "vectorised_ms": t_fast, "loop_ms": t_loop, "speedup": t_loop / t_fast})

    criterion = SelfDCLoss()
    outputs = {"depth": depth, "seg_logits": logits}
    batch = {"rgb": rgb, "sparse": sparse, "segments": segments}

    def full_step():
        total, _ = criterion(outputs, batch)
        total.backward()

    t_total = timed(full_step, args.repeats, device)

    print(f"SelfDC losses, {B}x{H}x{W}, {args.segments[0]} segments/image unless stated, device {device}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'loss':<34} {'vectorised ms':>14} {'loop ms':>10} {'speedup':>9}")
    for r in rows:
        print(f"{r['loss']:<34} {r['vectorised_ms']:>14.2f} {r['loop_ms']:>10.1f} {r['speedup']:>8.1f}x")
    print(f"{'SelfDCLoss fwd+bwd (all terms)':<34} {t_total:>14.2f}")
    result = {
        "shape": [B, 1, H, W], "segments_per_image": args.segments, "num_classes": CLASSES,
        "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "repeats": args.repeats,
        "load_average_1min": os.getloadavg()[0],
        "losses": rows, "selfdc_loss_forward_backward_ms": t_total,
    }
    out = ROOT / "bench" / "results" / "losses.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

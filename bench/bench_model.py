"""SelfDC network cost: GFLOPs and parameters per component at 228x304 and 352x1216; timings at 228x304
(inference latency, training step, the losses' share of it) for both propagation implementations in
float32, and for the gather model as the trainer and the node run it (NHWC, bfloat16 autocast on CPUs
with native bfloat16 units, float16 on CUDA), each as a speed-up over deform_conv2d.

Run: .venv/bin/python bench/bench_model.py [--device auto|cpu|cuda] [--repeats N] [--train-repeats N]
Prints tables and writes bench/results/model.json.

GFLOPs: torch.utils.flop_counter.FlopCounterMode (1 multiply-add = 2 FLOPs; convolutions and matrix
products, which dominate; element-wise ops are not counted), attributed to each component by hooks.
The propagation steps run as sparse products the counter cannot see, so they are counted analytically:
36 multiply-adds (9 taps x 4 bilinear corners) per pixel per step; the counted part of the propagation
is its offset/affinity convolution (the bilinear plan is element-wise).

Loss share: the loss terms' forward is timed inside the real step. Their backward is timed on its
own by recomputing the loss on detached leaf copies of the model outputs and back-propagating to
those leaves only, which is exactly the loss's part of the full backward (the rest is the network's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdc_core.devices import autocast_dtype  # noqa: E402
from selfdc_core.losses import SelfDCLoss  # noqa: E402
from selfdc_core.models import SelfDC  # noqa: E402

H, W, TRAIN_BATCH, SEGMENTS = 228, 304, 4, 20
COST_SIZES = ((228, 304), (352, 1216))
COMPONENTS = ("encoder", "decoder", "depth_head", "guidance_head", "confidence_head", "propagation",
              "seg_decoder")
PROPAGATION_MACS_PER_PIXEL_STEP = 36
# Cheaper variants of the heads (model.half_resolution_heads), costed next to the default.
HALF_RESOLUTION_VARIANTS = (("guidance", "confidence"), ("depth", "guidance", "confidence"))


def make_batch(batch: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random image, ~0.7 % sparse points (NYU's 500 samples) and Voronoi segments ranked 1..N (0 unused)."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, H, W, generator=g)
    measured = torch.rand(batch, 1, H, W, generator=g) < 500 / (H * W)
    sparse = torch.where(measured, torch.rand(batch, 1, H, W, generator=g) * 9.5 + 0.5, 0.0)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    centres_y = torch.randint(0, H, (batch, SEGMENTS, 1, 1), generator=g)
    centres_x = torch.randint(0, W, (batch, SEGMENTS, 1, 1), generator=g)
    segments = ((ys - centres_y) ** 2 + (xs - centres_x) ** 2).argmin(dim=1) + 1
    return {"rgb": rgb.to(device), "sparse": sparse.to(device), "segments": segments.to(device)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def clock(device: torch.device) -> float:
    sync(device)
    return time.perf_counter()


def cpu_clock() -> float:
    """Process CPU time of all threads: on a shared, busy CPU, cpu / threads estimates the idle-machine
    wall time better than the wall clock does."""
    return time.process_time()


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def bench_inference(model: SelfDC, device: torch.device, repeats: int,
                    amp: torch.dtype | None = None) -> tuple[list[float], list[float]]:
    batch = make_batch(1, device)
    model.eval()
    times, cpu_times = [], []
    with torch.inference_mode(), autocast(device, amp):
        for i in range(repeats + 2):  # two warm-up runs
            start, cpu_start = clock(device), cpu_clock()
            out = model(batch["rgb"], batch["sparse"])
            if i >= 2:
                times.append(clock(device) - start)
                cpu_times.append(cpu_clock() - cpu_start)
    assert "seg_logits" not in out
    return times, cpu_times


def bench_train_step(model: SelfDC, loss_fn: SelfDCLoss, device: torch.device, repeats: int,
                     amp: torch.dtype | None = None) -> dict:
    batch = make_batch(TRAIN_BATCH, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    rows = []
    for i in range(repeats + 1):  # one warm-up step
        t0, c0 = clock(device), cpu_clock()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            outputs = model(batch["rgb"], batch["sparse"])
        outputs = {k: v.float() for k, v in outputs.items()}
        t1 = clock(device)
        total, _ = loss_fn(outputs, batch)
        t2 = clock(device)
        total.backward()
        t3 = clock(device)
        optimizer.step()
        t4, c4 = clock(device), cpu_clock()

        # The loss's own backward: the same loss on detached leaf copies of the outputs.
        leaves = {k: v.detach().requires_grad_(True) for k, v in outputs.items()}
        leaf_total, _ = loss_fn(leaves, batch)
        t5, c5 = clock(device), cpu_clock()
        leaf_total.backward()
        t6, c6 = clock(device), cpu_clock()
        if i >= 1:
            rows.append({"model_forward": t1 - t0, "loss_forward": t2 - t1, "backward": t3 - t2,
                         "optimizer": t4 - t3, "loss_backward": t6 - t5, "step": t4 - t0,
                         "step_cpu": c4 - c0, "loss_backward_cpu": c6 - c5})
        del outputs, total, leaves, leaf_total
    return {key: statistics.median(r[key] for r in rows) for key in rows[0]}


def component_costs(model: SelfDC, height: int, width: int) -> dict[str, dict[str, float]]:
    """GFLOPs (batch 1, one forward) and parameters (millions) of each component at height x width."""
    from torch.utils.flop_counter import FlopCounterMode

    counter, flops, hooks = FlopCounterMode(display=False), {}, []
    for name in COMPONENTS:
        module = getattr(model, name)
        if module is None:
            continue
        hooks.append(module.register_forward_pre_hook(
            lambda _m, _i, n=name: flops.__setitem__(n, flops.get(n, 0) - counter.get_total_flops())))
        hooks.append(module.register_forward_hook(
            lambda _m, _i, _o, n=name: flops.__setitem__(n, flops[n] + counter.get_total_flops())))
    was_training = model.training
    model.train()  # so the segmentation branch (training only) is counted too
    try:
        with torch.no_grad(), counter:
            device = next(model.parameters()).device
            model.forward_unchecked(torch.rand(1, 3, height, width, device=device),
                                    torch.zeros(1, 1, height, width, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    steps = model.propagation.iterations
    flops["propagation"] += 2 * PROPAGATION_MACS_PER_PIXEL_STEP * steps * height * width
    out = {name: {"gflops": flops[name] / 1e9,
                  "params_millions": sum(p.numel() for p in getattr(model, name).parameters()) / 1e6}
           for name in flops}
    inference = [n for n in out if n != "seg_decoder"]
    out["total_inference"] = {k: sum(out[n][k] for n in inference) for k in ("gflops", "params_millions")}
    return out


def compare_propagation(model: SelfDC, loss_fn: SelfDCLoss, device: torch.device, repeats: int,
                        train_repeats: int) -> dict[str, dict[str, float]]:
    """Inference (batch 1) and training step (batch TRAIN_BATCH) with the same weights: deform_conv2d
    and gather in float32 NCHW (only the propagation differs), then gather as the trainer and the node
    run it (NHWC, autocast per `autocast_dtype('auto')`: bfloat16 on CPUs with native units)."""
    amp = autocast_dtype("auto", device)
    variants = [("deform_conv", "deform_conv", False, None), ("gather", "gather", False, None)]
    if amp is not None:
        variants.append((f"gather, channels_last, {str(amp).removeprefix('torch.')}", "gather", True, amp))
    rows, original = {}, model.propagation.mode
    for name, mode, nhwc, dtype in variants:
        model.propagation.mode = mode
        model.to(memory_format=torch.channels_last if nhwc else torch.contiguous_format)
        wall, _ = bench_inference(model, device, repeats, dtype)
        step = bench_train_step(model, loss_fn, device, train_repeats, dtype)
        rows[name] = {"inference_s": statistics.median(wall), "train_step_s": step["step"]}
    model.propagation.mode = original
    model.to(memory_format=torch.contiguous_format)
    reference = rows["deform_conv"]
    for row in rows.values():
        row["inference_speedup"] = reference["inference_s"] / row["inference_s"]
        row["train_step_speedup"] = reference["train_step_s"] / row["train_step_s"]
    return rows


def half_resolution_costs(backbone: str, device: torch.device) -> dict[str, dict[str, float]]:
    """Inference GFLOPs (batch 1) with each HALF_RESOLUTION_VARIANTS, per size; the weights are the same."""
    out = {}
    for heads in HALF_RESOLUTION_VARIANTS:
        model = SelfDC(backbone=backbone, half_resolution_heads=list(heads)).to(device)
        out[",".join(heads)] = {f"{h}x{w}": component_costs(model, h, w)["total_inference"]["gflops"]
                                for h, w in COST_SIZES}
    for name, row in out.items():
        print(f"  inference GFLOPs with half-resolution {name} heads: "
              + ", ".join(f"{size} {gflops:.1f}" for size, gflops in row.items()))
    return out


def print_costs(costs: dict) -> None:
    for size, table in costs.items():
        print(f"cost at {size}, batch 1 (GFLOPs; params in M)")
        for name, row in table.items():
            print(f"  {name:<20}{row['gflops']:>10.2f}{row['params_millions']:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--backbone", default="resnet34", choices=["resnet18", "resnet34"])
    parser.add_argument("--repeats", type=int, default=5, help="timed inference runs (after 2 warm-up)")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed training steps (after 1 warm-up)")
    parser.add_argument("--skip-timing", action="store_true", help="only count GFLOPs and parameters")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model.json")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)

    torch.manual_seed(0)
    model = SelfDC(backbone=args.backbone).to(device)  # defaults: 32 classes, 18 iterations
    loss_fn = SelfDCLoss()
    params = sum(p.numel() for p in model.parameters())
    seg_params = sum(p.numel() for p in model.seg_decoder.parameters())

    costs = {f"{h}x{w}": component_costs(model, h, w) for h, w in COST_SIZES}
    print_costs(costs)
    half_costs = half_resolution_costs(args.backbone, device)
    if args.skip_timing:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model_config": model.config, "cost": costs,
                                        "cost_half_resolution_heads": half_costs}, indent=2) + "\n")
        print(f"wrote {args.out}")
        return
    load_before = os.getloadavg()[0]
    propagation_modes = compare_propagation(model, loss_fn, device, args.repeats, args.train_repeats)
    inference, inference_cpu = bench_inference(model, device, args.repeats)
    step = bench_train_step(model, loss_fn, device, args.train_repeats)
    loss_time = step["loss_forward"] + step["loss_backward"]
    threads = torch.get_num_threads()
    results = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": threads,
        "load_average_1min": [load_before, os.getloadavg()[0]],
        "input": [H, W],
        "model_config": model.config,
        "parameters_millions": round(params / 1e6, 2),
        "inference_parameters_millions": round((params - seg_params) / 1e6, 2),
        "inference_batch": 1,
        "inference_latency_s_median": statistics.median(inference),
        "inference_latency_s_runs": inference,
        "inference_cpu_s_median": statistics.median(inference_cpu),
        "inference_cpu_per_thread_s": statistics.median(inference_cpu) / threads,
        "train_batch": TRAIN_BATCH,
        "train_step_s_median": step["step"],
        "train_step_breakdown_s": step,
        "train_step_cpu_per_thread_s": step["step_cpu"] / threads,
        "loss_time_s": loss_time,
        "loss_share_of_step": loss_time / step["step"],
        "loss_share_target": 0.10,
        "cost": costs,
        "cost_half_resolution_heads": half_costs,
        "propagation_modes": propagation_modes,
        "method": "medians over runs, wall clock; loss backward timed on detached leaf copies of the "
                  "outputs; *_cpu_per_thread_s = process CPU time / threads (robust to a busy machine)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"SelfDC ({args.backbone}) at {H}x{W} on {results['device']}, {results['threads']} threads, "
          f"{results['parameters_millions']} M params "
          f"({results['inference_parameters_millions']} M at inference)")
    print(f"{'quantity':<46}{'value':>12}")
    table = [
        ("inference forward, batch 1, no seg branch (s)", results["inference_latency_s_median"]),
        (f"training step, batch {TRAIN_BATCH} (s)", step["step"]),
        ("  model forward incl. seg decoder (s)", step["model_forward"]),
        ("  loss forward (s)", step["loss_forward"]),
        ("  backward, network + losses (s)", step["backward"]),
        ("  of which loss backward (s)", step["loss_backward"]),
        ("  optimizer step, Adam (s)", step["optimizer"]),
        ("losses' share of the step", results["loss_share_of_step"]),
        ("inference CPU time / threads (s)", results["inference_cpu_per_thread_s"]),
        ("training step CPU time / threads (s)", results["train_step_cpu_per_thread_s"]),
    ]
    for name, value in table:
        print(f"{name:<46}{value:>12.4f}")
    print(f"1-min load average before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (a busy machine inflates wall times)")
    for mode, row in propagation_modes.items():
        print(f"{mode:<36} inference {row['inference_s']:.3f} s ({row['inference_speedup']:.2f}x), "
              f"training step {row['train_step_s']:.3f} s ({row['train_step_speedup']:.2f}x)")
    verdict = "meets" if results["loss_share_of_step"] <= 0.10 else "MISSES"
    print(f"losses {verdict} the <= 10 % target; wrote {args.out}")


if __name__ == "__main__":
    main()

"""Scale-aware structure losses on the large synthetic scenes (warehouse, corridor: depths to tens of
metres): for each loss.scale_norm, a self-supervised fit from scratch, scored on held-out frames.

Run: .venv/bin/python bench/bench_scale_norm.py [--steps N] [--size H W] [--frames N]
At every checkpoint it scores the held-out RMSE and the mean error at measured pixels as a fraction of
the mean depth, twice: for the depth the model publishes (`model.output_keeps_measurements`, the
default: measured pixels are the measurement) and for the propagation's own last step (the option
off), which shows how well the losses themselves keep the measurements. Prints the curves and writes
bench/results/scale_norm.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdc_core.data.synthetic.dataset import SyntheticScenes  # noqa: E402
from selfdc_core.devices import autocast_dtype  # noqa: E402
from selfdc_core.losses import SelfDCLoss  # noqa: E402
from selfdc_core.losses.scale import SCALE_NORMS  # noqa: E402
from selfdc_core.models import SelfDC  # noqa: E402

MODEL = {"backbone": "resnet18", "num_classes": 16, "prop_iterations": 4, "depth_scale": 20.0}


def load(seed: int, frames: int, size: tuple[int, int], beams: int) -> dict[str, torch.Tensor]:
    items = []
    for env in ("warehouse", "corridor"):
        ds = SyntheticScenes(frames, seed=seed, height=size[0], width=size[1], sparse="lidar",
                             lidar_beams=beams, with_gt=True, segments="oracle", environment=env,
                             max_depth=100.0)
        items += [ds[i] for i in range(frames)]
    return {k: torch.stack([it[k] for it in items]) for k in ("rgb", "sparse", "gt", "segments")}


def score(model: SelfDC, data: dict[str, torch.Tensor], precision) -> dict[str, float]:
    gt, sparse = data["gt"], data["sparse"]
    valid, measured = gt > 0, sparse > 0
    mean_depth = gt[valid].mean()
    out = {}
    model.eval()
    with torch.no_grad(), precision():
        for name, keep in (("published", True), ("propagation", False)):
            model.output_keeps_measurements = keep
            depth = model(data["rgb"], sparse)["depth"].float()
            if keep:
                out["rmse_m"] = float(((depth - gt)[valid] ** 2).mean().sqrt())
            out[f"measured_error_rel_{name}"] = float((depth - sparse)[measured].abs().mean() / mean_depth)
    model.output_keeps_measurements = True
    model.train()
    return out


def fit(mode: str, train: dict, val: dict, args, precision) -> list[dict]:
    torch.manual_seed(0)
    model = SelfDC(**MODEL).train()
    loss_fn = SelfDCLoss(scale_norm=mode)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    # The report's schedule: the lr decays 5x at 60% and again at 80% of the steps.
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * args.steps), int(0.8 * args.steps)], 0.2)
    curve, n, start = [], train["rgb"].shape[0], time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for step in range(args.steps + 1):
        if step % args.every == 0 or step == args.steps:
            curve.append({"step": step, **score(model, val, precision)})
            print(f"{mode:>6} {json.dumps(curve[-1])}  ({time.perf_counter() - start:.0f} s)", flush=True)
        if step == args.steps:
            break
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        b = {k: v[idx] for k, v in train.items() if k != "gt"}  # self-supervised: no GT in training
        opt.zero_grad()
        with precision():
            loss, _ = loss_fn(model(b["rgb"], b["sparse"]), b)
        loss.backward()
        opt.step()
        sched.step()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--frames", type=int, default=48, help="training frames per environment")
    ap.add_argument("--val-frames", type=int, default=16, help="held-out frames per environment")
    ap.add_argument("--beams", type=int, default=32, help="LiDAR beams")
    ap.add_argument("--size", type=int, nargs=2, default=[64, 80])
    ap.add_argument("--precision", default="auto", choices=("auto", "float32"),
                    help="auto: bfloat16 autocast on CPUs with native units")
    args = ap.parse_args()
    size = tuple(args.size)
    dtype = autocast_dtype(args.precision, torch.device("cpu"))

    def precision():
        return torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext()

    train = load(0, args.frames, size, args.beams)
    val = load(1000, args.val_frames, size, args.beams)
    results = {mode: fit(mode, train, val, args, precision) for mode in SCALE_NORMS}
    out = {"config": {**vars(args), "model": MODEL, "autocast": str(dtype)},
           "mean_depth_val_m": float(val["gt"][val["gt"] > 0].mean()),
           "max_depth_val_m": float(val["gt"].max()), "curves": results}
    print(f"{'scale_norm':>10} {'RMSE first->best->last (m)':>28} {'measured err, own last step':>28}")
    for mode, curve in results.items():
        rmse = [c["rmse_m"] for c in curve]
        own = curve[-1]["measured_error_rel_propagation"]
        print(f"{mode:>10} {rmse[1]:>10.3f} {min(rmse):>8.3f} {rmse[-1]:>8.3f} {100 * own:>26.2f} %")
    path = ROOT / "bench" / "results" / "scale_norm.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

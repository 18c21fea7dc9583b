"""Scale-aware structure losses on the large synthetic scenes (warehouse, corridor: depths to tens of
metres): for each loss.scale_norm, a small self-supervised fit, scored on held-out frames.

Run: .venv/bin/python bench/bench_scale_norm.py [--steps N] [--size H W] [--frames N]
Prints, per setting and checkpoint, the held-out RMSE and the final depth's mean error at measured
pixels as a fraction of the mean depth, and writes bench/results/scale_norm.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfdc_core.data.synthetic.dataset import SyntheticScenes  # noqa: E402
from selfdc_core.losses import SelfDCLoss  # noqa: E402
from selfdc_core.losses.scale import SCALE_NORMS  # noqa: E402
from selfdc_core.models import SelfDC  # noqa: E402


def load(seed: int, frames: int, size: tuple[int, int], samples: int) -> dict[str, torch.Tensor]:
    items = []
    for env in ("warehouse", "corridor"):
        ds = SyntheticScenes(frames, seed=seed, height=size[0], width=size[1], sparse="random",
                             num_samples=samples, with_gt=True, segments="oracle", environment=env,
                             max_depth=100.0)
        items += [ds[i] for i in range(frames)]
    return {k: torch.stack([it[k] for it in items]) for k in ("rgb", "sparse", "gt", "segments")}


def score(model: SelfDC, data: dict[str, torch.Tensor]) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        depth = model(data["rgb"], data["sparse"])["depth"]
    model.train()
    gt, measured = data["gt"], data["sparse"] > 0
    valid = gt > 0
    rmse = float(((depth - gt)[valid] ** 2).mean().sqrt())
    measured_err = float((depth - data["sparse"])[measured].abs().mean() / gt[valid].mean())
    return {"rmse_m": rmse, "measured_error_rel": measured_err}


def fit(mode: str, train: dict, val: dict, steps: int, every: int, batch: int) -> list[dict]:
    torch.manual_seed(0)
    model = SelfDC(backbone="resnet18", num_classes=32, prop_iterations=4, depth_scale=20.0).train()
    loss_fn = SelfDCLoss(scale_norm=mode)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    curve, n = [], train["rgb"].shape[0]
    for step in range(steps + 1):
        if step % every == 0:
            curve.append({"step": step, **score(model, val)})
            print(mode, curve[-1], flush=True)
        if step == steps:
            break
        idx = torch.arange(step * batch, (step + 1) * batch) % n
        b = {k: v[idx] for k, v in train.items() if k != "gt"}  # self-supervised: no GT in training
        opt.zero_grad()
        loss, _ = loss_fn(model(b["rgb"], b["sparse"]), b)
        loss.backward()
        opt.step()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, default=4, help="frames per environment (train and held out)")
    ap.add_argument("--samples", type=int, default=150, help="measured pixels per frame")
    ap.add_argument("--size", type=int, nargs=2, default=[48, 64])
    args = ap.parse_args()
    torch.set_num_threads(1)
    size = tuple(args.size)
    train, val = load(0, args.frames, size, args.samples), load(1000, args.frames, size, args.samples)
    results = {mode: fit(mode, train, val, args.steps, args.every, args.batch) for mode in SCALE_NORMS}
    out = {"config": vars(args), "mean_depth_val_m": float(val["gt"][val["gt"] > 0].mean()),
           "curves": results}
    path = ROOT / "bench" / "results" / "scale_norm.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

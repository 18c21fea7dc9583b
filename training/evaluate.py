#!/usr/bin/env python3
"""Evaluate a SelfDC checkpoint against nearest-neighbour and morphological fills on the same inputs.

Prints the paper's table as Markdown (NYU and indoor data: RMSE, REL, delta1-3 in %; KITTI-DC:
RMSE and MAE in mm, iRMSE and iMAE in 1/km), one row per method and sparse sample count, and
writes under --out: table.md, table.csv, per_image.csv and figures/qualitative_<N>.png
(RGB | sparse | SelfDC | nearest | morphological | GT | |SelfDC - GT|).

examples:
  python training/evaluate.py --checkpoint runs/nyu/best.pt --config config/train_nyu.yaml \\
      --num-samples 200 500 1000 2000
  python training/evaluate.py --checkpoint runs/kitti/best.pt --config config/train_kitti.yaml --figures 8
  python training/evaluate.py --checkpoint outputs/demo/best.pt      # the config stored in the checkpoint

The dataset is the config's data.val (or --split train), built with ground truth; key=value
overrides apply to the config first (e.g. data.val.root=/data/nyudepthv2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by training/train.py")
    parser.add_argument(
        "--config", help="training config YAML whose data section names the dataset "
        "(default: the config stored in the checkpoint)"
    )
    parser.add_argument(
        "--num-samples", type=int, nargs="+", metavar="N",
        help="sparse sample counts, one evaluation pass each; sets the dataset's num_samples (NYU; "
        "synthetic with sparse=random|tof) (default: the dataset's own setting)",
    )
    parser.add_argument("--split", default="val", choices=("train", "val"), help="default: val")
    parser.add_argument("--out", help="output folder (default: <checkpoint folder>/eval)")
    parser.add_argument("--figures", type=int, default=4, metavar="N", help="examples per figure (0: none)")
    parser.add_argument("--batch-size", type=int, help="default: train.val_batch_size or train.batch_size")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


def _config(args) -> dict:
    from selfdc_core.training.config import apply_override, load_config, validate_config

    if args.config is not None:
        return load_config(args.config, args.overrides)
    from selfdc_core.model_io import load_checkpoint

    cfg = load_checkpoint(args.checkpoint)["config"]
    for override in args.overrides:
        apply_override(cfg, override)
    validate_config(cfg)
    return cfg


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.figures < 0:
        print("error: --figures must be >= 0", file=sys.stderr)
        return 2
    from selfdc_core.evaluation import evaluate_checkpoint
    from selfdc_core.model_io import CheckpointError

    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    try:
        cfg = _config(args)
        report = evaluate_checkpoint(
            args.checkpoint, cfg, out, num_samples=args.num_samples, split=args.split,
            num_figures=args.figures, batch_size=args.batch_size, device=args.device,
            progress=not args.no_progress,
        )
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        # Missing data, a bad checkpoint or config: their messages say what to fix.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.markdown)
    print(f"\nwrote {out / 'table.md'}, {report.table_csv}, {report.per_image_csv}")
    for fig in report.figures:
        print(f"figure: {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

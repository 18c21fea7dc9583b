#!/usr/bin/env python3
"""Train SelfDC (self-supervised, or the supervised baseline) from a YAML config.

Usage:
  python training/train.py --config config/train_nyu.yaml [key=value ...]
  python training/train.py --config config/train_synthetic.yaml train.max_steps=200 train.out_dir=runs/s
  python training/train.py --config config/finetune_rosbag.yaml bag=<path> init=<checkpoint>
  python training/train.py --config config/train_nyu.yaml --resume          # from <out_dir>/last.pt
  torchrun --nproc_per_node=2 training/train.py --config config/train_kitti.yaml   # DDP

Overrides are dotted keys with YAML values (train.epochs=5, optim.betas=[0.9,0.99],
data.val=null, model.backbone=resnet18); an unknown key is an error naming it. The merged
config is written to <train.out_dir>/config.yaml next to last.pt and best.pt; TensorBoard logs
go to <train.out_dir>/tb. SIGINT/SIGTERM save last.pt and exit; --resume continues exactly.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="training config YAML (see config/)")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
        help="continue a run: model, optimiser, scheduler, epoch, step and RNG state "
        "(default checkpoint: <train.out_dir>/last.pt)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from selfdc_core.model_io import CheckpointError
    from selfdc_core.training.config import load_config

    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))
        return 0

    from selfdc_core.training.state import OutputError
    from selfdc_core.training.trainer import Trainer, TrainingDiverged

    trainer = None
    try:
        trainer = Trainer(cfg, resume=args.resume)
        result = trainer.fit()
    except (TrainingDiverged, CheckpointError, OutputError, FileNotFoundError, ValueError) as exc:
        # Data, checkpoint, output and config problems carry their own explanation; no traceback needed.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if trainer is not None:
            trainer.ctx.close()
    if trainer.ctx.is_main and result.status != "already_done":  # the trainer said why it did nothing
        print(f"{result.status}: epoch {result.epoch}, step {result.step}, last {result.last_checkpoint}, "
              f"best {result.best_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Compute segmentation pseudo-labels for one split of a training config's dataset.

Writes one single-channel 16-bit PNG per image to <cache-root>/<dataset key>.png (0 = unlabeled),
at the resolution the dataset stores its images. Already cached keys are skipped, so an interrupted
run resumes; `--shard i/n` splits the work across GPUs or machines (shard i takes every n-th image).
Failures are logged per file and listed at the end; the exit code is 1 if any file failed.
`--verify` first decodes every cached PNG of the shard and deletes the broken ones (truncated,
corrupt, wrong type), which the run then writes again.

examples:
  python training/make_masks.py --config config/nyu.yaml
  python training/make_masks.py --config config/nyu.yaml --generator sam \\
      segmentation.generator_kwargs.checkpoint=weights/sam_vit_b_01ec64.pth --shard 0/4
  python training/make_masks.py --config config/nyu.yaml --verify   # after a crash or a disk error
"""

from __future__ import annotations

import argparse
import logging
import sys

from selfdc_core.segmentation import (
    GENERATOR_NAMES,
    LabelCache,
    build_generator,
    make_masks,
    parse_shard,
    shard_indices,
)
from selfdc_core.training.build import build_split
from selfdc_core.training.config import load_config

log = logging.getLogger("make_masks")


def verify_cache(dataset, cache: LabelCache, shard=(0, 1)) -> tuple[int, list[tuple[str, str]]]:
    """Decode the cached label of every key of `shard`; delete those that do not decode.

    Returns (labels checked, [(key, why) of each deleted one]); make_masks then rewrites them.
    """
    parts = getattr(dataset, "datasets", [dataset])  # a ConcatDataset is walked part by part
    keys = [part.key(j) for part in parts for j in range(len(part))]
    checked, broken = 0, []
    for index in shard_indices(len(keys), shard):
        key = keys[index]
        if not cache.exists(key):
            continue
        checked += 1
        try:
            cache.load(key)
        except ValueError as err:
            log.warning("make_masks --verify: %s", err)
            cache.path(key).unlink()
            broken.append((key, str(err)))
    return checked, broken


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, help="training config YAML (its data and segmentation sections)"
    )
    parser.add_argument(
        "--split", default="train", choices=("train", "val"), help="dataset split (default: train)"
    )
    parser.add_argument(
        "--generator",
        choices=GENERATOR_NAMES,
        help="generator to run (default: segmentation.generator of the config; its generator_kwargs apply "
        "only when the name matches)",
    )
    parser.add_argument("--cache-root", help="output root (default: segmentation.cache_root of the config)")
    parser.add_argument(
        "--shard", type=_shard, default=(0, 1), help="process shard i of n, as i/n (default: 0/1 = all)"
    )
    parser.add_argument("--overwrite", action="store_true", help="recompute labels that are already cached")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="decode every cached label first and rewrite the broken ones (truncated or corrupt PNGs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.train.root=..."
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = load_config(args.config, args.overrides)
    seg = cfg["segmentation"]
    shard = args.shard
    cache_root = args.cache_root or seg["cache_root"]
    if cache_root is None:
        print(
            "error: no cache root: pass --cache-root or set segmentation.cache_root in the config",
            file=sys.stderr,
        )
        return 2
    name = args.generator or seg["generator"]
    kwargs = seg["generator_kwargs"] if name == seg["generator"] else {}
    # No segmentation section: the dataset must not look for the labels this run creates.
    dataset = build_split(cfg, args.split, with_segments=False)
    if dataset is None:
        print(f"error: data.{args.split} is not configured in {args.config}", file=sys.stderr)
        return 2
    cache = LabelCache(cache_root)
    if args.verify and not args.overwrite:
        checked, broken = verify_cache(dataset, cache, shard)
        print(f"verified {checked} cached labels: {len(broken)} broken, rewritten below")
        for key, why in broken:
            print(f"BROKEN {key}: {why}")
    summary = make_masks(
        dataset,
        build_generator(name, **kwargs),
        cache,
        shard=shard,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"make_masks {args.split} shard {shard[0]}/{shard[1]} -> {cache_root}: {summary.done} written, "
        f"{summary.skipped} already cached, {len(summary.failed)} failed (of {summary.total})"
    )
    for key, error in summary.failed:
        print(f"FAILED {key}: {error}")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The SelfDC pipeline end to end on CPU in a few minutes, with no download (`make demo`).

  1. set-up (done by `make`: .venv with everything installed)
  2. render synthetic indoor frames: RGB, simulated LiDAR, and held-out GT for evaluation
  3. pseudo-labels from the weight-free Felzenszwalb generator (the make_masks library)
  4. short self-supervised training (no ground truth read)
  5. evaluation table: SelfDC vs nearest-neighbour and morphological fills on unseen rooms
  6. a qualitative figure
  7. the checkpoint <train.out_dir>/best.pt, loadable by DepthCompleter and the ROS node

examples:
  python training/demo.py --config config/demo.yaml
  python training/demo.py --config config/demo.yaml train.epochs=2 train.out_dir=/tmp/demo

key=value overrides change any config key; the budget lives in config/demo.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="config/demo.yaml", help="default: config/demo.yaml")
    parser.add_argument("--figures", type=int, default=4, metavar="N", help="examples in the figure (4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return parser.parse_args(argv)


class Stages:
    """Prints numbered stage headers and keeps each stage's duration for the summary."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._name, self._start = None, 0.0

    def start(self, name: str) -> None:
        self.stop()
        self._name, self._start = name, time.perf_counter()
        print(f"\n== {name}", flush=True)

    def stop(self) -> None:
        if self._name is not None:
            self.times[self._name] = time.perf_counter() - self._start
            self._name = None


def render_frames(datasets: dict, progress: bool) -> None:
    """Render every frame once (the datasets cache them in memory for the later stages)."""
    from tqdm import tqdm

    for split, ds in datasets.items():
        for i in tqdm(range(len(ds)), desc=f"render {split}", unit="frame", disable=not progress):
            ds.frame(i)


def write_data_preview(path: Path, dataset, cache, count: int = 4) -> Path:
    """RGB | LiDAR | pseudo-labels of the first training frames."""
    from selfdc_core.figures import colorize_labels, comparison_grid, save_png
    from selfdc_core.visualize import colorize_depth

    rows = []
    for i in range(min(count, len(dataset))):
        frame, key = dataset.frame(i), dataset.key(i)
        sparse = dataset.sparse_depth(i, frame)
        rows.append([("RGB", frame.rgb), ("LiDAR (sparse)", colorize_depth(sparse)),
                     ("pseudo-labels", colorize_labels(cache.load(key)))])
    return save_png(path, comparison_grid(rows))


def run(cfg: dict, figures: int = 4, progress: bool = True) -> dict:
    """Stages 2-7 for a loaded config; returns the paths and the evaluation report."""
    import torch

    from selfdc_core.evaluation import evaluate_checkpoint
    from selfdc_core.segmentation import LabelCache, build_generator, make_masks
    from selfdc_core.training.build import build_split
    from selfdc_core.training.trainer import Trainer

    seg, out = cfg["segmentation"], Path(cfg["train"]["out_dir"])
    if cfg["train"]["mode"] != "self_supervised" or cfg["data"]["val"] is None or seg["cache_root"] is None:
        raise ValueError("the demo needs train.mode=self_supervised, a data.val split with GT for the "
                         "evaluation, and segmentation.cache_root for the pseudo-labels")
    cfg["train"]["progress"] = progress
    stages = Stages()
    print(f"SelfDC demo: torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}; output {out}")

    stages.start("2/6 synthetic data")
    datasets = {split: build_split(cfg, split, with_segments=False) for split in ("train", "val")}
    render_frames(datasets, progress)
    print(f"train: {datasets['train']}\nval:   {datasets['val']} (unseen rooms; GT used only for scoring)")

    stages.start("3/6 pseudo-labels")
    cache = LabelCache(seg["cache_root"])
    summary = make_masks(datasets["train"], build_generator(seg["generator"], **seg["generator_kwargs"]),
                         cache, progress=progress)
    if not summary.ok:
        raise RuntimeError(f"pseudo-labels failed for {len(summary.failed)} frames: {summary.failed[:3]}")
    preview = write_data_preview(out / "data_preview.png", datasets["train"], cache)
    print(f"{seg['generator']}: {summary.done} written, {summary.skipped} already cached -> {cache.root}")
    del datasets

    stages.start("4/6 self-supervised training")
    result = Trainer(cfg).fit()
    checkpoint = result.best_checkpoint or result.last_checkpoint
    print(f"{result.status}: {result.step} steps, {result.nan_batches} skipped batches")

    stages.start("5/6 evaluation on unseen rooms")
    report = evaluate_checkpoint(checkpoint, cfg, out / "eval", num_figures=figures,
                                 device=cfg["train"]["device"], progress=progress)
    print(report.markdown)
    stages.stop()
    return {"checkpoint": checkpoint, "report": report, "preview": preview, "stage_seconds": stages.times}


def main(argv=None) -> int:
    args = parse_args(argv)
    from selfdc_core.model_io import CheckpointError
    from selfdc_core.training.config import load_config

    started = time.perf_counter()
    try:
        cfg = load_config(args.config, args.overrides)
        out = run(cfg, figures=args.figures, progress=not args.no_progress)
    except (CheckpointError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = out["report"]
    print("\n== 6/6 outputs")
    for fig in report.figures:
        print(f"figure:     {fig}")
    print(f"table:      {report.table_csv.with_suffix('.md')} and {report.table_csv}")
    print(f"data:       {out['preview']}")
    print(f"checkpoint: {out['checkpoint']}")
    launch = "ros2 launch selfdc_ros completion.launch.py"
    print(f"  ROS 2:    {launch} checkpoint:={Path(out['checkpoint']).resolve()}")
    timings = ", ".join(f"{name.split(' ', 1)[1]} {sec:.0f} s" for name, sec in out["stage_seconds"].items())
    print(f"done in {time.perf_counter() - started:.0f} s ({timings})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

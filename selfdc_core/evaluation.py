"""Score a depth completer and the classical fills on the same inputs; write the paper's tables.

`evaluate` runs one pass over a dataset with ground truth. For every image it scores SelfDC
(through `predict_fn`) and each baseline of `selfdc_core.baselines` on the very same sparse
input, so a table row is directly comparable with the rows next to it. Averages are means of
per-image metrics, the convention of NYU and of the KITTI-DC benchmark.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from selfdc_core.baselines import BASELINES
from selfdc_core.data.loader import make_loader
from selfdc_core.metrics import METRIC_NAMES, per_image_metrics, to_kitti_units

# predict_fn(rgb (B,3,H,W) float in [0,1], sparse (B,1,H,W) metres) -> (B,1,H,W) dense metres.
PredictFn = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | np.ndarray"]

METRIC_KEYS = METRIC_NAMES


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    scale: float
    decimals: int


# The paper's columns. Metrics are computed in metres (and 1/m); KITTI tables show them in
# `to_kitti_units` (mm, 1/km), NYU tables show the deltas in percent.
TABLE_COLUMNS = {
    "nyu": (
        Column("RMSE (m)", "rmse", 1.0, 3),
        Column("REL", "rel", 1.0, 3),
        Column("δ1 (%)", "d1", 100.0, 1),
        Column("δ2 (%)", "d2", 100.0, 1),
        Column("δ3 (%)", "d3", 100.0, 1),
    ),
    "kitti": (
        Column("RMSE (mm)", "rmse", 1.0, 1),
        Column("MAE (mm)", "mae", 1.0, 1),
        Column("iRMSE (1/km)", "irmse", 1.0, 2),
        Column("iMAE (1/km)", "imae", 1.0, 2),
    ),
}


def table_style(dataset_name: str) -> str:
    """KITTI columns for KITTI-DC, the NYU columns for indoor data (NYU, synthetic rooms, bags)."""
    return "kitti" if dataset_name == "kitti" else "nyu"


@dataclass
class MethodScores:
    """All per-image metrics of one method at one sparse sample count."""

    method: str
    num_samples: int | None
    per_image: list[dict] = field(default_factory=list)  # {"key": str, **metrics}

    @property
    def mean(self) -> dict[str, float]:
        if not self.per_image:
            raise ValueError(f"{self.method}: no image was scored (no valid ground truth in the dataset?)")
        return {k: float(np.mean([m[k] for m in self.per_image])) for k in METRIC_KEYS}


@dataclass
class EvaluationResult:
    scores: list[MethodScores]
    examples: list[dict]  # for figures: rgb uint8, sparse, gt, predictions {method: depth}

    def extend(self, other: EvaluationResult) -> EvaluationResult:
        self.scores += other.scores
        self.examples += other.examples
        return self


def completer_predict_fn(completer) -> PredictFn:
    """Batched predictions of a `selfdc_core.inference.DepthCompleter` at the dataset's resolution."""

    def predict(rgb: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        out = completer.predict(rgb.to(completer.device), sparse.to(completer.device))
        return out["depth"].float().clamp_min(0.0)

    return predict


def _as_numpy(depth, shape: tuple[int, ...]) -> np.ndarray:
    arr = depth.detach().float().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    if arr.shape != shape:
        raise ValueError(f"predict_fn returned shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr).all():
        raise ValueError("predict_fn returned NaN or Inf depths")
    return arr.astype(np.float32, copy=False)


def batch_metrics(pred: np.ndarray, gt: np.ndarray, max_depth: float) -> list[dict[str, float] | None]:
    """Per-image metrics of a (B,1,H,W) batch; None for an image whose GT has no valid pixel."""
    out = per_image_metrics(torch.from_numpy(pred), torch.from_numpy(gt), max_depth)
    return [
        {k: float(out[k][i]) for k in METRIC_KEYS} if int(out["valid"][i]) > 0 else None
        for i in range(pred.shape[0])
    ]


def evaluate(
    predict_fn: PredictFn | None,
    dataset,
    max_depth: float,
    batch_size: int = 4,
    num_workers: int = 0,
    num_samples: int | None = None,
    method_name: str = "SelfDC",
    baselines: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    num_examples: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> EvaluationResult:
    """Score `predict_fn` (None: baselines only) and the classical fills over a dataset with GT.

    `num_samples` only labels the rows (the dataset decides the sparsity). `baselines` defaults
    to nearest and morphological fill; pass {} for none. The first `num_examples` images are
    kept, with every method's prediction, for qualitative figures. Items load under per-item
    seeds derived from `seed` (as in training), so randomly sampled sparse inputs repeat exactly.
    """
    if max_depth <= 0:
        raise ValueError(f"max_depth must be positive metres, got {max_depth}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: nothing to evaluate")
    baselines = dict(BASELINES if baselines is None else baselines)
    methods = ([method_name] if predict_fn is not None else []) + list(baselines)
    if not methods:
        raise ValueError("nothing to evaluate: predict_fn is None and no baseline is selected")
    scores = {m: MethodScores(m, num_samples) for m in methods}
    examples: list[dict] = []

    loader = make_loader(dataset, batch_size=batch_size, workers=num_workers, seed=seed, train=False)
    loader.sampler.start(0)
    if progress:
        from tqdm import tqdm

        label = f"evaluate ({num_samples} samples)" if num_samples else "evaluate"
        loader = tqdm(loader, desc=label, unit="batch", leave=False)
    for batch in loader:
        if "gt" not in batch:
            raise ValueError("evaluation needs ground truth: build the dataset with with_gt=True")
        gt = batch["gt"].numpy()
        preds = _predict_batch(batch, predict_fn, method_name, baselines)
        for name in methods:
            for key, m in zip(batch["key"], batch_metrics(preds[name], gt, max_depth), strict=True):
                if m is not None:
                    scores[name].per_image.append({"key": key, **m})
        examples += _examples(batch, preds, num_samples, num_examples - len(examples))
    return EvaluationResult(list(scores.values()), examples)


def _predict_batch(batch: dict, predict_fn: PredictFn | None, method_name: str,
                   baselines: Mapping[str, Callable[[np.ndarray], np.ndarray]]) -> dict[str, np.ndarray]:
    """Every method's (B,1,H,W) prediction for one batch."""
    preds = {}
    if predict_fn is not None:
        with torch.no_grad():
            preds[method_name] = _as_numpy(predict_fn(batch["rgb"], batch["sparse"]), batch["gt"].shape)
    sparse = batch["sparse"].numpy()
    for name, fill in baselines.items():
        preds[name] = np.stack([fill(s[0])[None] for s in sparse])
    return preds


def _examples(batch: dict, preds: dict[str, np.ndarray], num_samples: int | None, wanted: int) -> list[dict]:
    """Up to `wanted` images of the batch with every method's prediction, for figures."""
    out = []
    for i, key in enumerate(batch["key"][: max(wanted, 0)]):
        rgb = (batch["rgb"][i].permute(1, 2, 0).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
        out.append({
            "key": key,
            "num_samples": num_samples,
            "rgb": rgb,
            "sparse": batch["sparse"][i, 0].numpy(),
            "gt": batch["gt"][i, 0].numpy(),
            "predictions": {n: p[i, 0] for n, p in preds.items()},
        })
    return out


def _cell(value: float, column: Column) -> str:
    return f"{value * column.scale:.{column.decimals}f}"


def table_rows(scores: Sequence[MethodScores], style: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows (Method, Samples, the paper's columns) of a results table."""
    if style not in TABLE_COLUMNS:
        raise ValueError(f"table style must be one of {sorted(TABLE_COLUMNS)}, got {style!r}")
    columns = TABLE_COLUMNS[style]
    header = ["Method", "Samples", *(c.header for c in columns)]
    rows = []
    for s in scores:
        mean = to_kitti_units(s.mean) if style == "kitti" else s.mean
        samples = "-" if s.num_samples is None else str(s.num_samples)
        rows.append([s.method, samples, *(_cell(mean[c.key], c) for c in columns)])
    return header, rows


def markdown_table(scores: Sequence[MethodScores], style: str = "nyu") -> str:
    """The results as a GitHub Markdown table (numbers right-aligned)."""
    header, rows = table_rows(scores, style)
    align = ["---", "---:"] + ["---:"] * (len(header) - 2)
    lines = [header, align, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def write_csv(path: str | Path, scores: Sequence[MethodScores], style: str = "nyu") -> Path:
    """The table of `markdown_table` as CSV, plus the image count and every metric in SI units."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header, rows = table_rows(scores, style)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*header, "images", *(f"{k}_si" for k in METRIC_KEYS)])
        for s, row in zip(scores, rows, strict=True):
            mean = s.mean
            writer.writerow([*row, len(s.per_image), *(f"{mean[k]:.6g}" for k in METRIC_KEYS)])
    return path


def write_per_image_csv(path: str | Path, scores: Sequence[MethodScores]) -> Path:
    """One line per (method, sample count, image) with every metric in SI units."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "samples", "key", *METRIC_KEYS])
        for s in scores:
            for m in s.per_image:
                writer.writerow([s.method, s.num_samples, m["key"], *(f"{m[k]:.6g}" for k in METRIC_KEYS)])
    return path


@dataclass
class EvaluationReport:
    """What `evaluate_checkpoint` wrote and printed."""

    scores: list[MethodScores]
    style: str
    markdown: str
    table_csv: Path
    per_image_csv: Path
    figures: list[Path]


def evaluate_checkpoint(
    checkpoint: str | Path,
    cfg: dict,
    out_dir: str | Path,
    num_samples: Sequence[int] | None = None,
    split: str = "val",
    num_figures: int = 4,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> EvaluationReport:
    """Score a checkpoint and the classical fills on `cfg["data"][split]` (built with GT).

    One pass per entry of `num_samples` (each overriding the dataset's `num_samples`); None
    evaluates the dataset's own sparsity once. Writes table.md, table.csv, per_image.csv and
    figures/qualitative_<samples>.png (`num_figures` rows each) under `out_dir`.
    """
    from selfdc_core.data.factory import build_dataset
    from selfdc_core.figures import save_comparison_figure
    from selfdc_core.inference import DepthCompleter

    spec = cfg["data"].get(split)
    if spec is None:
        raise ValueError(f"config key 'data.{split}' is null: nothing to evaluate (set it to a dataset spec)")
    completer = DepthCompleter.from_checkpoint(checkpoint, device=device)
    out_dir = Path(out_dir)
    style = table_style(spec["name"])
    max_depth = float(cfg["data"]["max_depth"])
    batch_size = int(batch_size or cfg["train"]["val_batch_size"] or cfg["train"]["batch_size"])
    scores: list[MethodScores] = []
    figures: list[Path] = []
    for n in num_samples or [None]:
        split_spec = dict(spec) if n is None else {**spec, "num_samples": int(n)}
        # Ground truth on, pseudo-labels off: evaluation reads neither masks nor losses.
        split_spec.setdefault("with_gt", True)
        dataset = build_dataset({**cfg["data"], split: split_spec}, split, with_gt=True)
        label = n if n is not None else spec.get("num_samples")
        result = evaluate(
            completer_predict_fn(completer), dataset, max_depth, batch_size=batch_size,
            num_workers=int(cfg["train"]["workers"]), num_samples=label,
            num_examples=num_figures, seed=int(cfg["train"]["seed"]), progress=progress,
        )
        scores += result.scores
        if result.examples:
            name = f"qualitative_{n}.png" if n is not None else "qualitative.png"
            figures.append(save_comparison_figure(out_dir / "figures" / name, result.examples))
    markdown = markdown_table(scores, style)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "table.md").write_text(markdown + "\n", encoding="utf-8")
    return EvaluationReport(
        scores, style, markdown, write_csv(out_dir / "table.csv", scores, style),
        write_per_image_csv(out_dir / "per_image.csv", scores), figures,
    )

"""Qualitative figures in the style of the paper's Fig. 3: one row per example,
columns RGB | sparse | prediction(s) | GT | error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from selfdc_core.visualize import colorize_depth

LABEL_HEIGHT = 22


def _range(gt: np.ndarray | None, sparse: np.ndarray) -> tuple[float, float]:
    """One depth range per row, so every depth panel of a row shares its colours."""
    ref = gt if gt is not None and (gt > 0).any() else sparse
    valid = ref[np.isfinite(ref) & (ref > 0)]
    if valid.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(valid, [1, 99])
    return float(lo), float(max(hi, lo + 1e-3))


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_HEIGHT, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def error_map(pred: np.ndarray, gt: np.ndarray, max_error: float | None = None) -> np.ndarray:
    """|pred - gt| on valid GT as an RGB image (black = 0 error or no GT, bright = max_error)."""
    valid = np.isfinite(gt) & (gt > 0)
    err = np.where(valid, np.abs(pred - gt), 0.0).astype(np.float32)
    if max_error is None:
        max_error = float(np.percentile(err[valid], 99)) if valid.any() else 1.0
    scaled = np.clip(err / max(max_error, 1e-6), 0.0, 1.0)
    img = cv2.applyColorMap((255 * scaled).astype(np.uint8), cv2.COLORMAP_INFERNO)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img[~valid] = 0
    return img


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Integer label map -> RGB uint8, a fixed pseudo-random colour per id, 0 (unlabeled) black."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer (H,W) map, got {labels.dtype} {labels.shape}")
    count = int(labels.max(initial=0)) + 1
    palette = np.random.default_rng(0).integers(40, 256, size=(count, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[np.clip(labels, 0, None)]


def comparison_row(
    rgb: np.ndarray,
    sparse: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    gt: np.ndarray | None = None,
) -> list[tuple[str, np.ndarray]]:
    """The labelled panels of one example. The error panel is for the first prediction."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if not predictions:
        raise ValueError("predictions must name at least one method")
    for name, arr in [("sparse", sparse), ("gt", gt), *predictions.items()]:
        if arr is not None and np.shape(arr) != (h, w):
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected {(h, w)} to match rgb")
    lo, hi = _range(gt, sparse)
    # Isolated samples vanish when the figure is viewed scaled down; grow them for display only
    # (not dense patterns such as LiDAR rings, whose structure the dilation would hide).
    shown_sparse = np.asarray(sparse, np.float32)
    if (shown_sparse > 0).mean() < 0.02:
        shown_sparse = cv2.dilate(shown_sparse, np.ones((3, 3), np.uint8))
    panels = [("RGB", rgb), ("sparse", colorize_depth(shown_sparse, lo, hi))]
    panels += [(name, colorize_depth(pred, lo, hi)) for name, pred in predictions.items()]
    if gt is not None:
        first_name, first_pred = next(iter(predictions.items()))
        panels += [("GT", colorize_depth(gt, lo, hi)), (f"|{first_name} - GT|", error_map(first_pred, gt))]
    return panels


def comparison_grid(rows: Sequence[list[tuple[str, np.ndarray]]], gap: int = 4) -> np.ndarray:
    """Stack labelled panel rows (from `comparison_row`) into one RGB uint8 image."""
    if not rows:
        raise ValueError("rows must hold at least one example")
    lines = []
    for panels in rows:
        tiles = [_label(img, name) for name, img in panels]
        spacer = np.full((tiles[0].shape[0], gap, 3), 255, np.uint8)
        line = [t for tile in tiles for t in (tile, spacer)][:-1]
        lines.append(np.concatenate(line, axis=1))
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(ln, ((0, gap), (0, width - ln.shape[1]), (0, 0)), constant_values=255) for ln in lines]
    return np.concatenate(padded, axis=0)[:-gap]


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the figure {path}")
    return path


def save_comparison_figure(path: str | Path, examples: Sequence[Mapping]) -> Path:
    """One PNG grid from examples, each a mapping with rgb, sparse, predictions (name -> depth), gt."""
    rows = [comparison_row(e["rgb"], e["sparse"], e["predictions"], e.get("gt")) for e in examples]
    return save_png(path, comparison_grid(rows))

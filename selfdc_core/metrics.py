"""Depth-completion metrics: RMSE, MAE, iRMSE, iMAE, REL and the delta thresholds.

Conventions (as NLSPN evaluates):
- a pixel counts when its ground truth is valid: finite, gt > 0 and gt <= max_depth
  (10 m for NYU Depth v2, 80 m for KITTI-DC);
- the prediction is clamped to [min_depth, max_depth] first (min_depth = 1e-3 m by default),
  so the inverse metrics and the delta ratios stay finite;
- units: rmse/mae in metres, irmse/imae in 1/m, rel unitless, d1/d2/d3 the fraction (0..1) of
  pixels with max(pred/gt, gt/pred) < 1.25, 1.25^2, 1.25^3. `to_kitti_units` gives mm and 1/km;
- per image first, then the dataset figure is the mean over images that have a valid pixel.
"""

from __future__ import annotations

import numpy as np
import torch

METRIC_NAMES = ("rmse", "mae", "irmse", "imae", "rel", "d1", "d2", "d3")
DEFAULT_MIN_DEPTH = 1e-3


def _as_batch(x, name: str) -> torch.Tensor:
    """(H,W), (B,H,W) or (B,1,H,W) tensor/array -> (B, H*W) float64."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim != 3:
        raise ValueError(f"{name} must have shape (H,W), (B,H,W) or (B,1,H,W), got {tuple(x.shape)}")
    return x.detach().reshape(x.shape[0], -1).double()


def per_image_metrics(pred, gt, max_depth: float, min_depth: float = DEFAULT_MIN_DEPTH) -> dict:
    """Each metric as a (B,) float64 tensor, plus 'valid' = the number of valid pixels per image.
    Images without a valid pixel get NaN metrics (and valid = 0)."""
    if not (isinstance(max_depth, (int, float)) and max_depth > min_depth > 0):
        raise ValueError(f"max_depth must be a number > min_depth ({min_depth}), got {max_depth!r}")
    p, g = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    valid = torch.isfinite(g) & (g > 0) & (g <= max_depth)
    if not bool(torch.isfinite(p[valid]).all()):
        raise ValueError("pred contains NaN or Inf at pixels with valid ground truth")
    g = torch.where(valid, g, torch.ones_like(g))  # any positive value: masked out below
    p = torch.where(valid, p.clamp(min_depth, max_depth), torch.ones_like(p))
    n = valid.sum(1).double()

    def mean(x):
        return (x * valid).sum(1) / n  # NaN (0/0) for images without valid pixels

    err = p - g
    inv_err = 1.0 / p - 1.0 / g
    ratio = torch.maximum(p / g, g / p)
    out = {
        "rmse": mean(err.square()).sqrt(),
        "mae": mean(err.abs()),
        "irmse": mean(inv_err.square()).sqrt(),
        "imae": mean(inv_err.abs()),
        "rel": mean(err.abs() / g),
        "d1": mean((ratio < 1.25).double()),
        "d2": mean((ratio < 1.25**2).double()),
        "d3": mean((ratio < 1.25**3).double()),
    }
    out["valid"] = valid.sum(1)
    return out


def compute_metrics(pred, gt, max_depth: float, reduction: str = "mean",
                    min_depth: float = DEFAULT_MIN_DEPTH) -> dict:
    """Metrics of a batch. reduction="mean": floats averaged over the images that have a valid
    pixel (ValueError if none has); reduction="none": per_image_metrics (tensors of shape (B,))."""
    per_image = per_image_metrics(pred, gt, max_depth, min_depth)
    if reduction == "none":
        return per_image
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    has_valid = per_image["valid"] > 0
    if not bool(has_valid.any()):
        raise ValueError(f"gt has no valid pixel (gt > 0 and <= max_depth={max_depth}) in any image")
    return {k: float(per_image[k][has_valid].mean()) for k in METRIC_NAMES}


class MetricAccumulator:
    """Dataset averages: the mean of per-image metrics over all images seen with a valid pixel."""

    def __init__(self, max_depth: float, min_depth: float = DEFAULT_MIN_DEPTH):
        self.max_depth, self.min_depth = max_depth, min_depth
        self.reset()

    def reset(self) -> None:
        self._sums = dict.fromkeys(METRIC_NAMES, 0.0)
        self.count = 0  # images that contributed
        self.skipped = 0  # images without any valid ground-truth pixel

    def update(self, pred, gt) -> dict:
        """Adds a batch; returns its per-image metrics."""
        per_image = per_image_metrics(pred, gt, self.max_depth, self.min_depth)
        has_valid = per_image["valid"] > 0
        for k in METRIC_NAMES:
            self._sums[k] += float(per_image[k][has_valid].sum())
        self.count += int(has_valid.sum())
        self.skipped += int((~has_valid).sum())
        return per_image

    def compute(self) -> dict:
        if self.count == 0:
            raise ValueError("MetricAccumulator has no image with valid ground truth yet")
        return {k: v / self.count for k, v in self._sums.items()}


def to_kitti_units(metrics: dict) -> dict:
    """KITTI-DC reporting units: rmse/mae in mm, irmse/imae in 1/km; other entries unchanged."""
    scale = {"rmse": 1000.0, "mae": 1000.0, "irmse": 1000.0, "imae": 1000.0}
    return {k: v * scale[k] if k in scale else v for k, v in metrics.items()}

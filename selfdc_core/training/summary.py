"""Example-image panels for TensorBoard: RGB | sparse | prediction | error, one row per image."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from selfdc_core.visualize import colorize_depth


def _error_map(pred: np.ndarray, gt: np.ndarray | None, max_error: float) -> np.ndarray:
    """|pred - gt| where gt is valid, coloured (dark = small); black without GT."""
    if gt is None:
        return np.zeros((*pred.shape, 3), np.uint8)
    valid = gt > 0
    err = np.where(valid, np.abs(pred - gt), 0.0)
    scaled = np.clip(err / max(max_error, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def example_panel(
    batch: dict, pred: torch.Tensor, max_images: int = 4, max_depth: float | None = None
) -> np.ndarray:
    """uint8 (rows*H, 4*W, 3) panel of the first `max_images` items of a batch."""
    rows = []
    n = min(max_images, pred.shape[0])
    for i in range(n):
        rgb = batch["rgb"][i].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        rgb = (rgb * 255).round().astype(np.uint8)
        sparse = batch["sparse"][i, 0].detach().float().cpu().numpy()
        depth = pred[i, 0].detach().float().cpu().numpy()
        gt = batch["gt"][i, 0].detach().float().cpu().numpy() if "gt" in batch else None
        ref = gt if gt is not None and (gt > 0).any() else depth
        lo, hi = float(np.percentile(ref[ref > 0], 2)) if (ref > 0).any() else 0.0, max_depth
        if hi is None:
            hi = float(np.percentile(ref[ref > 0], 98)) if (ref > 0).any() else 1.0
        # Sparse points are single pixels: grow them so they are visible at TensorBoard scale.
        sparse_vis = cv2.dilate(sparse, np.ones((3, 3), np.uint8))
        rows.append(np.concatenate([
            rgb,
            colorize_depth(sparse_vis, lo, hi),
            colorize_depth(depth, lo, hi),
            _error_map(depth, gt, 0.1 * (hi - lo) + 1e-3),
        ], axis=1))
    return np.concatenate(rows, axis=0)

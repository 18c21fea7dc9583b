"""Depth colourisation shared by the ROS node, evaluation figures and TensorBoard."""

from __future__ import annotations

import cv2
import numpy as np


def colorize_depth(
    depth: np.ndarray,
    min_depth: float | None = None,
    max_depth: float | None = None,
    colormap: int = cv2.COLORMAP_TURBO,
) -> np.ndarray:
    """Map an (H,W) depth in metres to an RGB uint8 (H,W,3) image; invalid pixels are black.

    Invalid means 0, negative, NaN or Inf. With no range given, the 2nd-98th percentile of
    the valid depths is used (the automatic range of the node's colourised output).
    Near is red, far is blue.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H,W), got shape {d.shape}")
    valid = np.isfinite(d) & (d > 0)
    if min_depth is None or max_depth is None:
        lo, hi = np.percentile(d[valid], [2, 98]) if valid.any() else (0.0, 1.0)
        min_depth = lo if min_depth is None else min_depth
        max_depth = hi if max_depth is None else max_depth
    span = max(float(max_depth) - float(min_depth), 1e-6)
    scaled = np.clip((np.where(valid, d, max_depth) - min_depth) / span, 0.0, 1.0)
    gray = (255.0 * (1.0 - scaled)).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb

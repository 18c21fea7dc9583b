"""Classical (learning-free) depth completion, scored next to SelfDC on the same inputs.

Every fill take an (H,W) float32 sparse depth in metres with 0 = no measurement and return an
(H,W) float32 dense depth. An input without a single measurement has nothing to propagate:
it returns all zeros (which the metrics then score as a total miss) instead of raising.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# Ku et al. dilate with a diamond rather than a square so that a point spreads equally far
# in every direction instead of reaching further along the diagonals.
DIAMOND_KERNEL_5 = np.array(
    [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ],
    dtype=np.uint8,
)


def _check_sparse(sparse: np.ndarray) -> np.ndarray:
    d = np.asarray(sparse)
    if d.ndim != 2:
        raise ValueError(f"sparse must be an (H,W) depth map in metres, got shape {d.shape}")
    d = d.astype(np.float32, copy=False)
    if not np.isfinite(d).all():
        raise ValueError("sparse contains NaN or Inf; use 0 for 'no measurement'")
    if (d < 0).any():
        raise ValueError(f"sparse contains negative depths (min {float(d.min()):.3g} m)")
    return d


def nearest_fill(sparse: np.ndarray) -> np.ndarray:
    """Give every pixel the depth of its nearest measured pixel (Euclidean distance in pixels).

    Ties are broken by the distance transform's scan order. Empty input -> zeros.
    """
    d = _check_sparse(sparse)
    valid = d > 0
    if not valid.any():
        return np.zeros_like(d)
    # The EDT measures the distance to the nearest zero of its input, so invalid pixels are the
    # foreground and measured pixels the zeros whose coordinates come back as indices.
    rows, cols = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return d[rows, cols]


def _fill_empty(inv: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Dilate (a max filter on inverted depth, so the nearest surface wins) into empty pixels only."""
    dilated = cv2.dilate(inv, kernel)
    return np.where(inv > 0, inv, dilated)


def _extend_to_top(inv: np.ndarray) -> np.ndarray:
    """Copy each column's topmost measurement up to row 0 (sensors often see nothing above it)."""
    valid = inv > 0
    has_any = valid.any(axis=0)
    first_row = np.argmax(valid, axis=0)
    top_values = inv[first_row, np.arange(inv.shape[1])]
    above = (np.arange(inv.shape[0])[:, None] < first_row[None, :]) & has_any[None, :]
    return np.where(above, top_values[None, :], inv)


def morphological_fill(
    sparse: np.ndarray,
    max_depth: float | None = None,
    extend_to_top: bool = True,
    large_kernel: int = 31,
    blur: str = "bilateral",
) -> np.ndarray:
    """Dense depth by image processing alone, after Ku et al., "In Defense of Classical Image
    Processing: Fast Depth Completion on the CPU" (CRV 2018).

    Steps, all on inverted depth (max_depth - d) so that dilation, a max filter, lets nearer
    surfaces win over farther ones at occlusion boundaries, and 0 stays "empty":
      1. dilate with a 5x5 diamond;  2. close small holes (5x5);
      3. fill remaining empty pixels with a 7x7 dilation;  4. extend each column to the top row;
      5. fill large holes with a `large_kernel` dilation, then (for inputs far sparser than a
         LiDAR scan, e.g. 200 random NYU samples) give any pixel still empty its nearest value;
      6. 5x5 median blur against outliers, then a bilateral (edge-preserving) or Gaussian blur;
      7. invert back.
    `max_depth` defaults to just beyond the farthest measurement. Empty input -> zeros.
    Measured pixels keep their depth only approximately: the final blurs touch them too.
    """
    d = _check_sparse(sparse)
    valid = d > 0
    if not valid.any():
        return np.zeros_like(d)
    if blur not in ("bilateral", "gaussian"):
        raise ValueError(f"blur must be 'bilateral' or 'gaussian', got {blur!r}")
    if large_kernel < 1:
        raise ValueError(f"large_kernel must be a positive size in pixels, got {large_kernel}")
    farthest = float(d.max())
    if max_depth is None:
        max_depth = farthest + 1.0
    elif max_depth <= farthest:
        raise ValueError(f"max_depth ({max_depth} m) must exceed the farthest measurement ({farthest:.3g} m)")

    inv = np.where(valid, np.float32(max_depth) - d, np.float32(0)).astype(np.float32)
    inv = cv2.dilate(inv, DIAMOND_KERNEL_5)
    inv = cv2.morphologyEx(inv, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    inv = _fill_empty(inv, np.ones((7, 7), np.uint8))
    if extend_to_top:
        inv = _extend_to_top(inv)
    inv = _fill_empty(inv, np.ones((large_kernel, large_kernel), np.uint8))
    if not (inv > 0).all():
        inv = nearest_fill(inv)

    inv = cv2.medianBlur(inv, 5)
    if blur == "bilateral":
        # sigmaColor in metres of inverted depth: smooth within a surface, not across a step.
        inv = cv2.bilateralFilter(inv, 5, 1.5, 2.0)
    else:
        inv = cv2.GaussianBlur(inv, (5, 5), 0)
    out = np.float32(max_depth) - inv
    return np.clip(out, 0.0, None).astype(np.float32)


def linear_fill(sparse: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation over a Delaunay triangulation of the measured pixels.

    Inside the convex hull of the measurements every pixel is the barycentric blend of its
    triangle's three corners (so a plane is reproduced exactly and measurements are kept);
    outside the hull, where nothing brackets a pixel, it takes the nearest measurement
    (`nearest_fill`). Fewer than three measurements, or all on one line, have no triangle:
    the result is then `nearest_fill` everywhere. Empty input -> zeros.
    """
    d = _check_sparse(sparse)
    near = nearest_fill(d)
    rows, cols = np.nonzero(d > 0)
    if rows.size < 3:
        return near
    # Imported here: the triangulation is only needed by this fill, and scipy.spatial and
    # scipy.interpolate take noticeably longer to import than scipy.ndimage.
    from scipy.interpolate import LinearNDInterpolator
    from scipy.spatial import Delaunay, QhullError

    try:
        triangulation = Delaunay(np.column_stack([rows, cols]).astype(np.float64))
    except QhullError:  # every measurement on one line: no triangle to interpolate in
        return near
    interpolate = LinearNDInterpolator(triangulation, d[rows, cols].astype(np.float64), fill_value=np.nan)
    grid_rows, grid_cols = np.indices(d.shape)
    inside = interpolate(grid_rows.ravel(), grid_cols.ravel()).reshape(d.shape)
    return np.where(np.isnan(inside), near, inside).astype(np.float32)


BASELINES = {
    "nearest fill": nearest_fill,
    "morphological fill": morphological_fill,
    "linear fill": linear_fill,
}

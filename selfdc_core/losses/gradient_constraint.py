"""L_gc (eq. 1): penalise the largest depth gradients inside every local window."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .grid import grid_gradient, image_grid_gradient, segment_boundaries, top_count
from .validation import check_depth, check_image, check_segments, check_top_ratio

GC_BASES = ("mask", "image", "none")


def gradient_constraint_values(depth, segments, image, basis):
    """(values, eligible) on the grid for a constraint basis; see local_gradient_constraint_loss."""
    grad = grid_gradient(depth)
    if basis == "mask":
        if segments is None:
            raise ValueError("segments are required for L_gc with basis='mask' (or use basis='image'/'none')")
        check_segments(segments, depth)
        return grad, ~segment_boundaries(segments)
    if basis == "image":
        if image is None:
            raise ValueError("image is required for L_gc with basis='image' (or use basis='mask'/'none')")
        check_image(image, depth)
        weighted = grad * torch.exp(-image_grid_gradient(image.to(depth.dtype)))
        return weighted, torch.ones_like(grad, dtype=torch.bool)
    if basis == "none":
        return grad, torch.ones_like(grad, dtype=torch.bool)
    raise ValueError(f"basis must be one of {GC_BASES}, got {basis!r}")


def _window_shape(window, h, w):
    if window == "full":
        return h, w
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int or 'full', got {window!r}")
    return window, window


def local_gradient_constraint_loss(
    depth: torch.Tensor,
    segments: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
    window: int | str = 8,
    top_ratio: float = 0.02,
    basis: str = "mask",
) -> torch.Tensor:
    """L_gc on the (H-1)x(W-1) gradient grid.

    The grid is tiled from the top-left into window x window tiles; partial tiles at the right
    and bottom are kept; window="full" is one tile over the whole grid. Eligible pixels:
    basis "mask" -> not on a segment boundary; "image" -> all, with G weighted by exp(-G_image)
    (G of the RGB mean); "none" -> all. A tile of n pixels averages its min(ceil(top_ratio*n),
    #eligible) largest eligible values; tiles without eligible pixels are left out; the loss is
    the mean over all remaining tiles of all samples (0 if there are none).
    """
    check_depth(depth)
    top_ratio = check_top_ratio(top_ratio)
    values, eligible = gradient_constraint_values(depth, segments, image, basis)
    b, h, w = values.shape
    wh, ww = _window_shape(window, h, w)
    nh, nw = math.ceil(h / wh), math.ceil(w / ww)
    pad = (0, nw * ww - w, 0, nh * wh - h)

    def tiles(x):  # (B, nh*wh, nw*ww) -> (B*nh*nw, wh*ww)
        return x.reshape(b, nh, wh, nw, ww).permute(0, 1, 3, 2, 4).reshape(b * nh * nw, wh * ww)

    tile_values = tiles(F.pad(values, pad))
    tile_eligible = tiles(F.pad(eligible.to(torch.uint8), pad)).bool()  # padding is never eligible
    rows = (h - torch.arange(nh, device=depth.device) * wh).clamp(max=wh)
    cols = (w - torch.arange(nw, device=depth.device) * ww).clamp(max=ww)
    n_pixels = (rows[:, None] * cols[None, :]).flatten().repeat(b)
    take = torch.minimum(top_count(n_pixels, top_ratio), tile_eligible.sum(1))
    k = int(take.max())
    if k == 0:
        return values.sum() * 0
    key = tile_values.detach().masked_fill(~tile_eligible, -math.inf)
    picked = tile_values.gather(1, key.topk(k, dim=1).indices)  # gather keeps the gradient path
    keep = torch.arange(k, device=depth.device)[None, :] < take[:, None]
    tile_means = (picked * keep).sum(1) / take.clamp(min=1)
    return tile_means[take > 0].mean()

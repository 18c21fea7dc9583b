"""Smoothness losses: L_sms (eqs. 3-4) and the Table 5 variants it is compared with."""

from __future__ import annotations

import torch

from .grid import grid_gradient, image_grid_gradient, same_segment_gradient, segment_boundaries, top_count
from .grouped_topk import grouped_top_mean
from .validation import check_depth, check_image, check_segments, check_top_ratio


def selective_mask_aware_smoothness_loss(
    depth: torch.Tensor, segments: torch.Tensor, top_ratio: float = 0.4
) -> torch.Tensor:
    """L_sms on the (H-1)x(W-1) grid.

    For grid pixels of segment s > 0, G_s counts only differences to neighbours of the same
    segment. Each segment averages its ceil(top_ratio * n_s) largest G_s (n_s = its grid pixels;
    a segment present only in the last row/column has none and is not counted). A sample is the
    mean over its segments, each counting once; the batch is the mean over samples with at least
    one segment, and 0 when no sample has one. Label 0 (unlabeled) is never a segment.
    """
    check_depth(depth)
    check_segments(segments, depth)
    top_ratio = check_top_ratio(top_ratio)
    b = depth.shape[0]
    grad = same_segment_gradient(depth, segments).reshape(-1)
    seg = segments[:, :-1, :-1].long()
    num_ids = int(seg.max()) + 1
    # One group per (sample, id), compacted so that sparse large ids cost nothing. Label 0
    # gets groups too (cheaper than filtering pixels out); they are dropped at the end.
    group = (seg + torch.arange(b, device=seg.device)[:, None, None] * num_ids).reshape(-1)
    sizes = torch.bincount(group, minlength=b * num_ids)
    present = torch.nonzero(sizes).squeeze(1)
    compact = torch.zeros_like(sizes).index_fill(0, present, 1).cumsum(0) - 1
    means = grouped_top_mean(grad, compact.index_select(0, group), top_count(sizes[present], top_ratio))
    labelled = present % num_ids > 0
    if not bool(labelled.any()):
        return grad.sum() * 0
    sample_of_group = present // num_ids
    per_sample_sum = grad.new_zeros(b).index_add(0, sample_of_group, means * labelled)
    per_sample_n = grad.new_zeros(b).index_add(0, sample_of_group, labelled.to(grad.dtype))
    has_segments = per_sample_n > 0
    return (per_sample_sum[has_segments] / per_sample_n[has_segments]).mean()


def mask_aware_smoothness_loss(depth: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Table 5 method 3: L_sms using all gradients of every segment (top_ratio = 1)."""
    return selective_mask_aware_smoothness_loss(depth, segments, top_ratio=1.0)


def edge_aware_smoothness_loss(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """L_smooth (eq. 2) in mean form: mean over the grid of G * exp(-G_image), G_image being G
    of the image's RGB mean (the same weighting as L_gc's image basis)."""
    check_depth(depth)
    check_image(image, depth)
    return (grid_gradient(depth) * torch.exp(-image_grid_gradient(image.to(depth.dtype)))).mean()


def mask_based_smoothness_loss(depth: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Table 5 method 2: eq. 2 with the image weight replaced by the segment map, i.e. the mean
    over the grid of G * [not on a boundary] (boundary pixels weigh 0, all others 1; label 0 is
    treated as one more region)."""
    check_depth(depth)
    check_segments(segments, depth)
    return (grid_gradient(depth) * ~segment_boundaries(segments)).mean()

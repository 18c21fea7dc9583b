"""Gradient quantities on the (H-1)x(W-1) grid of pixels (i,j), i < H-1, j < W-1.

G(i,j) = |D(i,j+1) - D(i,j)| + |D(i+1,j) - D(i,j)|; B(i,j) marks a segment boundary.
"""

from __future__ import annotations

import math

import torch

# ceil(ratio * n) would give 8 for 0.07 * 100 (= 7.000000000000001) without this slack.
_CEIL_SLACK = 1e-9


def grid_gradient(x: torch.Tensor) -> torch.Tensor:
    """G of a (B,1,H,W) map -> (B,H-1,W-1)."""
    x = x[:, 0]
    base = x[:, :-1, :-1]
    return (x[:, :-1, 1:] - base).abs() + (x[:, 1:, :-1] - base).abs()


def image_grid_gradient(image: torch.Tensor) -> torch.Tensor:
    """G of the image's mean over its RGB channels, (B,3,H,W) -> (B,H-1,W-1)."""
    return grid_gradient(image.mean(dim=1, keepdim=True))


def segment_boundaries(segments: torch.Tensor) -> torch.Tensor:
    """B: True where the right or lower neighbour has another id, (B,H,W) -> (B,H-1,W-1) bool."""
    base = segments[:, :-1, :-1]
    return (segments[:, :-1, 1:] != base) | (segments[:, 1:, :-1] != base)


def same_segment_gradient(depth: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """G_s: like G, but a difference into another segment counts 0. (B,H-1,W-1)."""
    d = depth[:, 0]
    base_d, base_s = d[:, :-1, :-1], segments[:, :-1, :-1]
    dx = (d[:, :-1, 1:] - base_d).abs() * (segments[:, :-1, 1:] == base_s)
    dy = (d[:, 1:, :-1] - base_d).abs() * (segments[:, 1:, :-1] == base_s)
    return dx + dy


def top_count(n: torch.Tensor | int, ratio: float) -> torch.Tensor | int:
    """N = ceil(ratio * n), for an int or an integer tensor of pixel counts."""
    if isinstance(n, torch.Tensor):
        return torch.ceil(n.double() * ratio - _CEIL_SLACK).long()
    return math.ceil(n * ratio - _CEIL_SLACK)

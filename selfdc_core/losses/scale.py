"""Depth normalisation for the structure terms (L_gc, L_sms), so that one weight fits any depth range.

The paper's terms are in metres: a 1 % slope costs ten times more at 20 m than at 2 m, so KITTI
(depths up to 80 m) and NYU (up to 10 m) would need different weights. The options:
  "none"   the paper's formulation (metres).
  "median" depth / median of the sample's measurements (detached): gradients relative to the scene's
           typical depth.
  "local"  log(depth / median): a difference between neighbours becomes about their relative
           difference, i.e. normalised by the local depth.
"""

from __future__ import annotations

import torch

SCALE_NORMS = ("none", "median", "local")


def measured_median(sparse: torch.Tensor) -> torch.Tensor:
    """(B,1,1,1) median of each sample's measured depths (1 where a sample has none)."""
    flat = sparse.flatten(1)
    masked = torch.where(flat > 0, flat, torch.full_like(flat, float("nan")))
    median = masked.nanmedian(dim=1).values
    return torch.nan_to_num(median, nan=1.0).clamp(min=1e-3).view(-1, 1, 1, 1)


def normalise_depth(depth: torch.Tensor, sparse: torch.Tensor, mode: str) -> torch.Tensor:
    """The depth map the structure losses see under `mode` (one of SCALE_NORMS)."""
    if mode == "none":
        return depth
    if mode not in SCALE_NORMS:
        raise ValueError(f"scale_norm must be one of {SCALE_NORMS}, got {mode!r}")
    relative = depth / measured_median(sparse.detach())
    if mode == "median":
        return relative
    # A small floor keeps log finite where the propagation clamps depth to 0.
    return torch.log(relative.clamp(min=0) + 1e-3)

"""Losses against measured depth: L_dc (eq. 5) and the supervised baseline's L1 + L2."""

from __future__ import annotations

import torch

from .validation import check_depth, check_sparse


def depth_consistency_loss(depth: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """L_dc: per sample, the mean |D - S| over pixels with S > 0; then the mean over the batch.

    A sample without any measurement contributes 0 (it still counts in the batch mean), so an
    all-empty sparse batch gives exactly 0, never NaN.
    """
    check_depth(depth, min_size=1)
    check_sparse(sparse, depth)
    valid = (sparse > 0).to(depth.dtype)
    abs_err = ((depth - sparse).abs() * valid).flatten(1).sum(1)
    count = valid.flatten(1).sum(1)
    return (abs_err / count.clamp(min=1)).mean()


def supervised_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1 + L2 (mean absolute + mean squared error) over the batch's pixels with gt > 0.

    0 when no pixel has ground truth. Used only by the supervised baseline.
    """
    check_depth(pred, "pred", min_size=1)
    check_sparse(gt, pred, "gt")
    valid = gt > 0
    count = valid.sum().clamp(min=1).to(pred.dtype)
    diff = torch.where(valid, pred - gt, torch.zeros_like(pred))
    return diff.abs().sum() / count + diff.square().sum() / count

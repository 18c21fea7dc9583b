"""Input checks shared by the losses: bad input raises ValueError naming the argument."""

from __future__ import annotations

import torch

_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_depth(depth: torch.Tensor, name: str = "depth", min_size: int = 2) -> torch.Tensor:
    """A (B,1,H,W) floating map; H,W >= 2 by default (the gradient grid needs a row and a column)."""
    if not isinstance(depth, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B,1,H,W), got {type(depth).__name__}")
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"{name} must have shape (B,1,H,W), got {tuple(depth.shape)}")
    if not depth.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {depth.dtype}")
    if depth.shape[2] < min_size or depth.shape[3] < min_size:
        size = tuple(depth.shape[2:])
        raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels, got {size}")
    return depth


def check_sparse(sparse: torch.Tensor, depth: torch.Tensor, name: str = "sparse") -> torch.Tensor:
    """Same shape as depth, finite; 0 marks a missing measurement."""
    if not isinstance(sparse, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B,1,H,W), got {type(sparse).__name__}")
    if sparse.shape != depth.shape:
        raise ValueError(f"{name} must have the shape of depth {tuple(depth.shape)}, "
                         f"got {tuple(sparse.shape)}")
    if not sparse.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor in metres, got {sparse.dtype}")
    if not bool(torch.isfinite(sparse).all()):
        raise ValueError(f"{name} contains NaN or Inf; use 0 for pixels without a measurement")
    return sparse


def check_segments(segments: torch.Tensor, depth: torch.Tensor, name: str = "segments") -> torch.Tensor:
    """An integer (B,H,W) map matching depth, ids >= 0 (0 = unlabeled)."""
    if not isinstance(segments, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B,H,W), got {type(segments).__name__}")
    if segments.dtype not in _INTEGER_DTYPES:
        raise ValueError(f"{name} must be an integer tensor (int64 region ids), got {segments.dtype}")
    expected = (depth.shape[0], depth.shape[2], depth.shape[3])
    if tuple(segments.shape) != expected:
        raise ValueError(f"{name} must have shape (B,H,W) = {expected} to match depth, "
                         f"got {tuple(segments.shape)}")
    if segments.numel() and int(segments.min()) < 0:
        raise ValueError(f"{name} must hold ids >= 0 (0 = unlabeled), found {int(segments.min())}")
    return segments


def check_image(image: torch.Tensor, depth: torch.Tensor, name: str = "image") -> torch.Tensor:
    """A floating (B,3,H,W) RGB image in [0,1] matching depth."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (B,3,H,W), got {type(image).__name__}")
    expected = (depth.shape[0], 3, depth.shape[2], depth.shape[3])
    if tuple(image.shape) != expected:
        raise ValueError(f"{name} must have shape (B,3,H,W) = {expected} to match depth, "
                         f"got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"{name} must be a floating RGB tensor in [0,1], got {image.dtype}")
    lo, hi = float(image.min()), float(image.max())
    if not (lo >= -1e-3 and hi <= 1 + 1e-3):  # also catches NaN
        raise ValueError(f"{name} must hold RGB values in [0,1], got range [{lo}, {hi}]")
    return image


def check_top_ratio(top_ratio: float, name: str = "top_ratio") -> float:
    if not isinstance(top_ratio, (int, float)) or not 0 < top_ratio <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {top_ratio!r}")
    return float(top_ratio)

"""Input checks, normalisation and padding for SelfDC.forward: the model's single input stage."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# rgb may overshoot [0, 1] slightly after colour augmentation; 0..255 input is the mistake we catch.
RGB_RANGE_TOLERANCE = 0.05


def _check_layout(name: str, x: object, channels: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B,{channels},H,W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B,{channels},H,W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    return x


def validate_inputs(rgb: Tensor, sparse: Tensor) -> None:
    """Raise ValueError naming the argument when rgb/sparse break the forward() contract."""
    _check_layout("rgb", rgb, 3)
    _check_layout("sparse", sparse, 1)
    if rgb.shape[0] != sparse.shape[0] or rgb.shape[2:] != sparse.shape[2:]:
        raise ValueError(
            f"rgb {tuple(rgb.shape)} and sparse {tuple(sparse.shape)} must have the same batch size and H, W"
        )
    if rgb.device != sparse.device:
        raise ValueError(f"rgb is on {rgb.device} but sparse is on {sparse.device}")
    with torch.no_grad():
        # One host sync for all value checks (matters on CUDA).
        stats = torch.stack((
            (~torch.isfinite(sparse)).any().to(torch.float32),
            sparse.min().to(torch.float32),
            (~torch.isfinite(rgb)).any().to(torch.float32),
            rgb.min().to(torch.float32),
            rgb.max().to(torch.float32),
        )).tolist()
    sparse_bad, sparse_min, rgb_bad, rgb_min, rgb_max = stats
    if sparse_bad:
        raise ValueError("sparse contains NaN or Inf; use 0 for pixels without a measurement")
    if sparse_min < 0:
        raise ValueError(f"sparse must be depth in metres >= 0 (0 = no measurement), got min {sparse_min:g}")
    if rgb_bad:
        raise ValueError("rgb contains NaN or Inf")
    if rgb_min < -RGB_RANGE_TOLERANCE or rgb_max > 1 + RGB_RANGE_TOLERANCE:
        raise ValueError(
            f"rgb must be float in [0, 1] (not 0..255, not mean/std normalised), got range "
            f"[{rgb_min:g}, {rgb_max:g}]"
        )


def normalize_inputs(rgb: Tensor, sparse: Tensor, depth_scale: float) -> tuple[Tensor, Tensor]:
    """ImageNet mean/std for rgb; sparse depth divided by `depth_scale` (metres -> roughly [0, 1])."""
    mean = rgb.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = rgb.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std, sparse / depth_scale


def pad_to_multiple(x: Tensor, multiple: int, mode: str) -> Tensor:
    """Pad (B,C,H,W) at the bottom and right so that H and W are multiples of `multiple`."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

"""Bilinear sampling at deformable 3x3 kernel positions, planned once and reused.

deform_conv2d recomputes the four bilinear corners of every tap each time it runs. NLSPN's offsets are
the same for all propagation steps, so here they are turned once into
  * `top_left` (B, H*W, 9) int32: each tap's top-left corner in the flat, zero-bordered (H+2)x(W+2)
    map; the other corners are at fixed shifts from it (+1, +W+2, +W+3), so one index array serves all
    four;
  * separable bilinear factors, whose products are the corner weights, zero for corners outside the
    image: exactly deform_conv2d's zero padding.
All arrays are (B, H*W, 9) and contiguous, so every elementwise op on them runs at full speed, and
sampling is one gather per corner: standard ONNX ops (Pad, GatherElements, Mul, Add), no DeformConv.

Taps are row-major over the 3x3 kernel and offsets are (dy, dx) per tap, as in deform_conv2d.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL = 3
TAPS = KERNEL * KERNEL
CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))  # (row, column) of top-left, top-right, bottom-left, bottom-right


def bordered(values: Tensor) -> Tensor:
    """(B,1,H,W) -> (B, (H+2)*(W+2)): the map with a one-pixel zero border, flattened."""
    return F.pad(values, (1, 1, 1, 1)).flatten(1)


def unbordered(flat: Tensor, height: int, width: int) -> Tensor:
    """Inverse of `bordered` for gradients: (B, (H+2)*(W+2)) -> (B,1,H,W), the border dropped."""
    return flat.view(-1, 1, height + 2, width + 2)[:, :, 1:-1, 1:-1]


def tracing() -> bool:
    """True while the model is traced or compiled (ONNX export, torch.compile): plain ops only."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def _tap_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Regular (y, x) position of every tap of every pixel, (H*W, 9) each; cached in eager mode,
    computed in the graph when traced (a few cheap ops instead of megabytes of constants)."""
    if tracing():
        return _compute_tap_grid(height, width, dtype, device)
    return _cached_tap_grid(height, width, dtype, device)


@lru_cache(maxsize=8)
def _cached_tap_grid(height: int, width: int, dtype: torch.dtype, device: torch.device):
    return _compute_tap_grid(height, width, dtype, device)


def _compute_tap_grid(height: int, width: int, dtype: torch.dtype, device: torch.device):
    flat = torch.arange(height * width * TAPS, device=device)
    pixel, tap = flat // TAPS, flat % TAPS
    y = (pixel // width + tap // KERNEL - 1).to(dtype).view(-1, TAPS)
    x = (pixel % width + tap % KERNEL - 1).to(dtype).view(-1, TAPS)
    return y, x


@dataclass(frozen=True)
class CornerFactors:
    """Where the 9 taps of every pixel sample, and the separable bilinear weights of their corners.

    Each sample position is first clamped to [-1, H] x [-1, W]: a position beyond the image then
    reads only the zero border, which gives deform_conv2d's zero padding with no masks, since every
    corner a position can touch lies in the bordered map. The weight of corner (cy, cx) is
    row[cy] * col[cx], with row = (1 - fy, fy) and col = (1 - fx, fx). `slope_y` / `slope_x` (1 where
    the clamp did not act, else 0) are d fy / d y and d fx / d x, built only for the backward. All
    (B, H*W, 9).
    """

    top_left: Tensor
    row: tuple[Tensor, Tensor]
    col: tuple[Tensor, Tensor]
    slope_y: Tensor | None
    slope_x: Tensor | None
    height: int
    width: int

    @classmethod
    def from_offsets(cls, offsets: Tensor, with_slopes: bool = False) -> CornerFactors:
        """offsets (B,18,H,W) as (dy, dx) per tap, relative to the tap's regular grid position."""
        batch, _, height, width = offsets.shape
        off = offsets.reshape(batch, TAPS, 2, height * width).permute(2, 0, 3, 1).contiguous()  # (2,B,HW,9)
        grid_y, grid_x = _tap_grid(height, width, offsets.dtype, offsets.device)

        def axis(position: Tensor, size: int):
            clamped = position.clamp(-1, size)
            # The last corner row/column may be the far border (size), never beyond it.
            first = clamped.floor().clamp_(max=size - 1)
            frac = clamped - first
            slope = ((position > -1) & (position < size)).to(position.dtype) if with_slopes else None
            return first, (1 - frac, frac), slope

        y0, row, slope_y = axis(off[0] + grid_y, height)
        x0, col, slope_x = axis(off[1] + grid_x, width)
        # Non-finite offsets (a diverged model) keep NaN weights, as deform_conv2d gives NaN output,
        # but still get a valid index. The flat index is integer arithmetic: exact whatever precision
        # a backend (TensorRT in fp16) picks for the float ops before it.
        x0, y0 = (v.nan_to_num_(-1.0).to(torch.int32) for v in (x0, y0))
        top_left = torch.add(x0, y0, alpha=width + 2).add_(width + 3)
        return cls(top_left, row, col, slope_y, slope_x, height, width)

    @property
    def shifts(self) -> tuple[int, int, int, int]:
        """Flat distance of each corner from the top-left one, in CORNERS order."""
        row_length = self.width + 2
        return tuple(cy * row_length + cx for cy, cx in CORNERS)

    def weights(self) -> list[Tensor]:
        """Corner weights in CORNERS order, (B, H*W, 9) each."""
        return [self.row[cy] * self.col[cx] for cy, cx in CORNERS]

    @cached_property
    def corners(self) -> Tensor:
        """Flat bordered index of every corner of every tap, (B, H*W, 4, 9) int32 (CORNERS, then taps:
        each pixel's 36 entries side by side, and every write below runs over 9 contiguous values)."""
        shifts = torch.tensor(self.shifts, dtype=torch.int32, device=self.top_left.device)
        return self.top_left.unsqueeze(-2) + shifts.view(-1, 1)

    @cached_property
    def corner_weights(self) -> Tensor:
        """Bilinear weight of every corner of every tap, (B, H*W, 4, 9), laid out as `corners`."""
        out = self.row[0].new_empty(self.corners.shape)
        for k, (cy, cx) in enumerate(CORNERS):
            torch.mul(self.row[cy], self.col[cx], out=out[..., k, :])
        return out

    def sample_planned(self, values: Tensor) -> Tensor:
        """As `sample`, by one gather over all corners of the planned layout (eager mode)."""
        flat = bordered(values)
        taken = flat.gather(1, self.corners.flatten(1).long()).view_as(self.corner_weights)
        return (taken * self.corner_weights).sum(-2)

    def sample(self, values: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        """Weighted corner sums at every tap of (B,1,H,W) values -> (B, H*W, 9), by plain gathers."""
        flat = bordered(values)
        index = self.top_left.flatten(1).long()
        total = None
        for shift, weight in zip(self.shifts, self.weights() if weights is None else weights, strict=True):
            term = flat.gather(1, index + shift).view_as(weight) * weight
            total = term if total is None else total + term
        return total


def taps_to_channels(per_tap: Tensor, height: int, width: int) -> Tensor:
    """(B, H*W, 9) -> (B, 9, H, W)."""
    return per_tap.transpose(1, 2).reshape(per_tap.shape[0], TAPS, height, width)


def channels_to_taps(channels: Tensor) -> Tensor:
    """(B, 9, H, W) -> (B, H*W, 9), contiguous."""
    return channels.flatten(2).transpose(1, 2).contiguous()

"""Bilinear sampling at deformable 3x3 kernel positions, planned once and reused.

deform_conv2d recomputes the four bilinear corners of every tap each time it runs. NLSPN's offsets are
the same for all propagation steps, so here they are turned once into
  * `columns` (B, H*W*36) int32: the position of each tap's 4 bilinear corners (top-left, top-right,
    bottom-left, bottom-right) in the flat, zero-bordered (H+2)x(W+2) map;
  * `weights` (B, H*W, 9, 4): their bilinear weights, zero for corners outside the image: exactly
    deform_conv2d's zero padding.
The layout is pixel-major, so that the 36 (column, weight) pairs of one output pixel are contiguous:
that is a CSR sparse matrix row (gather_propagation.py) as well as a plain gather (`sample`,
`weighted_sum`: standard ONNX ops, no DeformConv).

Taps are row-major over the 3x3 kernel and offsets are (dy, dx) per tap, as in deform_conv2d.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL = 3
TAPS = KERNEL * KERNEL


def bordered(values: Tensor) -> Tensor:
    """(B,1,H,W) -> (B, (H+2)*(W+2)): the map with a one-pixel zero border, flattened."""
    return F.pad(values, (1, 1, 1, 1)).flatten(1)


def unbordered(flat: Tensor, height: int, width: int) -> Tensor:
    """Inverse of `bordered` for gradients: (B, (H+2)*(W+2)) -> (B,1,H,W), the border dropped."""
    return flat.view(-1, 1, height + 2, width + 2)[:, :, 1:-1, 1:-1]


@dataclass(frozen=True)
class BilinearPlan:
    """Where each of the 9 taps of every pixel samples a (B,1,H,W) map, and with which weights."""

    columns: Tensor  # (B, H*W*36) int32: bordered-map position of each (tap, corner), pixel-major
    weights: Tensor  # (B, H*W, 9, 4)
    height: int
    width: int

    @classmethod
    def from_offsets(cls, offsets: Tensor) -> BilinearPlan:
        """offsets (B,18,H,W) as (dy, dx) per tap, relative to the tap's regular grid position."""
        batch, _, height, width = offsets.shape
        row = width + 2
        off = offsets.view(batch, TAPS, 2, height * width).permute(0, 3, 1, 2).contiguous()  # (B,HW,9,2)
        pixel = torch.arange(height * width, device=offsets.device).view(-1, 1)
        tap = torch.arange(TAPS, device=offsets.device).view(1, -1)
        y = off[..., 0] + (pixel // width + tap // KERNEL - 1).to(offsets.dtype)
        x = off[..., 1] + (pixel % width + tap % KERNEL - 1).to(offsets.dtype)
        y0, x0 = torch.floor(y), torch.floor(x)
        fy, fx = y - y0, x - x0

        def inside(first: Tensor, size: int) -> tuple[Tensor, Tensor]:
            return (((first >= 0) & (first < size)).to(offsets.dtype),
                    ((first >= -1) & (first < size - 1)).to(offsets.dtype))

        (in_y0, in_y1), (in_x0, in_x1) = inside(y0, height), inside(x0, width)
        wy0, wy1, wx0, wx1 = (1 - fy) * in_y0, fy * in_y1, (1 - fx) * in_x0, fx * in_x1
        weights = torch.stack((wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1), dim=-1)
        # Clamp so that every read stays inside the zero border; clamped corners have weight 0.
        top_left = ((y0.clamp(-1, height - 1) + 1) * row + (x0.clamp(-1, width - 1) + 1)).to(torch.int32)
        corner = torch.tensor((0, 1, row, row + 1), dtype=torch.int32, device=offsets.device)
        columns = (top_left.unsqueeze(-1) + corner).view(batch, -1)
        return cls(columns, weights, height, width)

    def with_weights(self, weights: Tensor) -> BilinearPlan:
        return BilinearPlan(self.columns, weights, self.height, self.width)

    def gather(self, values: Tensor) -> Tensor:
        """The corner values of every tap: (B,1,H,W) -> (B, H*W, 9, 4)."""
        return bordered(values).gather(1, self.columns.long()).view(self.weights.shape)

    def sample(self, values: Tensor) -> Tensor:
        """Bilinear samples of a (B,1,H,W) map at the 9 taps: (B,9,H,W)."""
        sampled = (self.gather(values) * self.weights).sum(-1)  # (B, HW, 9)
        return sampled.transpose(1, 2).reshape(values.shape[0], TAPS, self.height, self.width)

    def weighted_sum(self, values: Tensor) -> Tensor:
        """Sum over taps and corners of weights * corner values: (B,1,H,W) -> (B,1,H,W)."""
        return (self.gather(values) * self.weights).flatten(2).sum(-1).view_as(values)

"""NLSPN's propagation and confidence sampling over bilinear corners planned once per forward.

`propagate(depth, offsets, affinity, steps, sparse)` runs D <- sum over taps and corners of
affinity * bilinear weight * D[corner], with NLSPN's preserve_input reset (measured pixels set to the
measurement before every step) when `sparse` is given. `sample_taps(values, offsets)` samples a map at
the 9 taps (NLSPN's confidence at the neighbours).

Eager mode, one image at a time (so temporaries stay small):
  * the corners become one CSR sparse matrix over the flat zero-bordered map (36 entries per pixel,
    none for border pixels, which so stay zero), and a step is one sparse matrix-vector product (MKL
    on CPU, cuSPARSE on CUDA) and one reset;
  * custom autograd Functions keep only the offsets, the affinities and each step's input map. Their
    backward rebuilds the corners, runs A^T g as index_adds and turns the per-corner gradients into
    offset and affinity gradients analytically (the derivative of bilinear interpolation, as
    deform_conv2d's backward does).
Traced or compiled (ONNX export, torch.compile), the same steps run as dense gathers over the whole
batch, which every backend supports.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch
from torch import Tensor

from .bilinear_plan import (
    TAPS,
    CornerFactors,
    bordered,
    channels_to_taps,
    taps_to_channels,
    tracing,
    unbordered,
)


def _reset(depth: Tensor, sparse: Tensor | None) -> Tensor:
    return depth if sparse is None else torch.where(sparse > 0, sparse, depth)


def image_plans(offsets: Tensor) -> list[CornerFactors] | None:
    """Each image's corners and bilinear factors, planned once per forward and shared by the confidence
    sampling and the propagation (eager mode; None when traced, where the graph plans for itself)."""
    if tracing():
        return None
    offsets = offsets.detach()
    return [CornerFactors.from_offsets(offsets[b : b + 1]) for b in range(offsets.shape[0])]


def propagate(depth: Tensor, offsets: Tensor, affinity: Tensor, steps: int,
              sparse: Tensor | None = None, plans: list[CornerFactors] | None = None) -> Tensor:
    """`steps` steps on (B,1,H,W) depth with offsets (B,18,H,W) and affinity (B,9,H,W); `plans` from
    `image_plans(offsets)` saves planning the corners again."""
    if steps == 0:
        return depth
    if tracing():
        factors = CornerFactors.from_offsets(offsets)
        per_tap = channels_to_taps(affinity)
        weights = [w * per_tap for w in factors.weights()]
        for _ in range(steps):
            depth = factors.sample(_reset(depth, sparse), weights).sum(-1).view_as(depth)
        return depth
    return _Propagation.apply(depth, offsets, affinity, sparse, steps, plans)


def sample_taps(values: Tensor, offsets: Tensor, plans: list[CornerFactors] | None = None) -> Tensor:
    """Bilinear samples of (B,1,H,W) values at the 9 taps -> (B,9,H,W); no gradient to the offsets."""
    if tracing():
        return taps_to_channels(CornerFactors.from_offsets(offsets).sample(values), *values.shape[-2:])
    return _SampleTaps.apply(values, offsets.detach(), plans)


def _spread(factors: CornerFactors, weights: list[Tensor], per_entry: Tensor) -> Tensor:
    """Adjoint of sampling: add weight * per_entry (H*W*9,) into each corner of a bordered map."""
    spread = per_entry.new_zeros((factors.height + 2) * (factors.width + 2))
    columns = factors.top_left.flatten()
    for shift, weight in zip(factors.shifts, weights, strict=True):
        spread[shift:].index_add_(0, columns, weight.flatten() * per_entry)
    return spread


class _ImageOperator:
    """One image's propagation weights and corners over its flat zero-bordered map."""

    def __init__(self, offsets: Tensor, affinity: Tensor, sparse: Tensor | None,
                 factors: CornerFactors | None = None):
        self.factors = CornerFactors.from_offsets(offsets) if factors is None else factors
        self.per_tap = channels_to_taps(affinity)
        # All (corner, tap) weights of a pixel side by side, (1, H*W, 4, 9), as its CSR row holds them;
        # weights[k] is corner k's (1, H*W, 9) view.
        self.values = self.factors.corner_weights * self.per_tap.unsqueeze(-2)
        self.weights = list(self.values.unbind(-2))
        self.measured = None if sparse is None else bordered(sparse > 0).flatten()
        self.anchors = None if sparse is None else bordered(sparse).flatten()
        self.area = (self.factors.height + 2) * (self.factors.width + 2)

    def matrix(self) -> Tensor:
        """All 36 (corner, tap) entries of each pixel in one CSR row: one mv per step."""
        f = self.factors
        crow = _row_starts(f.height, f.width, f.top_left.device)
        return _csr(crow, f.corners.flatten(), self.values.flatten(), (self.area, self.area))

    def reset(self, x: Tensor) -> Tensor:
        return x if self.measured is None else torch.where(self.measured, self.anchors, x)

    def pixel_gradient(self, grad: Tensor) -> Tensor:
        """A bordered (area,) gradient repeated over the 9 taps of each pixel: (H*W*9,)."""
        f = self.factors
        pixels = unbordered(grad.view(1, -1), f.height, f.width).reshape(-1, 1)
        return pixels.expand(-1, TAPS).reshape(-1)


class _Propagation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, depth: Tensor, offsets: Tensor, affinity: Tensor, sparse: Tensor | None, steps: int,
                plans: list[CornerFactors] | None):
        batch, _, height, width = depth.shape
        out = torch.empty_like(depth)
        keep = any(ctx.needs_input_grad[:3])
        inputs = depth.new_empty(steps, batch, (height + 2) * (width + 2)) if keep else None
        for b in range(batch):
            op = _image_operator(offsets, affinity, sparse, b, None if plans is None else plans[b])
            matrix, x = op.matrix(), bordered(depth[b : b + 1]).flatten()
            for t in range(steps):
                x = op.reset(x)
                if inputs is not None:
                    inputs[t, b] = x
                x = torch.mv(matrix, x)
            out[b] = unbordered(x.view(1, -1), height, width)[0]
        ctx.save_for_backward(offsets, affinity, sparse, inputs)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        offsets, affinity, sparse, inputs = ctx.saved_tensors
        height, width = grad.shape[-2:]
        grad_depth, grad_offsets, grad_affinity = (torch.zeros_like(t) for t in (grad, offsets, affinity))
        for b in range(grad.shape[0]):
            factors = CornerFactors.from_offsets(offsets[b : b + 1], with_slopes=True)
            op = _image_operator(offsets, affinity, sparse, b, factors)
            columns = op.factors.top_left.flatten()
            per_corner = [torch.zeros_like(w).flatten() for w in op.weights]
            g = bordered(grad[b : b + 1]).flatten()
            for t in reversed(range(inputs.shape[0])):
                g_entries = op.pixel_gradient(g)
                for shift, acc in zip(op.factors.shifts, per_corner, strict=True):
                    acc.addcmul_(inputs[t, b, shift:].index_select(0, columns), g_entries)
                g = _spread(op.factors, op.weights, g_entries)
                if op.measured is not None:
                    # The reset replaced measured pixels: nothing flows to what they held before.
                    g = g.masked_fill(op.measured, 0)
            grad_depth[b] = unbordered(g.view(1, -1), height, width)[0]
            per_corner = [acc.view_as(w) for acc, w in zip(per_corner, op.weights, strict=True)]
            d_off, d_aff = _bilinear_gradients(op.factors, op.per_tap, per_corner)
            grad_offsets[b], grad_affinity[b] = d_off.view_as(offsets[b]), d_aff.view_as(affinity[b])
        return grad_depth, grad_offsets, grad_affinity, None, None, None


def _image_operator(offsets: Tensor, affinity: Tensor, sparse: Tensor | None, b: int,
                    factors: CornerFactors | None = None) -> _ImageOperator:
    anchors = None if sparse is None else sparse[b : b + 1]
    return _ImageOperator(offsets[b : b + 1], affinity[b : b + 1], anchors, factors)


def _csr(crow: Tensor, columns: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # CSR is marked beta; mv on it is covered by the tests
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, columns, values, size=size, check_invariants=False)


@lru_cache(maxsize=8)
def _row_starts(height: int, width: int, device: torch.device) -> Tensor:
    """CSR row starts over the bordered map: 36 entries per image pixel, none on the border."""
    ones = torch.ones(1, 1, height, width, dtype=torch.int32, device=device)
    per_row = bordered(ones).flatten() * (4 * TAPS)
    return torch.cat((per_row.new_zeros(1), per_row.cumsum(0, dtype=torch.int32)))


def _bilinear_gradients(factors: CornerFactors, per_tap: Tensor, per_corner: list[Tensor]):
    """Offset (1,18,H,W) and affinity (1,9,H,W) gradients from those of the corner weights, where
    weight(cy, cx) = affinity * row[cy] * col[cx] and row, col are bilinear in y, x."""
    g00, g01, g10, g11 = per_corner
    (r0, r1), (c0, c1) = factors.row, factors.col
    by_row = (g00 * c0 + g01 * c1, g10 * c0 + g11 * c1)  # summed over the x corners
    by_col = (g00 * r0 + g10 * r1, g01 * r0 + g11 * r1)  # summed over the y corners
    grad_affinity = r0 * by_row[0] + r1 * by_row[1]
    grad_y = per_tap * factors.slope_y * (by_row[1] - by_row[0])
    grad_x = per_tap * factors.slope_x * (by_col[1] - by_col[0])
    grad_offsets = torch.stack((grad_y, grad_x), -1).flatten(2).transpose(1, 2)  # (1, 18, HW)
    return grad_offsets, taps_to_channels(grad_affinity, factors.height, factors.width)


class _SampleTaps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: Tensor, offsets: Tensor, plans: list[CornerFactors] | None):
        height, width = values.shape[-2:]
        out = values.new_empty(values.shape[0], TAPS, height, width)
        for b in range(values.shape[0]):
            factors = CornerFactors.from_offsets(offsets[b : b + 1]) if plans is None else plans[b]
            sampled = factors.sample_planned(values[b : b + 1])
            out[b] = taps_to_channels(sampled, height, width)[0]
        ctx.save_for_backward(offsets)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (offsets,) = ctx.saved_tensors
        height, width = grad.shape[-2:]
        grad_values = grad.new_empty(grad.shape[0], 1, height, width)
        for b in range(grad.shape[0]):
            factors = CornerFactors.from_offsets(offsets[b : b + 1])
            spread = _spread(factors, factors.weights(), channels_to_taps(grad[b : b + 1]).flatten())
            grad_values[b] = unbordered(spread.view(1, -1), height, width)[0]
        return grad_values, None, None

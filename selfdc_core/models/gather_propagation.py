"""NLSPN's propagation steps over a precomputed BilinearPlan.

`propagate(depth, plan, steps, sparse)` runs D <- sum over taps and corners of w * D[corner], with
NLSPN's preserve_input reset (measured pixels set to the measurement before every step) when `sparse`
is given. plan.weights already include the affinities.

In eager mode the plan becomes one sparse CSR matrix over the batch of zero-bordered maps (36 entries
per image pixel, none for border pixels, which so stay zero) and every step is one sparse
matrix-vector product (MKL on CPU, cuSPARSE on CUDA) and one reset. With autograd on, one custom
Function runs all the steps and keeps only each step's input vector; its backward is A^T g (an
index_add) and, for the weights, one gather per step. When the model is traced or compiled (ONNX
export, torch.compile) the same steps run as dense gathers, which every backend supports.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .bilinear_plan import BilinearPlan, bordered, unbordered


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def propagate(depth: Tensor, plan: BilinearPlan, steps: int, sparse: Tensor | None = None) -> Tensor:
    """`steps` propagation steps of a (B,1,H,W) depth map."""
    if steps == 0:
        return depth
    if _tracing():
        for _ in range(steps):
            depth = plan.weighted_sum(depth if sparse is None else torch.where(sparse > 0, sparse, depth))
        return depth
    operator = _BorderedOperator(plan, sparse)
    if torch.is_grad_enabled() and (depth.requires_grad or plan.weights.requires_grad):
        return _PropagateSteps.apply(depth, plan.weights, operator, steps)
    return operator.unborder(operator.run(bordered(depth).flatten(), plan.weights, steps))


class _BorderedOperator:
    """The plan as a CSR matrix acting on the flattened batch of zero-bordered maps."""

    def __init__(self, plan: BilinearPlan, sparse: Tensor | None):
        batch, device = plan.columns.shape[0], plan.columns.device
        self.height, self.width = plan.height, plan.width
        area = (plan.height + 2) * (plan.width + 2)
        start = torch.arange(batch, dtype=torch.int32, device=device).view(batch, 1) * area
        self.columns = (plan.columns + start).flatten()
        # Row pointers: 36 entries for every image pixel, none for border pixels.
        per_pixel = plan.columns.shape[1] // (plan.height * plan.width)
        interior = bordered(torch.ones(batch, 1, plan.height, plan.width, dtype=torch.int32,
                                       device=device)).flatten() * per_pixel
        self.crow = torch.cat((interior.new_zeros(1), interior.cumsum(0, dtype=torch.int32)))
        self.size = batch * area
        self.measured = None if sparse is None else bordered(sparse > 0).flatten()
        self.anchors = None if sparse is None else bordered(sparse).flatten()

    def reset(self, x: Tensor) -> Tensor:
        return x if self.measured is None else torch.where(self.measured, self.anchors, x)

    def run(self, x: Tensor, weights: Tensor, steps: int, keep: list[Tensor] | None = None) -> Tensor:
        with warnings.catch_warnings():  # CSR is marked beta; mv on it is stable and covered by tests
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            matrix = torch.sparse_csr_tensor(self.crow, self.columns, weights.detach().flatten(),
                                             size=(self.size, self.size), check_invariants=False)
        for _ in range(steps):
            x = self.reset(x)
            if keep is not None:
                keep.append(x)
            x = torch.mv(matrix, x)
        return x

    def unborder(self, x: Tensor) -> Tensor:
        return unbordered(x.view(-1, (self.height + 2) * (self.width + 2)), self.height, self.width)


class _PropagateSteps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, depth: Tensor, weights: Tensor, operator: _BorderedOperator, steps: int):
        inputs: list[Tensor] = []
        out = operator.run(bordered(depth).flatten(), weights, steps, inputs)
        ctx.save_for_backward(weights, *inputs)
        ctx.operator = operator
        return operator.unborder(out).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights, *inputs = ctx.saved_tensors
        op: _BorderedOperator = ctx.operator
        per_pixel = weights.detach().reshape(grad.numel(), -1)  # (B*H*W, 36)
        grad_weights = torch.zeros_like(per_pixel) if ctx.needs_input_grad[1] else None
        for x in reversed(inputs):
            g = grad.reshape(-1, 1)
            if grad_weights is not None:
                grad_weights.addcmul_(x.index_select(0, op.columns).view_as(per_pixel), g)
            spread = grad.new_zeros(op.size).index_add_(0, op.columns, (per_pixel * g).flatten())
            if op.measured is not None:
                # The reset replaced measured pixels: no gradient flows to what they held before.
                spread = spread.masked_fill(op.measured, 0)
            grad = op.unborder(spread)
        if grad_weights is not None:
            grad_weights = grad_weights.view_as(weights)
        return grad, grad_weights, None, None

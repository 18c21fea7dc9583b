"""Non-local spatial propagation (NLSPN, Park et al. ECCV 2020).

Each pixel p is updated from itself and K=8 neighbours sampled bilinearly (zero outside the image)
at learned positions p + p_k + dp_k around a 3x3 kernel:
    D'(p) = a_c(p) D(p) + sum_k a_k(p) D(p + p_k + dp_k)
The affinities use NLSPN's TGASS normalisation: a_k = tanh(raw_k) / gamma' weighted by the confidence
sampled at each neighbour, then divided by max(1, sum_k |a_k|) so that sum_k |a_k| <= 1, and the centre
weight a_c = 1 - sum_k a_k (so a constant map is a fixed point).

Two implementations of the same maths, chosen by `mode`:
  * "gather" (default): the bilinear corners and weights are planned once per forward; every step is
    a sparse matrix-vector product, or a gather and a weighted sum when traced (bilinear_plan.py,
    gather_propagation.py). Faster on CPU and CUDA, lighter in memory, and exports to standard ONNX.
  * "deform_conv": every step is a torchvision deform_conv2d, the reference formulation.
Both have the same parameters, so a checkpoint loads in either.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from .gather_propagation import image_plans, propagate, sample_taps

PROPAGATION_MODES = ("gather", "deform_conv")
KERNEL = 3
NUM_NEIGHBORS = KERNEL * KERNEL - 1
CENTER = NUM_NEIGHBORS // 2  # index of the centre in the row-major 3x3 kernel


def insert_center(neighbors: Tensor, center: Tensor, per_position: int = 1) -> Tensor:
    """Insert the centre entry into (B, 8*per_position, H, W) -> (B, 9*per_position, H, W), row-major."""
    split = CENTER * per_position
    return torch.cat((neighbors[:, :split], center, neighbors[:, split:]), dim=1)


def propagate_once(depth: Tensor, offsets: Tensor, affinity: Tensor) -> Tensor:
    """One propagation step.

    depth (B,1,H,W); offsets (B,18,H,W) as (dy, dx) per row-major 3x3 kernel position, relative to the
    regular neighbour; affinity (B,9,H,W) including the centre weight. Returns (B,1,H,W).
    """
    weight = depth.new_ones(1, 1, KERNEL, KERNEL)
    return deform_conv2d(depth, offsets, weight, padding=KERNEL // 2, mask=affinity)


def sample_at_neighbors(values: Tensor, offsets: Tensor) -> Tensor:
    """Bilinearly sample a (B,1,H,W) map at the 8 neighbour positions -> (B,8,H,W) (deform_conv2d)."""
    # One-hot kernels: output channel k sees only kernel position k, i.e. the k-th sampled value.
    one_hot = torch.eye(KERNEL * KERNEL, dtype=values.dtype, device=values.device)
    sampled = deform_conv2d(values, offsets, one_hot.view(-1, 1, KERNEL, KERNEL), padding=KERNEL // 2)
    return torch.cat((sampled[:, :CENTER], sampled[:, CENTER + 1 :]), dim=1)


def normalize_affinity(raw: Tensor, scale: Tensor, neighbor_confidence: Tensor | None = None) -> Tensor:
    """TGASS: raw (B,8,H,W) -> affinity (B,9,H,W) with sum_k |a_k| <= 1 and centre 1 - sum_k a_k."""
    aff = torch.tanh(raw) / (scale + 1e-8)
    if neighbor_confidence is not None:
        aff = aff * neighbor_confidence
    aff = aff / (aff.abs().sum(dim=1, keepdim=True) + 1e-4).clamp(min=1.0)
    return insert_center(aff, 1.0 - aff.sum(dim=1, keepdim=True))


def full_precision(like: Tensor):
    """Autocast off: the propagation runs in float32 under mixed precision. Sample positions need it
    (float16 cannot hold a flat index past 65504, bfloat16 not even a pixel's column past 256), and 18
    steps of weighted sums would compound half-precision rounding. It costs little: its one
    convolution has 24 output channels."""
    return torch.autocast(device_type=like.device.type, enabled=False)


def _full(t: Tensor | None) -> Tensor | None:
    """float16 / bfloat16 -> float32; float32 and float64 unchanged."""
    return t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t


class NonLocalPropagation(nn.Module):
    """Refines an initial depth by `iterations` steps of confidence-weighted non-local propagation."""

    def __init__(self, guidance_channels: int = NUM_NEIGHBORS, iterations: int = 18,
                 preserve_input: bool = True, affinity_gamma: float = 0.5, mode: str = "gather",
                 preserve_input_in_training: bool = True):
        super().__init__()
        if mode not in PROPAGATION_MODES:
            raise ValueError(f"propagation mode must be one of {PROPAGATION_MODES}, got {mode!r}")
        self.mode = mode
        self.iterations = iterations
        self.preserve_input = preserve_input
        # With the reset in training too (NLSPN, the default), the output at a measured pixel starts as
        # the measurement itself, so L_dc there is 0 with zero gradient until the smoothness terms move
        # the propagation; False lets L_dc reach the refinement from the first step.
        self.preserve_input_in_training = preserve_input_in_training
        # Guidance -> 8 (dy, dx) offsets and 8 raw affinities. Zero init (as NLSPN): training starts from
        # the regular 3x3 grid with zero neighbour weights, i.e. the identity.
        self.offset_affinity = nn.Conv2d(guidance_channels, 3 * NUM_NEIGHBORS, KERNEL, padding=KERNEL // 2)
        nn.init.zeros_(self.offset_affinity.weight)
        nn.init.zeros_(self.offset_affinity.bias)
        # TGASS's learnable normaliser gamma * K.
        self.affinity_scale = nn.Parameter(torch.tensor(affinity_gamma * NUM_NEIGHBORS))

    def offsets_and_affinity(self, guidance: Tensor, confidence: Tensor | None) -> tuple[Tensor, Tensor]:
        """Guidance (B,G,H,W) [+ confidence (B,1,H,W)] -> offsets (B,18,H,W), affinity (B,9,H,W)."""
        with full_precision(guidance):
            offsets, affinity, _ = self._planned_offsets_and_affinity(_full(guidance), _full(confidence))
        return offsets, affinity

    def _planned_offsets_and_affinity(self, guidance: Tensor, confidence: Tensor | None):
        """Offsets, affinity and, in gather mode, the per-image corner plans that sampled the confidence
        (the propagation reuses them)."""
        out = self.offset_affinity(guidance)
        offsets = out[:, : 2 * NUM_NEIGHBORS]
        offsets = insert_center(offsets, offsets.new_zeros(offsets.shape[0], 2, *offsets.shape[2:]), 2)
        neighbor_conf = None
        plans = image_plans(offsets) if self.mode == "gather" else None
        if confidence is not None:
            # As in NLSPN, the confidence is sampled at detached offsets: it weights, but does not steer them.
            if self.mode == "gather":
                sampled = sample_taps(confidence, offsets, plans)
                neighbor_conf = torch.cat((sampled[:, :CENTER], sampled[:, CENTER + 1 :]), dim=1)
            else:
                neighbor_conf = sample_at_neighbors(confidence, offsets.detach())
        affinity = normalize_affinity(out[:, 2 * NUM_NEIGHBORS :], self.affinity_scale, neighbor_conf)
        return offsets, affinity, plans

    def forward(self, depth_init: Tensor, guidance: Tensor, confidence: Tensor | None = None,
                sparse: Tensor | None = None) -> Tensor:
        with full_precision(guidance):
            return self._propagate(_full(depth_init), _full(guidance), _full(confidence), _full(sparse))

    def _propagate(self, depth_init: Tensor, guidance: Tensor, confidence: Tensor | None,
                   sparse: Tensor | None) -> Tensor:
        offsets, affinity, plans = self._planned_offsets_and_affinity(guidance, confidence)
        reset = self.preserve_input and (self.preserve_input_in_training or not self.training)
        anchors = sparse if reset else None
        if self.mode == "gather":
            return propagate(depth_init, offsets, affinity, self.iterations, anchors, plans)
        valid = None if anchors is None else anchors > 0
        depth = depth_init
        for _ in range(self.iterations):
            if valid is not None:
                # NLSPN's preserve_input: measured pixels are reset to the measurement before every step.
                depth = torch.where(valid, sparse, depth)
            depth = propagate_once(depth, offsets, affinity)
        return depth

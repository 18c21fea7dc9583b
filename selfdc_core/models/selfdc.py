"""SelfDC network: NLSPN's early-fusion encoder-decoder with NLSPN refinement and a training-only
segmentation decoder (paper Sec. 3.1)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbone import BACKBONE_NAMES
from .encoder_decoder import ENCODER_STRIDE, Decoder, EarlyFusionEncoder, Head, SegmentationBranch
from .inputs import normalize_inputs, pad_to_multiple, validate_inputs
from .nlspn import NUM_NEIGHBORS, PROPAGATION_MODES, NonLocalPropagation

SEG_PREFIX = "seg_decoder."
HEADS = ("depth", "guidance", "confidence")  # the heads that half_resolution_heads may name


def _require(ok: bool, name: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class SelfDC(nn.Module):
    """Depth completion network.

    forward(rgb (B,3,H,W) float in [0,1], sparse (B,1,H,W) metres, 0 = no measurement) returns a dict:
      depth       (B,1,H,W) refined depth in metres, >= 0
      depth_init  (B,1,H,W) decoder depth before propagation, > 0
      confidence  (B,1,H,W) in (0,1), weights the propagation affinities
      seg_logits  (B,C,H,W) only in training mode and while the segmentation decoder exists
    Any H, W works: inputs are padded to a multiple of 16 and outputs cropped back.

    The guidance head predicts 8 channels (one per 3x3 neighbour); as in NLSPN, a zero-initialised
    3x3 conv inside the propagation turns them into 8 (dy, dx) offsets and 8 affinities (24 channels).
    `propagation` picks its implementation: "gather" (fast, exportable) or "deform_conv" (the
    torchvision reference); the weights are the same, so a checkpoint loads in either.

    `preserve_input` (NLSPN) resets measured pixels to the measurement before every propagation step.
    In inference it is on; in training it is on unless `preserve_input_in_training` is False. With the
    reset, L_dc (eq. 5) at the measured pixels starts at 0 with zero gradient (the propagation is
    initialised to the identity), so L_dc alone does not reach the refinement, guidance and confidence
    heads; False lets it, at the price of training a propagation that inference then runs with the reset.

    NLSPN's reset comes before each step, so its last step still blends a measured pixel with its
    neighbours. `output_keeps_measurements` (default True) resets the measured pixels once more after
    the last step, in inference only: the published depth equals the sensor wherever it measured. In
    training it is never applied, since L_dc scores exactly how far the final depth strays there.

    `half_resolution_heads` names heads among HEADS that run at half resolution and are upsampled
    (a cheaper network with the same weights; see Head).
    """

    def __init__(self, backbone: str = "resnet34", num_classes: int = 32, prop_iterations: int = 18,
                 preserve_input: bool = True, pretrained: bool = False, depth_scale: float = 10.0,
                 affinity_gamma: float = 0.5, include_segmentation: bool = True, propagation: str = "gather",
                 preserve_input_in_training: bool = True, output_keeps_measurements: bool = True,
                 half_resolution_heads: tuple[str, ...] | list[str] = ()):
        super().__init__()
        _require(backbone in BACKBONE_NAMES, "backbone", f"one of {BACKBONE_NAMES}", backbone)
        _require(_is_int(num_classes) and num_classes >= 1, "num_classes", "an int >= 1", num_classes)
        _require(_is_int(prop_iterations) and prop_iterations >= 0, "prop_iterations", "an int >= 0",
                 prop_iterations)
        for name, flag in (("preserve_input", preserve_input), ("pretrained", pretrained),
                           ("include_segmentation", include_segmentation),
                           ("preserve_input_in_training", preserve_input_in_training),
                           ("output_keeps_measurements", output_keeps_measurements)):
            _require(isinstance(flag, bool), name, "a bool", flag)
        for name, value in (("depth_scale", depth_scale), ("affinity_gamma", affinity_gamma)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            _require(ok and value > 0, name, "a finite number > 0", value)
        _require(propagation in PROPAGATION_MODES, "propagation", f"one of {PROPAGATION_MODES}", propagation)
        heads = half_resolution_heads
        ok = isinstance(heads, (list, tuple)) and all(isinstance(h, str) and h in HEADS for h in heads)
        _require(ok and len(set(heads)) == len(heads), "half_resolution_heads",
                 f"a list of distinct names among {HEADS}", heads)
        half = [h for h in HEADS if h in half_resolution_heads]
        # `pretrained` only chooses the initialisation; the state_dict carries the weights, so the
        # stored config says False and rebuilding from a checkpoint never needs the ImageNet file.
        self._config: dict[str, Any] = {
            "backbone": backbone, "num_classes": num_classes, "prop_iterations": prop_iterations,
            "preserve_input": preserve_input, "pretrained": False, "depth_scale": float(depth_scale),
            "affinity_gamma": float(affinity_gamma), "include_segmentation": include_segmentation,
            "propagation": propagation, "preserve_input_in_training": preserve_input_in_training,
            "output_keeps_measurements": output_keeps_measurements, "half_resolution_heads": half,
        }
        self.output_keeps_measurements = output_keeps_measurements
        self.depth_scale = float(depth_scale)
        self.encoder = EarlyFusionEncoder(backbone, pretrained)
        self.decoder = Decoder()
        self.depth_head = Head(1, half_resolution="depth" in half)
        self.guidance_head = Head(NUM_NEIGHBORS, half_resolution="guidance" in half)
        self.confidence_head = Head(1, hidden=32, half_resolution="confidence" in half)
        self.propagation = NonLocalPropagation(NUM_NEIGHBORS, prop_iterations, preserve_input, affinity_gamma,
                                               propagation, preserve_input_in_training)
        self.seg_decoder: SegmentationBranch | None = (
            SegmentationBranch(num_classes) if include_segmentation else None
        )

    @property
    def config(self) -> dict[str, Any]:
        """Constructor kwargs that rebuild this architecture (stored in checkpoints)."""
        return dict(self._config)

    def drop_segmentation(self) -> None:
        """Remove the segmentation decoder for inference-only deployment (it is unused in eval)."""
        self.seg_decoder = None
        self._config["include_segmentation"] = False

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As nn.Module, but segmentation weights are ignored once the segmentation decoder is dropped,
        so a training checkpoint loads into an inference-only model."""
        if self.seg_decoder is None:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith(SEG_PREFIX)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, rgb: Tensor, sparse: Tensor) -> dict[str, Tensor]:
        validate_inputs(rgb, sparse)
        return self.forward_unchecked(rgb, sparse)

    def forward_unchecked(self, rgb: Tensor, sparse: Tensor) -> dict[str, Tensor]:
        """forward() without the input checks: their host syncs and value tests cannot be traced, so
        export wrappers call this and check inputs outside the graph."""
        dtype = self.depth_head.out[0].weight.dtype
        rgb, sparse = rgb.to(dtype), sparse.to(dtype)
        height, width = rgb.shape[-2:]

        rgb_n, sparse_n = normalize_inputs(rgb, sparse, self.depth_scale)
        feats = self.encoder(pad_to_multiple(rgb_n, ENCODER_STRIDE, "replicate"),
                             pad_to_multiple(sparse_n, ENCODER_STRIDE, "constant"))
        x = self.decoder(feats)

        def crop(t: Tensor) -> Tensor:
            return t[..., :height, :width]

        # Softplus rather than NLSPN's ReLU: with only sparse supervision a pixel stuck at ReLU's zero
        # would receive no gradient. The head works in depth_scale units.
        depth_init = F.softplus(crop(self.depth_head(x, feats))) * self.depth_scale
        guidance = crop(self.guidance_head(x, feats))
        confidence = torch.sigmoid(crop(self.confidence_head(x, feats)))
        # Affinities may be negative, so propagation can undershoot zero: clamp as NLSPN does.
        depth = self.propagation(depth_init, guidance, confidence, sparse).clamp(min=0.0)
        if self.output_keeps_measurements and not self.training:
            depth = torch.where(sparse > 0, sparse.to(depth.dtype), depth)

        out = {"depth": depth, "depth_init": depth_init, "confidence": confidence}
        if self.training and self.seg_decoder is not None:
            out["seg_logits"] = crop(self.seg_decoder(feats))
        return out


_MODEL_KEYS = tuple(inspect.signature(SelfDC.__init__).parameters)[1:]


def build_model(model_cfg: Mapping[str, Any]) -> SelfDC:
    """SelfDC from a config mapping of constructor kwargs; unknown keys raise ValueError naming them."""
    if not isinstance(model_cfg, Mapping):
        raise ValueError(f"model_cfg must be a mapping of SelfDC kwargs, got {type(model_cfg).__name__}")
    unknown = sorted(set(model_cfg) - set(_MODEL_KEYS))
    if unknown:
        raise ValueError(f"unknown model config key(s) {unknown}; known keys: {list(_MODEL_KEYS)}")
    return SelfDC(**model_cfg)

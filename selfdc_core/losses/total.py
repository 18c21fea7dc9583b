"""The weighted training objective (eq. 7) with every switch the ablations (Tables 3-6) need."""

from __future__ import annotations

import math

import torch
from torch import nn

from .consistency import depth_consistency_loss
from .gradient_constraint import GC_BASES, local_gradient_constraint_loss
from .scale import SCALE_NORMS, normalise_depth
from .segmentation import image_reconstruction_loss, segmentation_loss, segments_to_classes
from .smoothness import (
    edge_aware_smoothness_loss,
    mask_aware_smoothness_loss,
    mask_based_smoothness_loss,
    selective_mask_aware_smoothness_loss,
)
from .validation import check_depth, check_image, check_segments, check_sparse

SMOOTHNESS_VARIANTS = ("sms", "mask_aware", "mask_based", "edge_aware", "none")
AUX_TASKS = ("mask", "image")

DEFAULTS = {
    "w_dc": 1.0,
    # L_dc on the network's initial depth too: it ties the decoder's depth to the measurements
    # directly, not only through the propagation. 0 gives eq. 7 exactly, which also trains, since
    # the model skips NLSPN's measurement reset in training (SelfDC.preserve_input_in_training).
    "w_dc_init": 1.0,
    "w_seg": 0.1,  # alpha in eq. 7
    "w_gc": 1.0,
    "w_sms": 1.0,  # weight of whichever smoothness variant is selected
    "gc_window": 8,
    "gc_top_ratio": 0.02,
    "gc_basis": None,  # None -> "mask" for aux="mask", "image" for aux="image"
    "smoothness": None,  # None -> "sms" for aux="mask", "edge_aware" for aux="image"
    "sms_top_ratio": 0.4,
    "num_classes": None,  # None -> the channel count of seg_logits
    "aux": "mask",
    # Depth normalisation for L_gc and L_sms (scale.py): "none" is the paper's (metres); "median" and
    # "local" make one weight fit depth ranges that differ tenfold (NYU vs KITTI).
    "scale_norm": "none",
}


class SelfDCLoss(nn.Module):
    """L = w_dc*L_dc + w_seg*L_aux + w_gc*L_gc + w_sms*L_smooth (eq. 7) + w_dc_init*L_dc(depth_init).

    The last term is ours (w_dc_init=0 gives eq. 7 exactly): see DEFAULTS.

    aux="mask" (the paper's method): L_aux is the cross-entropy on pseudo-label classes (see
    segments_to_classes). aux="image" (Table 6's alternative, no segments needed): L_aux is the
    L1 image reconstruction from sigmoid(seg_logits[:, :3]), and L_gc / smoothness default to the
    image basis and edge-aware smoothness. A weight of 0 (or smoothness="none") skips a term.
    L_aux is skipped when outputs has no seg_logits (eval mode).
    """

    def __init__(self, **cfg):
        super().__init__()
        unknown = sorted(set(cfg) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown loss config keys {unknown}; valid keys: {sorted(DEFAULTS)}")
        c = {**DEFAULTS, **cfg}
        for key in ("w_dc", "w_dc_init", "w_seg", "w_gc", "w_sms"):
            v = c[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{key} must be a finite number >= 0, got {v!r}")
            c[key] = float(v)
        if c["aux"] not in AUX_TASKS:
            raise ValueError(f"aux must be one of {AUX_TASKS}, got {c['aux']!r}")
        image_aux = c["aux"] == "image"
        if c["gc_basis"] is None:
            c["gc_basis"] = "image" if image_aux else "mask"
        if c["smoothness"] is None:
            c["smoothness"] = "edge_aware" if image_aux else "sms"
        if c["gc_basis"] not in GC_BASES:
            raise ValueError(f"gc_basis must be one of {GC_BASES}, got {c['gc_basis']!r}")
        if c["smoothness"] not in SMOOTHNESS_VARIANTS:
            raise ValueError(f"smoothness must be one of {SMOOTHNESS_VARIANTS}, got {c['smoothness']!r}")
        if c["scale_norm"] not in SCALE_NORMS:
            raise ValueError(f"scale_norm must be one of {SCALE_NORMS}, got {c['scale_norm']!r}")
        for key in ("gc_top_ratio", "sms_top_ratio"):
            if not isinstance(c[key], (int, float)) or not 0 < c[key] <= 1:
                raise ValueError(f"{key} must be in (0, 1], got {c[key]!r}")
        gw = c["gc_window"]
        if gw != "full" and (isinstance(gw, bool) or not isinstance(gw, int) or gw < 1):
            raise ValueError(f"gc_window must be a positive int or 'full', got {gw!r}")
        nc = c["num_classes"]
        if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int) or nc < 1):
            raise ValueError(f"num_classes must be a positive int or None, got {nc!r}")
        self.config = c

    def needs_segments(self, has_logits: bool = True) -> list[str]:
        """The active terms that need batch['segments'], each with how to switch it off."""
        c, users = self.config, []
        if c["w_seg"] > 0 and has_logits and c["aux"] == "mask":
            users.append("seg (aux='mask'; set w_seg=0 or aux='image')")
        if c["w_gc"] > 0 and c["gc_basis"] == "mask":
            users.append("gc (gc_basis='mask'; set w_gc=0 or gc_basis='image'/'none')")
        if c["w_sms"] > 0 and c["smoothness"] in ("sms", "mask_aware", "mask_based"):
            users.append(f"smooth (smoothness='{c['smoothness']}'; "
                         "set w_sms=0 or smoothness='edge_aware'/'none')")
        return users

    def forward(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns (total, parts); parts holds the unweighted, detached value of each computed term
        (keys among dc, dc_init, seg, gc, smooth; in aux='image' mode 'seg' is the reconstruction loss)."""
        c = self.config
        if "depth" not in outputs:
            raise ValueError("outputs must contain 'depth' (B,1,H,W)")
        if "sparse" not in batch:
            raise ValueError("batch must contain 'sparse' (B,1,H,W)")
        depth = check_depth(outputs["depth"], "outputs['depth']", min_size=1)
        sparse = check_sparse(batch["sparse"], depth, "batch['sparse']")
        logits = outputs.get("seg_logits")
        segments, rgb = batch.get("segments"), batch.get("rgb")
        users = self.needs_segments(logits is not None)
        if users and segments is None:
            raise ValueError(f"batch has no 'segments' but these loss terms need them: {'; '.join(users)}")
        if segments is not None:
            check_segments(segments, depth, "batch['segments']")
        if rgb is not None:
            check_image(rgb, depth, "batch['rgb']")

        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if c["w_dc"] > 0:
            terms["dc"] = (c["w_dc"], depth_consistency_loss(depth, sparse))
        if c["w_dc_init"] > 0 and "depth_init" in outputs:
            depth_init = check_depth(outputs["depth_init"], "outputs['depth_init']", min_size=1)
            terms["dc_init"] = (c["w_dc_init"], depth_consistency_loss(depth_init, sparse))
        if c["w_seg"] > 0 and logits is not None:
            terms["seg"] = (c["w_seg"], self._aux_loss(logits, segments, rgb))
        structure = normalise_depth(depth, sparse, c["scale_norm"])
        if c["w_gc"] > 0:
            if c["gc_basis"] == "image" and rgb is None:
                raise ValueError("batch has no 'rgb' but gc_basis='image' needs it")
            gc = local_gradient_constraint_loss(structure, segments, rgb, window=c["gc_window"],
                                                top_ratio=c["gc_top_ratio"], basis=c["gc_basis"])
            terms["gc"] = (c["w_gc"], gc)
        if c["w_sms"] > 0 and c["smoothness"] != "none":
            terms["smooth"] = (c["w_sms"], self._smoothness(structure, segments, rgb))

        total = depth.sum() * 0
        for weight, value in terms.values():
            total = total + weight * value
        return total, {name: value.detach() for name, (_, value) in terms.items()}

    def _aux_loss(self, logits, segments, rgb):
        if self.config["aux"] == "image":
            if rgb is None:
                raise ValueError("batch has no 'rgb' but aux='image' reconstructs it (set w_seg=0 to skip)")
            return image_reconstruction_loss(logits, rgb)
        num_classes = self.config["num_classes"] or logits.shape[1]
        if num_classes != logits.shape[1]:
            raise ValueError(f"num_classes={num_classes} but seg_logits has {logits.shape[1]} channels")
        return segmentation_loss(logits, segments_to_classes(segments, num_classes))

    def _smoothness(self, depth, segments, rgb):
        variant = self.config["smoothness"]
        if variant == "sms":
            return selective_mask_aware_smoothness_loss(depth, segments, self.config["sms_top_ratio"])
        if variant == "mask_aware":
            return mask_aware_smoothness_loss(depth, segments)
        if variant == "mask_based":
            return mask_based_smoothness_loss(depth, segments)
        if rgb is None:
            raise ValueError("batch has no 'rgb' but smoothness='edge_aware' needs it")
        return edge_aware_smoothness_loss(depth, rgb)

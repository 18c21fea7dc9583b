"""Segment Anything (automatic mask generator) as a class-agnostic pseudo-label generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfdc_core.devices import resolve_device

from .common import MissingWeightsError, check_rgb
from .relabel import paint_masks

# The official checkpoints of the segment-anything release, by model type.
SAM_CHECKPOINTS = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
SAM_DOWNLOAD_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


def load_sam(checkpoint: str | Path | None, model_type: str = "vit_b", device: str = "auto"):
    """Build a SAM of `model_type` and load the official `checkpoint` onto `device`."""
    if model_type not in SAM_CHECKPOINTS:
        raise ValueError(f"SAM model_type must be one of {sorted(SAM_CHECKPOINTS)}, got {model_type!r}")
    expected = SAM_CHECKPOINTS[model_type]
    if checkpoint is None or not Path(checkpoint).is_file():
        where = f"at {checkpoint}" if checkpoint is not None else "(no 'checkpoint' path configured)"
        raise MissingWeightsError(
            f"SAM checkpoint not found {where}. Download the official {model_type} weights "
            f"'{expected}' from {SAM_DOWNLOAD_URL}{expected} (segment-anything release) and put the "
            f"file at the configured path (segmentation.generator_kwargs.checkpoint), or use the "
            "weight-free generator 'felzenszwalb'."
        )
    import torch
    from segment_anything import sam_model_registry

    sam = sam_model_registry[model_type](checkpoint=None)
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        sam.load_state_dict(state)
    except Exception as err:  # a truncated file or the weights of another model type
        raise ValueError(
            f"{checkpoint}: cannot load it as a SAM {model_type} checkpoint (expected the official "
            f"'{expected}'; is model_type right?): {err}"
        ) from err
    return sam.to(resolve_device(device)).eval()


class SamGenerator:
    """RGB uint8 (H,W,3) -> int32 (H,W) region ids ranked by area, 0 where no mask landed.

    Give either `checkpoint` (+ `model_type`) or an already built `model` (a `segment_anything`
    `Sam`, e.g. a tiny one in tests). Remaining kwargs go to `SamAutomaticMaskGenerator`
    (`points_per_side`, `pred_iou_thresh`, `stability_score_thresh`, `min_mask_region_area`, ...).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        model_type: str = "vit_b",
        model=None,
        device: str = "auto",
        points_per_side: int = 32,
        points_per_batch: int = 64,
        **amg_kwargs,
    ):
        from segment_anything import SamAutomaticMaskGenerator

        if model is None:
            model = load_sam(checkpoint, model_type, device)
        else:
            model = model.to(resolve_device(device)).eval()
        if amg_kwargs.get("output_mode", "binary_mask") != "binary_mask":
            raise ValueError("SamGenerator needs output_mode='binary_mask'")
        self.model = model
        self.mask_generator = SamAutomaticMaskGenerator(
            model, points_per_side=points_per_side, points_per_batch=points_per_batch, **amg_kwargs
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = check_rgb(rgb)
        records = self.mask_generator.generate(np.ascontiguousarray(rgb))
        if not records:
            return np.zeros(rgb.shape[:2], dtype=np.int32)
        return paint_masks(np.stack([r["segmentation"] for r in records]))

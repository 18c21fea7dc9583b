"""OneFormer (transformers) from a local model directory: semantic classes or panoptic segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from selfdc_core.devices import resolve_device

from .common import MissingWeightsError, check_rgb
from .relabel import rank_regions_by_area

EXAMPLE_MODEL_ID = "shi-labs/oneformer_ade20k_swin_tiny"
TASKS = ("semantic", "panoptic")
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def _how_to_download(model_dir) -> str:
    return (
        f"Download a OneFormer model on a machine with internet and save it into {model_dir}, e.g.\n"
        '  python -c "from transformers import OneFormerProcessor as P, OneFormerForUniversalSegmentation '
        f"as M; n='{EXAMPLE_MODEL_ID}'; d='{model_dir}'; M.from_pretrained(n).save_pretrained(d); "
        'P.from_pretrained(n).save_pretrained(d)"\n'
        "then copy the directory here (segmentation.generator_kwargs.model_dir), or use the weight-free "
        "generator 'felzenszwalb'."
    )


def _class_info_file(model_dir: Path) -> str | None:
    """The class-info JSON the saved image processor names (official models: ade20k_panoptic.json)."""
    for name in _PROCESSOR_FILES:
        path = model_dir / name
        if path.is_file():
            cfg = json.loads(path.read_text(encoding="utf-8"))
            return cfg.get("image_processor", cfg).get("class_info_file")
    return None


def check_model_dir(model_dir: str | Path | None) -> Path:
    """Raise MissingWeightsError unless `model_dir` holds a saved model and processor."""
    if model_dir is None:
        raise MissingWeightsError(
            "OneFormer needs 'model_dir' (a local directory). " + _how_to_download("<dir>")
        )
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MissingWeightsError(
            f"OneFormer model directory {model_dir} does not exist. " + _how_to_download(model_dir)
        )
    missing = [n for n in ("config.json",) if not (model_dir / n).is_file()]
    if not any((model_dir / n).is_file() for n in _PROCESSOR_FILES):
        missing.append(" or ".join(_PROCESSOR_FILES))
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        missing.append("model weights (*.safetensors)")
    if missing:
        raise MissingWeightsError(
            f"OneFormer model directory {model_dir} lacks {', '.join(missing)}. "
            + _how_to_download(model_dir)
        )
    return model_dir


class OneFormerGenerator:
    """RGB uint8 (H,W,3) -> int32 (H,W) labels from a OneFormer saved with `save_pretrained`.

    task "semantic": class id + 1 per pixel (0 is reserved, so the head needs C >= classes + 1).
    task "panoptic": segment ids ranked by area, 0 where no segment passed `threshold`.
    Nothing is downloaded: files load with `local_files_only=True`.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        task: str = "semantic",
        device: str = "auto",
        threshold: float = 0.8,
        mask_threshold: float = 0.5,
        overlap_mask_area_threshold: float = 0.8,
    ):
        if task not in TASKS:
            raise ValueError(f"OneFormer task must be one of {TASKS}, got {task!r}")
        model_dir = check_model_dir(model_dir)
        from transformers import OneFormerForUniversalSegmentation, OneFormerProcessor

        # The saved image processor may name a class-info JSON on the Hub; inference does not need
        # it, so it is read from the directory when present and skipped otherwise (no download).
        info = _class_info_file(model_dir)
        extra = (
            {"repo_path": str(model_dir)}
            if info and (model_dir / info).is_file()
            else {"class_info_file": None}
        )
        self.processor = OneFormerProcessor.from_pretrained(model_dir, local_files_only=True, **extra)
        self.device = resolve_device(device)
        model = OneFormerForUniversalSegmentation.from_pretrained(model_dir, local_files_only=True)
        self.model = model.to(self.device).eval()
        self.task = task
        self.panoptic_kwargs = {
            "threshold": threshold,
            "mask_threshold": mask_threshold,
            "overlap_mask_area_threshold": overlap_mask_area_threshold,
            "label_ids_to_fuse": set(),
        }

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import torch

        rgb = check_rgb(rgb)
        inputs = self.processor(images=rgb, task_inputs=[self.task], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            outputs = self.model(**inputs)
        size = [rgb.shape[:2]]
        if self.task == "semantic":
            classes = self.processor.post_process_semantic_segmentation(outputs, target_sizes=size)[0]
            return classes.cpu().numpy().astype(np.int32) + 1
        result = self.processor.post_process_panoptic_segmentation(
            outputs, target_sizes=size, **self.panoptic_kwargs
        )[0]
        # Segment ids start at 1; pixels of no segment come back as -1 (or 0 in older releases).
        segments = np.clip(result["segmentation"].cpu().numpy().astype(np.int64), 0, None)
        return rank_regions_by_area(segments)

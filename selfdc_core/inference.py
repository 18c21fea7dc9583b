"""DepthCompleter: a trained model turned into a ready-to-run depth completer.

    completer = DepthCompleter.from_checkpoint("runs/nyu/best.pt", device="auto", input_size=(228, 304))
    dense = completer.complete(rgb_uint8_hwc, sparse_metres_hw)        # (H,W) float32 metres

This is what the ROS node and the evaluation script use. Three model files load:
  .pt           a training checkpoint (PyTorch)
  .safetensors  slim weights from `training/export.py --format safetensors` (PyTorch)
  .onnx         an ONNX export from `training/export.py --format onnx` (onnxruntime: TensorRT or CUDA
                execution providers when present, else the CPU)
With PyTorch the segmentation branch, a training-only auxiliary, is removed and the model runs in
eval mode, under the autocast `precision` picks (by default float16 on CUDA, bfloat16 on CPUs with
native bfloat16 units, else float32; see selfdc_core.devices.autocast_dtype). The propagation always
runs in float32.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from selfdc_core.devices import autocast_dtype
from selfdc_core.geometry import resize_sparse_depth
from selfdc_core.inference_limits import InferenceLimits, warn_throttled
from selfdc_core.model_io import CheckpointError, load_checkpoint, load_model_weights, resolve_device

__all__ = ["BACKENDS", "DepthCompleter", "CheckpointError", "model_file_kind", "resolve_device"]

BACKENDS = ("auto", "torch", "onnxruntime")
MODEL_FILE_KINDS = {".pt": "checkpoint", ".pth": "checkpoint", ".safetensors": "weights", ".onnx": "onnx"}


def model_file_kind(path: str | Path) -> str:
    """'checkpoint', 'weights' or 'onnx' from the file name; CheckpointError for anything else."""
    kind = MODEL_FILE_KINDS.get(Path(path).suffix.lower())
    if kind is None:
        raise CheckpointError(f"{path}: unknown model file format {Path(path).suffix or '(no suffix)'!r}; "
                              f"expected one of {sorted(MODEL_FILE_KINDS)} (a training checkpoint, "
                              f"slim weights or an ONNX export)")
    return kind


def _checkpoint_model(path: str | Path) -> torch.nn.Module:
    from selfdc_core.models import build_model

    state = load_checkpoint(path, map_location="cpu")
    model_config = dict(state["model_config"])
    model_config["pretrained"] = False  # the checkpoint holds all weights; never fetch ImageNet ones
    try:
        model = build_model(model_config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {path}: cannot build its model from {model_config}: {exc}"
        ) from exc
    load_model_weights(model, state["model"], path)
    return model


def _check_size(input_size) -> tuple[int, int] | None:
    if input_size is None:
        return None
    values = tuple(input_size)
    if len(values) != 2 or not all(float(v).is_integer() and v >= 1 for v in values):
        raise ValueError(f"input_size must be (height, width) with positive integers, got {input_size!r}")
    size = tuple(int(v) for v in values)
    return size


def drop_segmentation_branch(model: torch.nn.Module) -> torch.nn.Module:
    """Remove the training-only segmentation decoder when the model offers a way to."""
    drop = getattr(model, "drop_segmentation", None)
    if callable(drop):
        drop()
    return model


class DepthCompleter:
    """Runs a SelfDC model on numpy inputs: uint8 RGB (H,W,3) and sparse depth (H,W) in metres.

    `limits` (InferenceLimits, replaceable) bound the network input size and the sparse depth
    range; `sparse_dropped` counts the sparse depths dropped as out of range.
    """

    limits = InferenceLimits()
    sparse_dropped = 0

    def __init__(self, model: torch.nn.Module, device="auto", input_size=None, precision: str = "auto"):
        self.device = resolve_device(device)
        self.input_size = _check_size(input_size)
        self.autocast_dtype = autocast_dtype(precision, self.device)
        model = drop_segmentation_branch(model).to(self.device).eval()
        # NHWC convolutions: faster with cuDNN and with oneDNN on CPU (about 10% at 228x304).
        model = model.to(memory_format=torch.channels_last)
        self.model = model

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="auto", input_size=None, precision: str = "auto",
                        backend: str = "auto") -> DepthCompleter:
        """A completer for a .pt checkpoint, .safetensors weights or an .onnx export.

        backend: 'auto' (onnxruntime for .onnx, PyTorch otherwise), 'torch' or 'onnxruntime'.
        precision: see `autocast_dtype`; an .onnx export's precision is fixed when it is exported.
        """
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        kind = model_file_kind(path)
        if (backend == "torch" and kind == "onnx") or (backend == "onnxruntime" and kind != "onnx"):
            raise ValueError(f"backend {backend!r} cannot run {path}: onnxruntime runs .onnx exports, "
                             f"PyTorch runs .pt checkpoints and .safetensors weights "
                             f"(`training/export.py` converts between them)")
        if kind == "onnx":
            from selfdc_core.deploy.onnx_completer import OnnxDepthCompleter

            return OnnxDepthCompleter(path, device=device, input_size=input_size, precision=precision)
        if kind == "weights":
            from selfdc_core.deploy.weights import load_weights_model

            model = load_weights_model(path)
        else:
            model = _checkpoint_model(path)
        return cls(model, device=device, input_size=input_size, precision=precision)

    @staticmethod
    def _validate(rgb: np.ndarray, sparse: np.ndarray) -> None:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            desc = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ValueError(f"rgb must be a uint8 array of shape (H,W,3), got {desc}")
        is_array = isinstance(sparse, np.ndarray)
        if not is_array or sparse.ndim != 2 or not np.issubdtype(sparse.dtype, np.floating):
            desc = f"{sparse.dtype} {sparse.shape}" if is_array else type(sparse).__name__
            raise ValueError(f"sparse must be a float array of shape (H,W) in metres, got {desc}")
        if sparse.shape != rgb.shape[:2]:
            raise ValueError(f"sparse has shape {sparse.shape} but rgb is {rgb.shape[:2]}; they must match")
        if not np.isfinite(sparse).all():
            raise ValueError("sparse contains NaN or Inf; mark missing measurements with 0")
        if (sparse < 0).any():
            raise ValueError("sparse contains negative depths; depths are metres >= 0 (0 = no measurement)")

    def _to_tensors(self, rgb: np.ndarray, sparse: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.limits.network_size(*rgb.shape[:2], self.input_size)
        if size != rgb.shape[:2]:
            if self.input_size is None:  # once per camera size
                text = self.limits.downscale_message(rgb.shape[:2], size)
                self._warn(text, text, math.inf)
            h, w = size
            shrink = h < rgb.shape[0]
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            sparse = resize_sparse_depth(sparse, h, w)
        rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        sparse_t = torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.float32))[None, None]
        non_blocking = self.device.type == "cuda"
        if non_blocking:
            rgb_t, sparse_t = rgb_t.pin_memory(), sparse_t.pin_memory()
        rgb_t = rgb_t.to(self.device, non_blocking=non_blocking).float().div_(255.0)
        sparse_t = sparse_t.to(self.device, non_blocking=non_blocking)
        return rgb_t.contiguous(memory_format=torch.channels_last), sparse_t

    def _warn(self, key: str, text: str, period_s: float = 10.0) -> None:
        warn_throttled(logging.getLogger(__name__), vars(self).setdefault("_warned", {}), key, text, period_s)

    @torch.inference_mode()
    def predict(self, rgb: torch.Tensor, sparse: torch.Tensor) -> dict:
        """Model outputs for batched tensors already on the device (rgb [0,1] (B,3,H,W), sparse (B,1,H,W))."""
        dtype = self.autocast_dtype
        with torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None):
            return self.model(rgb, sparse)

    def complete(self, rgb: np.ndarray, sparse: np.ndarray, return_confidence: bool = False):
        """Dense depth (H,W) float32 metres at the input resolution; with `(depth, confidence)` optionally."""
        self._validate(rgb, sparse)
        sparse, dropped, hint = self.limits.clean_sparse(sparse)
        if dropped:
            self.sparse_dropped += dropped
            text = self.limits.drop_message(dropped, self.sparse_dropped, hint)
            self._warn("sparse_units" if hint else "sparse_out_of_range", text)
        height, width = rgb.shape[:2]
        out = self.predict(*self._to_tensors(rgb, sparse))
        maps = [out["depth"]]
        if return_confidence:
            if out.get("confidence") is None:
                raise ValueError("this model produces no confidence map")
            maps.append(out["confidence"])
        results = []
        for m in maps:
            m = m.float()
            if m.shape[-2:] != (height, width):
                m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
            results.append(m[0, 0].cpu().numpy().astype(np.float32, copy=False))
        results[0] = np.clip(results[0], 0.0, None)
        return (results[0], results[1]) if return_confidence else results[0]

    def warmup(self, iterations: int = 2, size: tuple[int, int] | None = None) -> None:
        """Run a few dummy frames so cuDNN autotuning and allocations happen before real data."""
        h, w = size or self.input_size or (228, 304)
        rgb = np.zeros((h, w, 3), np.uint8)
        sparse = np.zeros((h, w), np.float32)
        sparse[:: max(h // 8, 1), :: max(w // 8, 1)] = 1.0
        for _ in range(iterations):
            self.complete(rgb, sparse)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

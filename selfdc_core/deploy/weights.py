"""Slim weights: a SelfDC model as one `.safetensors` file, with its model config in the metadata.

No optimiser, scheduler or training state, and by default no training-only segmentation branch, so
the file is what a robot needs and nothing more. safetensors holds raw tensors only: loading it runs no
code. The metadata (strings only) carries
    format        WEIGHTS_FORMAT
    model_config  JSON of `SelfDC.config`, bounded by `check_model_config` before anything is built
    sha256        content hash of the tensors, checked on load
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from selfdc_core.model_io import CheckpointError, check_model_config, load_model_weights

WEIGHTS_FORMAT = "selfdc-weights-v1"


def _tensor_hash(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: str | Path, fp16: bool = False,
                 keep_segmentation: bool = False) -> Path:
    """Write the model's weights (optionally in float16) atomically to `path` (.safetensors)."""
    return save_state(model.config, model.state_dict(), path, fp16, keep_segmentation)


def save_state(model_config: dict, state_dict: dict, path: str | Path, fp16: bool = False,
               keep_segmentation: bool = False) -> Path:
    """As `save_weights`, from a model config and its state dict."""
    from safetensors.torch import save_file

    path = Path(path)
    config = dict(model_config)
    tensors = {}
    for name, tensor in state_dict.items():
        if not keep_segmentation and name.startswith("seg_decoder."):
            continue
        t = tensor.detach().cpu()
        tensors[name] = (t.half() if fp16 and t.is_floating_point() else t).contiguous()
    if not keep_segmentation:
        config["include_segmentation"] = False
    metadata = {"format": WEIGHTS_FORMAT, "model_config": json.dumps(config),
                "sha256": _tensor_hash(tensors)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_weights(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(model_config, float32 state_dict) from a slim weights file; CheckpointError naming the file
    when it is missing, not safetensors, not SelfDC's, or fails its content hash."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"weights file {path} is not a readable safetensors file: {exc}") from exc
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise CheckpointError(f"{path} is not SelfDC weights (expected metadata format {WEIGHTS_FORMAT!r}, "
                              f"found {metadata.get('format')!r})")
    if metadata.get("sha256") != _tensor_hash(tensors):
        raise CheckpointError(f"weights file {path} fails its content hash: the file is corrupt")
    try:
        config = json.loads(metadata["model_config"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"weights file {path} has no readable model_config metadata") from exc
    config = check_model_config(config, path)
    return config, {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_weights_model(path: str | Path) -> torch.nn.Module:
    """The SelfDC model stored in a slim weights file, weights loaded, in float32."""
    from selfdc_core.models import build_model

    config, state = read_weights(path)
    config["pretrained"] = False
    try:
        model = build_model(config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"weights file {path}: cannot build its model from {config}: {exc}") from exc
    load_model_weights(model, state, path)
    return model

"""Adapted weights on disk, written atomically and loadable by DepthCompleter and the node.

A `.safetensors` save_path gets slim weights (selfdc_core.deploy.weights: the model config in the
metadata, no optimiser state); any other path a training-style checkpoint that also records the
adaptation settings and counters.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from selfdc_core.model_io import load_checkpoint, load_model_weights, save_checkpoint

SLIM_SUFFIX = ".safetensors"


def save_adapted(path, model_config: dict, weights: dict, adaptation_cfg: dict, counters: dict) -> Path:
    """Write the published weights (temp file, then rename: never half-written)."""
    if Path(path).suffix == SLIM_SUFFIX:
        from selfdc_core.deploy.weights import save_state

        return save_state(model_config, weights, path)
    state = {
        "model_config": dict(model_config),
        "model": weights,
        "config": {"adaptation": adaptation_cfg},
        "epoch": 0,
        "step": int(counters.get("learner_steps", 0)),
        "adaptation": {k: v for k, v in counters.items() if isinstance(v, (int, float, str, bool))},
    }
    return save_checkpoint(path, state)


def load_adapted(path, model: nn.Module) -> dict:
    """The weights stored at `path`, checked against `model`; CheckpointError naming the file otherwise."""
    if Path(path).suffix == SLIM_SUFFIX:
        from selfdc_core.deploy.weights import read_weights

        weights = read_weights(path)[1]
    else:
        weights = load_checkpoint(path, map_location="cpu")["model"]
    load_model_weights(model, weights, path)  # strict: a key or shape mismatch names the file
    return weights

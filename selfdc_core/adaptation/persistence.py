"""Adapted weights on disk: written atomically, loadable as a checkpoint by DepthCompleter and the node."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from selfdc_core.model_io import load_checkpoint, load_model_weights, save_checkpoint


def save_adapted(path, model_config: dict, weights: dict, adaptation_cfg: dict, counters: dict) -> Path:
    """Write the published weights as a checkpoint (temp file, fsync, rename: never half-written)."""
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
    state = load_checkpoint(path, map_location="cpu")
    load_model_weights(model, state["model"], path)  # strict: a key or shape mismatch names the file
    return state["model"]

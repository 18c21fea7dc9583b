"""A run's persistent state: the output folder, checkpoints written and resumed, initial weights.

Checkpoint files themselves are `selfdc_core.model_io`'s; this module decides what a training
checkpoint holds and how a run continues from one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from selfdc_core.model_io import load_checkpoint, load_model_weights, save_checkpoint, stale_temp_files

from .rng import capture_rng_state, restore_rng_state

SEG_PREFIX = "seg_decoder."


class OutputError(RuntimeError):
    """The run cannot write to its output folder (read-only, missing permission, disk full)."""

    def __init__(self, path: Path, exc: OSError):
        reason = exc.strerror or str(exc)
        super().__init__(f"cannot write {path}: {reason} (check train.out_dir: it must be a writable "
                         f"folder with free space)")


def prepare_out_dir(out_dir: Path) -> list[Path]:
    """Create the output folder and delete temp files of killed checkpoint writers; returns them."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = stale_temp_files(out_dir)
        for tmp in stale:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(Path(exc.filename or out_dir), exc) from exc
    return stale


def write_checkpoint(path: Path, state: dict) -> Path:
    """`save_checkpoint`, with an unwritable folder or a full disk as an OutputError naming `path`."""
    try:
        return save_checkpoint(path, state)
    except OSError as exc:
        raise OutputError(path, exc) from exc


@dataclass
class Progress:
    """Where a run stands; everything here is saved in and restored from a checkpoint."""

    epoch: int = 0  # epoch in progress (0-based)
    step: int = 0  # optimiser steps done
    batch_in_epoch: int = 0  # batches of `epoch` consumed
    best_metric: float = math.inf
    nan_batches: int = 0


def training_state(cfg: dict, model, progress: Progress, optimizer, scheduler, scaler,
                   steps_per_epoch: int) -> dict:
    """The checkpoint content of a run: model, config, progress, optimiser and RNG state."""
    return {
        "model_config": model.config,
        "model": model.state_dict(),
        "config": cfg,
        "epoch": progress.epoch,
        "step": progress.step,
        "batch_in_epoch": progress.batch_in_epoch,
        "steps_per_epoch": steps_per_epoch,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "best_metric": progress.best_metric,
        "nan_batches": progress.nan_batches,
    }


def restore_training_state(path: Path, model, optimizer, scheduler, scaler) -> tuple[Progress, int | None]:
    """Load `path` into the run's objects and RNGs; returns its progress and steps per epoch."""
    state = load_checkpoint(path, map_location="cpu")
    load_model_weights(model, state["model"], path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    progress = Progress(
        epoch=int(state["epoch"]), step=int(state["step"]),
        batch_in_epoch=int(state.get("batch_in_epoch", 0)),
        best_metric=float(state.get("best_metric", math.inf)),
        nan_batches=int(state.get("nan_batches", 0)),
    )
    restore_rng_state(state["rng"])
    return progress, state.get("steps_per_epoch")


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> dict:
    """Start from a checkpoint's weights (fine-tuning); returns its model config.

    A checkpoint without the segmentation decoder keeps this model's fresh one; a model without
    it ignores the checkpoint's."""
    state = load_checkpoint(path, map_location="cpu")
    weights = dict(state["model"])
    if getattr(model, "seg_decoder", None) is None:
        weights = {k: v for k, v in weights.items() if not k.startswith(SEG_PREFIX)}
    else:
        for k, v in model.state_dict().items():
            if k.startswith(SEG_PREFIX) and k not in weights:
                weights[k] = v
    load_model_weights(model, weights, path)
    return state["model_config"]

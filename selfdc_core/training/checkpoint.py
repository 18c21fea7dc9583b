"""Checkpoints: atomic writes, safe loading (`weights_only=True`), exact RNG capture.

A checkpoint is a dict of tensors and plain Python values only, so `torch.load(...,
weights_only=True)` reads it and a checkpoint cannot run code:
    format        CHECKPOINT_FORMAT
    model_config  kwargs of `SelfDC` (`SelfDC.config`), enough to rebuild the network
    model         state_dict of the bare (non-DDP) model
    config        the full training config (plain dict)
    epoch, step   epoch in progress (0-based) and optimiser steps done
    batch_in_epoch  batches of `epoch` already consumed (resume skips them)
    optimizer, scheduler, scaler, rng, best_metric, nan_batches   (training state)
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FORMAT = "selfdc-checkpoint-v1"
REQUIRED_KEYS = ("format", "model_config", "model", "config", "epoch", "step")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt or does not fit the model."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` to `path` atomically: temp file in the same folder, fsync, os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, **state}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    # Persist the rename itself (the directory entry) where the platform allows it.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a SelfDC checkpoint safely; any problem is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or not a SelfDC "
            f"checkpoint saved by training/train.py ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a SelfDC checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {missing}")
    return state


def load_model_weights(model: torch.nn.Module, state_dict: dict, source: str | Path) -> None:
    """Load `state_dict` strictly; a key or shape mismatch is a CheckpointError naming `source`."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        problems = (("shape mismatches", mismatched), ("missing", missing), ("unexpected", unexpected))
        for label, items in problems:
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {items[:5]}{more}")
        raise CheckpointError(
            f"checkpoint {source} does not fit the configured model (was it trained with a different "
            f"`model` section?); " + "; ".join(parts)
        )
    model.load_state_dict(state_dict, strict=True)


def capture_rng_state() -> dict:
    """Every RNG the training loop touches, as tensors and plain values (weights_only-safe)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - datasets may use it
    version, py_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"],
         np_state["cached_gaussian"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])

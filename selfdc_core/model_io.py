"""Model I/O shared by inference and training: checkpoint files, weight loading, device choice.

A checkpoint is a dict of tensors and plain Python values only, so `torch.load(...,
weights_only=True)` reads it and a checkpoint cannot run code:
    format        CHECKPOINT_FORMAT
    sha256        content hash of every other entry (see `content_hash`), checked on load
    model_config  kwargs of `SelfDC` (`SelfDC.config`), enough to rebuild the network
    model         state_dict of the bare (non-DDP) model
    config        the full training config (plain dict)
    epoch, step   epoch in progress (0-based) and optimiser steps done
    ...           training state (optimiser, scheduler, RNG, ...) written by the trainer

Loading never builds anything from unchecked numbers: the model config is bounded first, so a
damaged or hostile file cannot ask for a billion propagation steps or a 9 GB classifier.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from selfdc_core.devices import resolve_device

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_CONFIG_LIMITS",
    "CheckpointError",
    "check_model_config",
    "content_hash",
    "load_checkpoint",
    "load_model_weights",
    "resolve_device",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "selfdc-checkpoint-v2"
# v1 files predate the content hash; they still load, with a warning that they cannot be verified.
LEGACY_FORMATS = ("selfdc-checkpoint-v1",)
REQUIRED_KEYS = ("format", "model_config", "model", "config", "epoch", "step")
HASH_KEY = "sha256"

# Inclusive bounds on integer model settings. Far above any sensible network, far below what
# would hang the warm-up (propagation steps) or exhaust memory (classes, channels).
MODEL_CONFIG_LIMITS = {"prop_iterations": (0, 256), "num_classes": (1, 4096)}
CHANNEL_LIMITS = (1, 4096)  # any `*channels*` / `*width*` key
OTHER_INT_LIMITS = (0, 65536)  # any other integer key


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, corrupt or does not fit the model."""


# ---------------------------------------------------------------------------------- hashing
def _feed(digest, value) -> None:
    """Feed a canonical encoding of `value` (tensors, containers, plain values) into `digest`."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{t.dtype}{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)};".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}=".encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)};".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def content_hash(state: Mapping) -> str:
    """SHA-256 over every entry of a checkpoint except the hash itself (bytes of every tensor)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != HASH_KEY})
    return digest.hexdigest()


# ---------------------------------------------------------------------------------- writing
def _fsync_dir(folder: Path) -> None:
    """Persist a rename (the directory entry) where the platform allows it."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def temp_path(path: Path, pid: int | None = None) -> Path:
    """The temp file `save_checkpoint` writes before the rename (hidden, per process)."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def stale_temp_files(folder: str | Path) -> list[Path]:
    """Temp files left in `folder` by checkpoint writers that were killed (their process is gone)."""
    stale = []
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        pid = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            stale.append(tmp)
    return sorted(stale)


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` (plus format and content hash) to `path` atomically: temp file, fsync, rename.

    An OSError (read-only folder, full disk) propagates after the temp file is removed; its
    message names the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in state.items() if k != HASH_KEY}
    state = {"format": CHECKPOINT_FORMAT, **state}
    state[HASH_KEY] = content_hash(state)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


# ---------------------------------------------------------------------------------- reading
def _bounds_for(key: str) -> tuple[int, int]:
    if key in MODEL_CONFIG_LIMITS:
        return MODEL_CONFIG_LIMITS[key]
    if "channels" in key or "width" in key:
        return CHANNEL_LIMITS
    return OTHER_INT_LIMITS


def check_model_config(config, source: str | Path) -> dict:
    """Reject a model config whose numbers could hang or exhaust memory, before anything is built."""
    if not isinstance(config, Mapping):
        kind = type(config).__name__
        raise CheckpointError(f"checkpoint {source}: model_config must be a dict, got {kind}")
    for key, value in config.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise CheckpointError(
                f"checkpoint {source}: model_config.{key} is {value}, expected a finite number"
            )
        if key in MODEL_CONFIG_LIMITS and not isinstance(value, int):
            raise CheckpointError(f"checkpoint {source}: model_config.{key} must be an int, got {value!r}")
        if isinstance(value, int):
            low, high = _bounds_for(str(key))
            if not low <= value <= high:
                raise CheckpointError(
                    f"checkpoint {source}: model_config.{key}={value} is outside [{low}, {high}]; "
                    f"the file is damaged or was not written by SelfDC training"
                )
    return dict(config)


def _check_integrity(state, path: Path) -> None:
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, *LEGACY_FORMATS):
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not a SelfDC checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {missing}")
    if state["format"] in LEGACY_FORMATS:
        warnings.warn(f"checkpoint {path} has no content hash (format {state['format']}); its integrity "
                      f"cannot be verified. Saving it again adds one.", stacklevel=3)
        return
    stored = state.get(HASH_KEY)
    if not isinstance(stored, str) or stored != content_hash(state):
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its content does not match the stored SHA-256 "
            f"(a damaged copy or a modified file); restore it from a good copy"
        )


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a SelfDC checkpoint safely (weights only, hash verified, model config bounded).

    Any problem is a CheckpointError naming the file."""
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
    _check_integrity(state, path)
    check_model_config(state["model_config"], path)
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

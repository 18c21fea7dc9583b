"""Settings of the online learner (`adaptation.*` of the node, `--set` of training/adapt_bag.py).

The `loss` and `optim` sections take the same keys as the training config of training/train.py
(`SelfDCLoss` kwargs; lr, betas, weight_decay, grad_clip), so a model adapts online with the
objective it was trained with. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from selfdc_core.training.config import DEFAULTS as TRAIN_DEFAULTS
from selfdc_core.training.config import deep_merge

DEFAULTS: dict = {
    "buffer_frames": 64,  # replay buffer cap (frames); the oldest training frame goes first
    "buffer_mb": 256.0,  # replay buffer memory cap (MB of rgb, sparse, K and pseudo-labels)
    "min_gap_s": 0.5,  # keep a frame only this long after the last kept one
    "min_translation_m": 0.0,  # with poses: also require this much motion (or min_rotation_deg)
    "min_rotation_deg": 0.0,
    "min_sparse_points": 20,  # frames with fewer measurements are skipped and counted
    "holdout_every": 5,  # every n-th kept frame goes to the held-out slice (never trained on)
    "holdout_frames": 8,  # size of the held-out slice (the newest held-out frames)
    "hide_fraction": 0.1,  # share of a held-out frame's measurements hidden from the input and scored
    # Swap while the held-out error is at most (1 + this) x the best published one. 10%: a few dozen
    # hidden points make a noisy estimate, and at 2% the guard rolled back most of a learner's progress.
    "guard_tolerance": 0.1,
    # ... or while the rise, paired point by point, is within this many standard errors of its mean:
    # a rise that is only noise of a few dozen points is not a reason to throw the learner's steps away.
    "guard_significance": 3.0,
    "swap_every": 4,  # learner steps between guarded swaps
    "batch_size": 2,
    "max_step_rate_hz": 0.0,  # learner steps per second at most; 0 = as fast as idle compute allows
    "l2sp_weight": 0.0,  # pull toward the starting weights: l2sp_weight/2 * ||w - w_start||^2
    "save_path": "",  # write the adapted weights here ("" = never)
    "save_every_s": 60.0,  # period of those writes (s); 0 = only on request and at shutdown
    "resume": False,  # start from save_path when that file exists
    "seed": 0,
    "generator": "felzenszwalb",  # pseudo-labels: any selfdc_core.segmentation generator name
    "generator_kwargs": {"scale": 100.0, "sigma": 0.8, "min_area_fraction": 0.002},
    "loss": {},  # SelfDCLoss kwargs, as the training config's `loss` section
    "optim": {"lr": 1.0e-4, "betas": [0.9, 0.999], "weight_decay": 0.0, "grad_clip": 1.0},
}

_POSITIVE_INT = ("buffer_frames", "holdout_every", "holdout_frames", "swap_every", "batch_size",
                 "min_sparse_points")
_NON_NEGATIVE = ("buffer_mb", "min_gap_s", "min_translation_m", "min_rotation_deg", "guard_tolerance",
                 "guard_significance", "max_step_rate_hz", "l2sp_weight", "save_every_s")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_optim(optim: Mapping) -> None:
    valid = TRAIN_DEFAULTS["optim"]
    unknown = sorted(set(optim) - set(valid))
    if unknown:
        raise ValueError(f"unknown adaptation.optim key(s) {unknown}; valid keys: {sorted(valid)}")
    if not _number(optim["lr"]) or optim["lr"] <= 0:
        raise ValueError(f"adaptation.optim.lr must be a number > 0, got {optim['lr']!r}")
    clip = optim["grad_clip"]
    if clip is not None and (not _number(clip) or clip <= 0):
        raise ValueError(f"adaptation.optim.grad_clip must be a number > 0 or null, got {clip!r}")


def _check_values(cfg: dict) -> None:
    for key in _POSITIVE_INT:
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"adaptation.{key} must be an integer >= 1, got {cfg[key]!r}")
    for key in _NON_NEGATIVE:
        if not _number(cfg[key]) or cfg[key] < 0:
            raise ValueError(f"adaptation.{key} must be a number >= 0, got {cfg[key]!r}")
    if not _number(cfg["hide_fraction"]) or not 0 < cfg["hide_fraction"] < 1:
        raise ValueError(f"adaptation.hide_fraction must be in (0, 1), got {cfg['hide_fraction']!r}")
    if not isinstance(cfg["save_path"], str):
        raise ValueError(f"adaptation.save_path must be a path string ('' = off), got {cfg['save_path']!r}")
    if not isinstance(cfg["resume"], bool):
        raise ValueError(f"adaptation.resume must be true or false, got {cfg['resume']!r}")
    if not isinstance(cfg["generator_kwargs"], Mapping):
        raise ValueError(f"adaptation.generator_kwargs must be a mapping, got {cfg['generator_kwargs']!r}")


def adaptation_config(overrides: Mapping | None = None) -> dict:
    """DEFAULTS updated by `overrides` (nested for loss/optim), validated; errors name the key."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown adaptation key(s) {unknown}; valid keys: {sorted(DEFAULTS)}")
    cfg = copy.deepcopy(DEFAULTS)
    # Replaced as a whole: generators differ in their kwargs, so the default ones only suit the default.
    other_generator = overrides.get("generator", DEFAULTS["generator"]) != DEFAULTS["generator"]
    if "generator_kwargs" in overrides or other_generator:
        cfg["generator_kwargs"] = {}
    cfg = deep_merge(cfg, overrides)
    _check_values(cfg)
    _check_optim(cfg["optim"])
    from selfdc_core.losses import SelfDCLoss

    try:
        SelfDCLoss(**cfg["loss"])
    except ValueError as exc:
        raise ValueError(f"adaptation.loss: {exc}") from exc
    return cfg


def loss_of_checkpoint(state: Mapping) -> dict:
    """The `loss` section a checkpoint was trained with (its stored training config), else {} (defaults):
    the learner then adapts with the objective the model was trained with."""
    config = state.get("config") if isinstance(state, Mapping) else None
    loss = config.get("loss") if isinstance(config, Mapping) else None
    return dict(loss) if isinstance(loss, Mapping) else {}

"""Counters of the online learner, read by diagnostics (thread-safe snapshot)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, fields


@dataclass
class AdaptationStats:
    enabled: bool = False
    frames_observed: int = 0  # frames offered by inference
    frames_kept: int = 0  # frames that entered the buffer (training or held-out)
    skipped_gap: int = 0  # too close in time (or pose) to the last kept frame
    skipped_busy: int = 0  # offered while the learner's inbox was full
    skipped_no_sparse: int = 0  # fewer than min_sparse_points measurements
    skipped_degenerate_labels: int = 0  # pseudo-labels that cannot guide the losses
    learner_steps: int = 0
    loss: float = math.nan  # last training loss
    nonfinite_losses: int = 0  # steps dropped because the loss or gradient was not finite
    nonfinite_weights: int = 0  # steps undone because the weights turned non-finite
    swaps: int = 0  # guarded weight swaps into the inference model
    rollbacks: int = 0  # candidate weights rejected by the drift guard
    held_out_error_m: float = math.nan  # the published weights' error at hidden measurements
    candidate_error_m: float = math.nan  # the last candidate's
    buffer_frames: int = 0
    holdout_frames: int = 0
    buffer_fill: float = 0.0  # training frames / buffer_frames
    buffer_mb: float = 0.0
    compute_share: float = 0.0  # learner busy time / wall time since start (paused time excluded)
    saves: int = 0
    error: str = ""  # why the learner stopped, when it failed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **values) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self, key, value)

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, key, getattr(self, key) + amount)

    def snapshot(self) -> dict:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}

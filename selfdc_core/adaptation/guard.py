"""The drift guard: new weights reach inference only if the held-out error does not get worse.

The published weights' errors on the held-out slice are computed once per version of the slice.
A candidate is compared with the best weights published on that slice (so that small losses cannot
add up from swap to swap), point by point at the same hidden measurements. It is rejected when its
error is above (1 + tolerance) times the best one AND the paired difference is beyond its noise
(mean squared-error increase > `significance` standard errors). With a sparse sensor the slice
holds a few dozen hidden points, whose error moves from one set of weights to the next by more
than any fixed tolerance; rolling back on that noise throws the learner's progress away, while a
harmful update raises the errors at most points and is still rejected. A non-finite candidate
error is always rejected.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .frames import LearnerFrame
from .holdout import held_out_squared_errors, pooled_rmse


def significantly_worse(candidate: np.ndarray, best: np.ndarray, significance: float) -> bool:
    """Whether `candidate`'s squared errors exceed `best`'s (paired, same points) by more than
    `significance` standard errors of their mean difference."""
    diff = candidate - best
    if diff.size < 2:
        return bool(diff.mean() > 0) if diff.size else False
    spread = float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return float(diff.mean()) > significance * spread


class DriftGuard:
    def __init__(self, reference: nn.Module, tolerance: float, device: torch.device,
                 autocast: torch.dtype | None = None, significance: float = 3.0):
        self.reference = reference.to(device).eval()  # holds the published weights
        self.tolerance = float(tolerance)
        self.significance = float(significance)
        self.device = device
        self.autocast = autocast  # inference's precision: weights are judged as they will run
        self.reference_error = math.nan
        self.best_errors = np.zeros(0)  # squared errors of the best published weights on this slice
        self._candidate_errors = np.zeros(0)
        self._version: int | None = None

    @property
    def best_error(self) -> float:
        return pooled_rmse(self.best_errors)

    def judge(self, candidate: nn.Module, frames: list[LearnerFrame], version: int) -> tuple[bool, float]:
        """(accept, candidate error in m) for `candidate` on the held-out `frames` (slice `version`)."""
        if self._version != version:
            self.best_errors = held_out_squared_errors(self.reference, frames, self.device, self.autocast)
            self.reference_error = pooled_rmse(self.best_errors)
            self._version = version
        self._candidate_errors = held_out_squared_errors(candidate, frames, self.device, self.autocast)
        error = pooled_rmse(self._candidate_errors)
        if not math.isfinite(error):
            return False, error
        best = self.best_error
        if not math.isfinite(best) or error <= best * (1.0 + self.tolerance):
            return True, error
        return not significantly_worse(self._candidate_errors, self.best_errors, self.significance), error

    def accept(self, state: dict) -> None:
        """The last judged candidate (weights `state`) was published: it becomes the reference, and the
        best if it is."""
        with torch.no_grad():
            self.reference.load_state_dict(state, strict=True)
        self.reference_error = pooled_rmse(self._candidate_errors)
        if not math.isfinite(self.best_error) or self.reference_error < self.best_error:
            self.best_errors = self._candidate_errors

    def published_state(self) -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.reference.state_dict().items()}

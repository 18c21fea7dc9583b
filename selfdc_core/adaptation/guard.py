"""The drift guard: new weights reach inference only if the held-out error does not get worse.

The published weights' error on the held-out slice is computed once per version of the slice;
a candidate is accepted while its error is at most (1 + tolerance) times the lowest error any
published weights had on that slice, so that small losses cannot add up from swap to swap.
A non-finite candidate error is always rejected.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .frames import LearnerFrame
from .holdout import held_out_error


class DriftGuard:
    def __init__(self, reference: nn.Module, tolerance: float, device: torch.device,
                 autocast: torch.dtype | None = None):
        self.reference = reference.to(device).eval()  # holds the published weights
        self.tolerance = float(tolerance)
        self.device = device
        self.autocast = autocast  # inference's precision: weights are judged as they will run
        self.reference_error = math.nan
        self.best_error = math.nan  # lowest published error on the current slice
        self._version: int | None = None

    def judge(self, candidate: nn.Module, frames: list[LearnerFrame], version: int) -> tuple[bool, float]:
        """(accept, candidate error in m) for `candidate` on the held-out `frames` (slice `version`)."""
        if self._version != version:
            self.reference_error = held_out_error(self.reference, frames, self.device, self.autocast)
            self.best_error = self.reference_error
            self._version = version
        error = held_out_error(candidate, frames, self.device, self.autocast)
        if not math.isfinite(error):
            return False, error
        reference = self.best_error
        ceiling = reference * (1.0 + self.tolerance) if math.isfinite(reference) else math.inf
        return error <= ceiling, error

    def accept(self, state: dict, error: float) -> None:
        """The candidate was published: it becomes the reference."""
        with torch.no_grad():
            self.reference.load_state_dict(state, strict=True)
        self.reference_error = error
        self.best_error = min(self.best_error, error) if math.isfinite(self.best_error) else error

    def published_state(self) -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.reference.state_dict().items()}

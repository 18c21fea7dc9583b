"""The ground-truth-free error estimate behind the drift guard.

Each held-out frame hides a fixed random ~10% of its sparse measurements from the network's input;
the prediction at those pixels is compared with the hidden measurements. The result is an RMSE in
metres, measured against the sensor itself, so it needs no labels. It is pooled over every hidden
point of the held-out slice.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .frames import LearnerFrame, frames_to_batch


def choose_hidden(sparse: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(H,W) bool: `fraction` of the measured pixels (at least one), drawn at random."""
    measured = np.flatnonzero(sparse.reshape(-1) > 0)
    count = max(1, round(fraction * measured.size))
    hidden = np.zeros(sparse.size, dtype=bool)
    hidden[rng.choice(measured, size=min(count, measured.size), replace=False)] = True
    return hidden.reshape(sparse.shape)


@torch.no_grad()
def held_out_squared_errors(model: torch.nn.Module, frames: list[LearnerFrame], device: torch.device,
                            autocast: torch.dtype | None = None) -> np.ndarray:
    """(N,) float64 squared errors (m^2) of `model` at every hidden measurement of `frames`, frame by
    frame in a fixed order, so that two models' errors pair point by point.

    `autocast`: the precision inference runs in, so that the weights are judged as they will be used.
    Frames are scored one at a time: a batch of the whole slice would take far more memory (and cache)
    from the inference running beside the learner, for the same result (batch-norm is in eval mode).
    """
    was_training = model.training
    model.eval()
    errors = []
    try:
        for frame in frames:
            batch = frames_to_batch([frame], device, hide=True)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                depth = model(batch["rgb"], batch["sparse"])["depth"].float()
            hidden = torch.from_numpy(frame.hidden)[None, None].to(device)
            target = torch.from_numpy(frame.sparse)[None, None].to(device)
            errors.append((depth[hidden] - target[hidden]).double().pow(2).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(errors) if errors else np.zeros(0)


def pooled_rmse(squared_errors: np.ndarray) -> float:
    """RMSE (m) pooled over every point; nan without points, inf when an error is not finite."""
    if squared_errors.size == 0:
        return math.nan
    value = math.sqrt(float(np.mean(squared_errors)))
    return value if math.isfinite(value) else math.inf


def held_out_error(model: torch.nn.Module, frames: list[LearnerFrame], device: torch.device,
                   autocast: torch.dtype | None = None) -> float:
    """RMSE (m) of `model` at the hidden measurements of `frames`; inf when the prediction is not finite."""
    return pooled_rmse(held_out_squared_errors(model, frames, device, autocast))

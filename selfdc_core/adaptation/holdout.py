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
def held_out_error(model: torch.nn.Module, frames: list[LearnerFrame], device: torch.device) -> float:
    """RMSE (m) of `model` at the hidden measurements of `frames`; inf when the prediction is not finite."""
    if not frames:
        return math.nan
    was_training = model.training
    model.eval()
    try:
        batch = frames_to_batch(frames, device, hide=True)
        depth = model(batch["rgb"], batch["sparse"])["depth"].float()
    finally:
        model.train(was_training)
    hidden = torch.from_numpy(np.stack([f.hidden for f in frames]))[:, None].to(device)
    target = torch.from_numpy(np.stack([f.sparse for f in frames]))[:, None].to(device)
    error = (depth[hidden] - target[hidden]).pow(2).mean().sqrt()
    value = float(error)
    return value if math.isfinite(value) else math.inf

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
def held_out_error(model: torch.nn.Module, frames: list[LearnerFrame], device: torch.device,
                   autocast: torch.dtype | None = None) -> float:
    """RMSE (m) of `model` at the hidden measurements of `frames`; inf when the prediction is not finite.

    `autocast`: the precision inference runs in, so that the weights are judged as they will be used.
    Frames are scored one at a time: a batch of the whole slice would take far more memory (and cache)
    from the inference running beside the learner, for the same result (batch-norm is in eval mode).
    """
    if not frames:
        return math.nan
    was_training = model.training
    model.eval()
    squared, count = 0.0, 0
    try:
        for frame in frames:
            batch = frames_to_batch([frame], device, hide=True)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                depth = model(batch["rgb"], batch["sparse"])["depth"].float()
            hidden = torch.from_numpy(frame.hidden)[None, None].to(device)
            target = torch.from_numpy(frame.sparse)[None, None].to(device)
            squared += float((depth[hidden] - target[hidden]).pow(2).sum())
            count += int(hidden.sum())
    finally:
        model.train(was_training)
    value = math.sqrt(squared / count) if count else math.nan
    return value if math.isfinite(value) else math.inf

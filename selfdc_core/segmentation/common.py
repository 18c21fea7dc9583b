"""Small helpers shared by the generators: input checks and the missing-weights error."""

from __future__ import annotations

import numpy as np


class MissingWeightsError(FileNotFoundError):
    """A generator's checkpoint or model directory is absent; the message says what to download."""


def check_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """Return `rgb` if it is a uint8 (H,W,3) image, else raise ValueError naming `name`."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"{name} must be a uint8 (H,W,3) RGB image, got {got}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {rgb.shape}")
    return rgb


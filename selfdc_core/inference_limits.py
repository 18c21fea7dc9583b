"""What DepthCompleter accepts before running the network: its largest input and the sparse depth range.

Memory grows linearly with the pixels the network sees (bench/bench_memory.py measures it per
megapixel), so a camera larger than `max_pixels` is run at the largest size of the same aspect
within it, and the output is mapped back; an explicit input size (input_height/input_width)
always wins. Sparse depths outside [min_depth, max_depth] are dropped before the network: one
absurd measurement would otherwise shift the whole frame.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from selfdc_core.sensor_geometry import drop_out_of_range

__all__ = ["InferenceLimits", "warn_throttled"]

DEFAULT_MAX_PIXELS = 1_000_000

def warn_throttled(logger: logging.Logger, state: dict, key: str, text: str, period_s: float = 10.0) -> None:
    """Log `text` as a warning unless the same `key` was logged less than `period_s` ago
    (`state` keeps the times, one dict per warning source)."""
    now = time.monotonic()
    if now - state.get(key, -math.inf) >= period_s:
        state[key] = now
        logger.warning(text)


@dataclass(frozen=True)
class InferenceLimits:
    max_pixels: int = DEFAULT_MAX_PIXELS  # network input pixels at most (0 = no limit)
    min_depth: float = 0.0  # m; sparse depths outside [min_depth, max_depth] are dropped
    max_depth: float = 300.0

    def __post_init__(self):
        if not (int(self.max_pixels) == self.max_pixels and self.max_pixels >= 0):
            raise ValueError(f"max_pixels must be a non-negative integer, got {self.max_pixels!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got [{self.min_depth}, {self.max_depth}]")

    def network_size(self, height: int, width: int, input_size=None) -> tuple[int, int]:
        """The (height, width) the network runs at for a (height, width) frame."""
        if input_size is not None:
            return tuple(input_size)
        if not self.max_pixels or height * width <= self.max_pixels:
            return height, width
        scale = math.sqrt(self.max_pixels / (height * width))
        return max(1, int(height * scale)), max(1, int(width * scale))

    def clean_sparse(self, sparse: np.ndarray) -> tuple[np.ndarray, int, str | None]:
        """(sparse without out-of-range depths, number dropped, unit hint or None)."""
        return drop_out_of_range(sparse, self.min_depth, self.max_depth)

    def downscale_message(self, frame: tuple[int, int], size: tuple[int, int]) -> str:
        return (f"{frame[1]}x{frame[0]} frames exceed max_pixels={self.max_pixels}: the model runs at "
                f"{size[1]}x{size[0]} and the depth is mapped back; set input_height/input_width to choose")

    def drop_message(self, dropped: int, so_far: int, hint: str | None) -> str:
        text = f"dropped {dropped} sparse depths outside [{self.min_depth:g}, {self.max_depth:g}] m"
        return text + f" ({so_far} so far)" + (f"; {hint}" if hint else "")

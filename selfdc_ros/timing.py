"""Per-frame stage timings and their running statistics."""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager

import numpy as np

# Stages of one frame, in order; all in milliseconds.
STAGES = ("sync_wait", "queue_wait", "decode", "projection", "inference", "publish", "total_node", "latency")


class FrameTimer:
    """Collects the durations of one frame's stages."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1e3


class TimingStats:
    """Rolling window of frame timings: mean and 95th percentile per stage."""

    def __init__(self, window: int = 100):
        self._frames: dict[str, deque] = {s: deque(maxlen=window) for s in STAGES}

    def add(self, ms: dict[str, float]) -> None:
        for name, value in ms.items():
            self._frames.setdefault(name, deque(maxlen=self._frames["latency"].maxlen)).append(float(value))

    def values(self, stage: str) -> list[float]:
        """The stage's durations (ms) in the window, oldest first (one per frame that ran it)."""
        return list(self._frames.get(stage, ()))

    def summary(self) -> dict[str, tuple[float, float]]:
        """stage -> (mean ms, p95 ms) over the window, for stages seen at least once."""
        return {
            name: (float(np.mean(v)), float(np.percentile(v, 95)))
            for name, v in self._frames.items()
            if len(v)
        }

    def line(self) -> str:
        return ", ".join(f"{k} {m:.1f}/{p:.1f}" for k, (m, p) in self.summary().items()) + " ms (mean/p95)"

"""A recorded or simulated stream through a completer with an OnlineAdapter, in stream order.

Each frame is completed first, scored against ground truth when the stream has it, and only then
offered to the learner (prequential order: the learner never sees a frame before it is scored).
Used by training/adapt_bag.py and bench/bench_adaptation.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class StreamFrame:
    rgb: np.ndarray  # (H,W,3) uint8
    sparse: np.ndarray  # (H,W) float32 m
    K: np.ndarray  # (3,3)
    stamp: float  # s
    gt: np.ndarray | None = None  # (H,W) float32 m, 0 = invalid


@dataclass
class ReplayedFrame:
    stamp: float
    latency_s: float  # inference time of this frame
    idle_before_s: float  # time from the end of the previous frame's inference to the start of this one
    rmse: float  # against gt (nan without gt)
    held_out_error_m: float  # the drift guard's estimate at that moment (nan before the first check)
    learner_steps: int
    swaps: int


def frame_rmse(pred: np.ndarray, gt: np.ndarray | None, max_depth: float) -> float:
    """RMSE (m) over pixels with 0 < gt <= max_depth; nan without gt."""
    if gt is None:
        return math.nan
    valid = (gt > 0) & (gt <= max_depth)
    if not valid.any():
        return math.nan
    return float(np.sqrt(np.mean((np.clip(pred[valid], 0.0, max_depth) - gt[valid]) ** 2)))


def _wait_for_steps(adapter, target: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end and adapter.enabled and adapter.ready_to_train():
        if adapter.stats()["learner_steps"] >= target:
            return
        time.sleep(0.01)


def replay(completer, adapter, frames: Iterable[StreamFrame], speed: float = 0.0, steps_per_frame: int = 0,
           max_depth: float = 80.0, step_timeout: float = 120.0) -> list[ReplayedFrame]:
    """Run the stream; `speed` 1.0 keeps the recorded pace (0: no waiting), `steps_per_frame` > 0 lets the
    learner take that many steps after each frame (reproducible whatever the CPU)."""
    results: list[ReplayedFrame] = []
    start = first = None
    last_end = time.perf_counter()
    for frame in frames:
        if start is None:
            start, first = time.perf_counter(), frame.stamp
        if speed > 0:
            time.sleep(max(0.0, start + (frame.stamp - first) / speed - time.perf_counter()))
        before = adapter.stats()["learner_steps"]
        t0 = time.perf_counter()
        with adapter.priority():
            depth = completer.complete(frame.rgb, frame.sparse)
        latency = time.perf_counter() - t0
        idle, last_end = t0 - last_end, t0 + latency
        error = frame_rmse(depth, frame.gt, max_depth)
        adapter.observe(frame.rgb, frame.sparse, frame.K, frame.stamp)
        if steps_per_frame > 0:
            _wait_for_steps(adapter, before + steps_per_frame, step_timeout)
        stats = adapter.stats()
        results.append(ReplayedFrame(frame.stamp, latency, idle, error, stats["held_out_error_m"],
                                     stats["learner_steps"], stats["swaps"]))
    return results

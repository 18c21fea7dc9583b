"""The learner's bounded replay buffer, its held-out slice, and the gap rule for kept frames."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .frames import LearnerFrame


class GapFilter:
    """Keeps a frame only when enough time passed (and, with poses, the robot moved or turned enough)
    since the last kept one, so that a standing robot does not fill the buffer with copies."""

    def __init__(self, min_gap_s: float, min_translation_m: float = 0.0, min_rotation_deg: float = 0.0):
        self.min_gap_s, self.min_translation_m = float(min_gap_s), float(min_translation_m)
        self.min_rotation_deg = float(min_rotation_deg)
        self._last_stamp: float | None = None
        self._last_pose: np.ndarray | None = None

    def _moved(self, pose: np.ndarray | None) -> bool:
        no_rule = self.min_translation_m <= 0 and self.min_rotation_deg <= 0
        if pose is None or self._last_pose is None or no_rule:
            return True
        translation = float(np.linalg.norm(pose[:3, 3] - self._last_pose[:3, 3]))
        cos = (np.trace(self._last_pose[:3, :3].T @ pose[:3, :3]) - 1.0) / 2.0
        rotation = math.degrees(math.acos(float(np.clip(cos, -1.0, 1.0))))
        moved = self.min_translation_m > 0 and translation >= self.min_translation_m
        turned = self.min_rotation_deg > 0 and rotation >= self.min_rotation_deg
        return moved or turned

    def admit(self, stamp: float, pose: np.ndarray | None = None) -> bool:
        """True (and remember the frame) when the frame is far enough from the last kept one."""
        pose = None if pose is None else np.asarray(pose, dtype=np.float64).reshape(4, 4)
        last = self._last_stamp
        restarted = last is not None and stamp < last  # time went backwards: a replayed recording
        if last is not None and not restarted:
            if stamp - last < self.min_gap_s or not self._moved(pose):
                return False
        self._last_stamp, self._last_pose = stamp, pose
        return True


class ReplayBuffer:
    """Training frames (oldest evicted first past `max_frames` or `max_mb`) and a held-out slice.

    Every `holdout_every`-th frame added (starting with the first) goes to the held-out slice
    (the newest `holdout_frames`), which the drift guard scores and the learner never trains on.
    """

    def __init__(self, max_frames: int, max_mb: float, holdout_every: int, holdout_frames: int):
        self.max_frames, self.max_bytes = int(max_frames), float(max_mb) * 2**20
        self.holdout_every = int(holdout_every)
        self.train: deque[LearnerFrame] = deque()
        self.holdout: deque[LearnerFrame] = deque(maxlen=int(holdout_frames))
        self.added = 0
        self.evicted = 0
        self.holdout_version = 0  # changes whenever the held-out slice does

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.train) + sum(f.nbytes for f in self.holdout)

    def wants_holdout(self) -> bool:
        """Whether the next frame added goes to the held-out slice."""
        return self.added % self.holdout_every == 0

    def add(self, frame: LearnerFrame) -> str:
        """Add a frame; returns "holdout" or "train". A frame of another size empties the buffer."""
        newest = self.train[-1] if self.train else (self.holdout[-1] if self.holdout else None)
        if newest is not None and newest.rgb.shape != frame.rgb.shape:
            self.train.clear()
            self.holdout.clear()
        holdout = frame.hidden is not None
        if holdout:
            self.holdout.append(frame)
            self.holdout_version += 1
        else:
            self.train.append(frame)
        self.added += 1
        while self.train and (len(self.train) > self.max_frames or self.nbytes > self.max_bytes):
            self.train.popleft()
            self.evicted += 1
        return "holdout" if holdout else "train"

    def fill(self) -> float:
        """Training frames held, as a share of the frame cap."""
        return len(self.train) / self.max_frames

    def sample(self, batch_size: int, rng: np.random.Generator) -> list[LearnerFrame]:
        """The newest training frame plus `batch_size - 1` others, without replacement (fewer if short)."""
        frames = list(self.train)
        if not frames:
            return []
        others = frames[:-1]
        count = min(batch_size - 1, len(others))
        picked = rng.choice(len(others), size=count, replace=False) if count else []
        return [frames[-1], *(others[i] for i in picked)]

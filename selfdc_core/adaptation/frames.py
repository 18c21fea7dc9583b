"""Frames as the learner keeps them: at the model's input size, with their pseudo-labels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from selfdc_core.geometry import resize_sparse_depth


@dataclass
class LearnerFrame:
    rgb: np.ndarray  # (H,W,3) uint8 at the model input size
    sparse: np.ndarray  # (H,W) float32 m, 0 = no measurement
    K: np.ndarray  # (3,3) float32, scaled to the model input size
    segments: np.ndarray  # (H,W) int32 pseudo-labels, 0 = unlabeled
    stamp: float  # s
    hidden: np.ndarray | None = None  # held-out frames: (H,W) bool, measurements hidden from the input

    @property
    def nbytes(self) -> int:
        extra = 0 if self.hidden is None else self.hidden.nbytes
        return self.rgb.nbytes + self.sparse.nbytes + self.K.nbytes + self.segments.nbytes + extra


def to_model_size(rgb: np.ndarray, sparse: np.ndarray, K: np.ndarray, size: tuple[int, int] | None):
    """Resize a frame as DepthCompleter does for its input (area/linear for rgb, z-buffer for sparse)."""
    K = np.asarray(K, dtype=np.float32).reshape(3, 3).copy()
    if size is None or tuple(size) == rgb.shape[:2]:
        return np.ascontiguousarray(rgb), np.asarray(sparse, dtype=np.float32).copy(), K
    h, w = size
    shrink = h < rgb.shape[0]
    resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    K[0] *= w / rgb.shape[1]
    K[1] *= h / rgb.shape[0]
    return resized, resize_sparse_depth(sparse, h, w), K


def degenerate_labels(segments: np.ndarray) -> str | None:
    """Why a pseudo-label map cannot guide the losses, or None when it can."""
    labelled = segments > 0
    if labelled.mean() < 0.5:
        return f"only {labelled.mean():.0%} of the pixels are labelled"
    if np.unique(segments[labelled]).size < 2:
        return "a single region covers the image"
    return None


def frames_to_batch(frames: list[LearnerFrame], device: torch.device, hide: bool = False) -> dict:
    """Stack frames into the trainer's batch layout; `hide` removes the held-out measurements."""
    rgb = torch.from_numpy(np.stack([f.rgb for f in frames])).permute(0, 3, 1, 2).float().div_(255.0)
    sparse = np.stack([f.sparse for f in frames])
    if hide:
        sparse = np.where(np.stack([f.hidden for f in frames]), np.float32(0.0), sparse)
    batch = {
        "rgb": rgb,
        "sparse": torch.from_numpy(np.ascontiguousarray(sparse))[:, None],
        "segments": torch.from_numpy(np.stack([f.segments for f in frames]).astype(np.int64)),
        "K": torch.from_numpy(np.stack([f.K for f in frames])),
    }
    return {k: v.to(device) for k, v in batch.items()}

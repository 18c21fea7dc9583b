"""Pseudo-label cache: one single-channel 16-bit PNG per dataset key, mirroring the dataset tree."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

MAX_LABEL = np.iinfo(np.uint16).max


class LabelCache:
    """`root/<key>.png`, where the key is the dataset's relative path without extension."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        parts = PurePosixPath(str(key).replace("\\", "/")).parts
        if not key or parts[0] == "/" or ".." in parts:
            raise ValueError(f"label key must be a non-empty relative path without '..', got {key!r}")
        return self.root.joinpath(*parts[:-1], parts[-1] + ".png")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, key: str, labels: np.ndarray) -> Path:
        """Write `labels` (integer (H,W), 0..65535) atomically: a temp file renamed into place."""
        labels = np.asarray(labels)
        path = self.path(key)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
            raise ValueError(
                f"{path}: labels must be a non-empty integer (H,W) map, got {labels.dtype} {labels.shape}"
            )
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high > MAX_LABEL:
            raise ValueError(
                f"{path}: label ids must lie in [0, {MAX_LABEL}] for a 16-bit PNG, got [{low}, {high}]"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, so the rename is atomic; the suffix stays .png for cv2's encoder choice.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
        try:
            if not cv2.imwrite(str(tmp), labels.astype(np.uint16)):
                raise OSError(f"{path}: cv2 could not write the PNG")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def load(self, key: str) -> np.ndarray:
        """Read a label map as uint16 (H,W); anything but a single-channel 16-bit PNG is an error."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"pseudo-label file not found: {path}")
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise ValueError(f"{path}: cannot decode the file (corrupt or truncated?); expected a 16-bit PNG")
        if labels.ndim != 2:
            raise ValueError(f"{path}: has {labels.shape[2]} channels, expected a single-channel 16-bit PNG")
        if labels.dtype != np.uint16:
            bits = labels.dtype.itemsize * 8
            raise ValueError(
                f"{path}: is a {bits}-bit {labels.dtype} image, expected a single-channel 16-bit PNG"
            )
        return labels

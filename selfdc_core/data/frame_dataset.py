"""What every dataset shares: indexing, bad-item skipping, the view pipeline and the sample checks.

A dataset (NYU, KITTI-DC, rosbag, synthetic) subclasses `FrameDataset` and provides `__len__`,
`key(i)`, optionally `source(i)` (the file to name in errors) and `_load(i) -> sample dict`. It
builds the sample with the two shared steps:

    view = self.view(key, rgb, K, rng, place)   # augment -> place (resize/crop) -> colour jitter,
                                                # with the pseudo-labels resampled the same way
    return self.sample(key, view.rgb, sparse, view.K, view.segments, gt)

`sample` drops sparse depths outside [min_depth, max_depth] (or not finite) and counts them
(`dropped_depths`): one absurd return must not reach the network. `__getitem__` turns a
`DataError` into an exception (default) or, with `skip_bad=True`, a logged and counted skip to
the next item, and it names the item's file on any other exception.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from selfdc_core.data.base import make_sample
from selfdc_core.data.io import DataError
from selfdc_core.data.sampling import file_rng, training_rng
from selfdc_core.data.transforms import (
    AugmentConfig,
    AugmentParams,
    PixelTransform,
    color_jitter,
    sample_augmentation,
)
from selfdc_core.segmentation.source import optional_segment_source

log = logging.getLogger(__name__)

# Default plausibility range of sparse depths (metres): far beyond any depth sensor, so it only
# removes corrupt values (a 1e9 m return) unless a dataset spec narrows it.
DEFAULT_MAX_DEPTH = 1000.0


@dataclass
class View:
    """An image after augmentation and placement, with what moved with it."""

    transform: PixelTransform
    rgb: np.ndarray
    segments: np.ndarray | None

    @property
    def K(self) -> np.ndarray:
        return self.transform.K


def check_index(i, n: int, owner: str) -> int:
    """`i` as a non-negative index into `n` items; Python's negative indexing is allowed."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"{owner} index must be an integer, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for {owner} with {n} items")
    return int(i) % n


def drop_out_of_range(sparse: np.ndarray, min_depth: float, max_depth: float) -> tuple[np.ndarray, int]:
    """Zero (= no measurement) the depths outside [min_depth, max_depth] or not finite; count them."""
    measured = sparse != 0
    bad = measured & ~((sparse >= min_depth) & (sparse <= max_depth))  # NaN fails both comparisons
    count = int(np.count_nonzero(bad))
    if count:
        sparse = np.where(bad, np.float32(0), sparse).astype(np.float32, copy=False)
    return sparse, count


class FrameDataset(Dataset):
    """Base of the datasets; see the module docstring for what a subclass provides."""

    def __init__(self, split: str = "val", augment=None, seed: int = 0, skip_bad: bool = False,
                 segments_root=None, segment_fallback=None, min_depth: float = 0.0,
                 max_depth: float = DEFAULT_MAX_DEPTH):
        if not (math.isfinite(min_depth) and min_depth >= 0 and max_depth > min_depth):
            raise ValueError(f"need 0 <= min_depth < max_depth, got min_depth={min_depth}, "
                             f"max_depth={max_depth}")
        self.split, self.seed = split, int(seed)
        self.augment = AugmentConfig.resolve(augment, default=split == "train")
        self.skip_bad = bool(skip_bad)
        self.segments_root, self.segment_fallback = segments_root, segment_fallback
        self._segment_source = optional_segment_source(segments_root, segment_fallback)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.skipped = 0  # items skipped in this process (each DataLoader worker counts its own)
        self.skipped_files: list[str] = []
        self.dropped_depths = 0  # sparse depths outside [min_depth, max_depth], in this process

    # ---- subclass interface ----
    def key(self, i: int) -> str:
        raise NotImplementedError

    def source(self, i: int) -> str:
        """What to name when item i is bad (its file); the key unless a subclass knows better."""
        return self.key(i)

    def _load(self, i: int) -> dict:
        raise NotImplementedError

    # ---- indexing and bad items ----
    def _index(self, i) -> int:
        return check_index(i, len(self), type(self).__name__)

    def __getitem__(self, i) -> dict:
        i = self._index(i)
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            try:
                return self._load(j)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                self.skipped += 1
                self.skipped_files.append(self.source(j))
                log.warning("skipping bad item %d (%d skipped so far): %s", j, self.skipped, exc)
            except Exception as exc:
                if hasattr(exc, "add_note"):  # keep the type (e.g. MissingLabelError), add the file
                    exc.add_note(f"while loading {type(self).__name__} item {j}: {self.source(j)}")
                raise
        raise DataError(f"{type(self).__name__}: every one of the {len(self)} items failed to load")

    # ---- the shared pipeline ----
    def frame_rng(self, key: str) -> np.random.Generator:
        """Training draws fresh randomness per item; other splits are seeded by the item's key."""
        return training_rng() if self.split == "train" else file_rng(key, self.seed)

    def view(self, key: str, rgb: np.ndarray, K: np.ndarray, rng: np.random.Generator,
             place: Callable[[PixelTransform, AugmentParams | None], None]) -> View:
        """Augment (when on), `place` (resize/crop to the output), resample once, colour-jitter."""
        tf = PixelTransform(K, *rgb.shape[:2])
        params = sample_augmentation(self.augment, rng) if self.augment is not None else None
        if params is not None:
            tf.apply_augmentation(params)
        place(tf, params)
        rgb_out = tf.apply_image(rgb)
        if params is not None:
            rgb_out = color_jitter(rgb_out, params)
        raw_segments = self._raw_segments(key, rgb)
        segments = tf.apply_nearest(raw_segments) if raw_segments is not None else None
        return View(tf, rgb_out, segments)

    def sample(self, key: str, rgb: np.ndarray, sparse: np.ndarray, K: np.ndarray,
               segments: np.ndarray | None = None, gt: np.ndarray | None = None) -> dict:
        """The sample dict, after implausible sparse depths are dropped and counted."""
        sparse, dropped = drop_out_of_range(sparse, self.min_depth, self.max_depth)
        if dropped:
            self.dropped_depths += dropped
            log.warning("%s: dropped %d sparse depths outside [%g, %g] m (%d so far in this dataset)",
                        key, dropped, self.min_depth, self.max_depth, self.dropped_depths)
        return make_sample(key, rgb, sparse, K, segments=segments, gt=gt)

    # ---- pseudo-labels ----
    @property
    def uses_segments(self) -> bool:
        return self._segment_source is not None

    def _raw_segments(self, key: str, rgb: np.ndarray) -> np.ndarray | None:
        """Pseudo-labels at the stored image resolution, or None when none are configured."""
        return None if self._segment_source is None else self._segment_source.get(key, rgb)

    @staticmethod
    def _missing_report(missing: list[str], what: str, total: int) -> str:
        shown = "\n  ".join(missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        return f"{len(missing)} of {total} items lack {what}:\n  {shown}{more}"

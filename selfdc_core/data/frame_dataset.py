"""One data contract: frame sources read frames as stored, `FrameDataset` turns them into samples.

A frame source (NYU, KITTI-DC, rosbag, synthetic) implements the `FrameSource` protocol:
    __len__()                number of frames
    key(i) -> str            stable id (the pseudo-label cache mirrors it)
    read(i) -> RawFrame      rgb, sparse (None: sample it from gt), K, gt (None: not read)
and, when its frames need resizing or cropping, `place(transform, params, rng)`.

`FrameDataset` owns everything after reading, identically for every source:
    augmentation -> place (resize/crop) -> one resampling of rgb, depths and pseudo-labels ->
    colour jitter -> sparse sampling (when the source has none) -> implausible sparse depths
    dropped and counted (`dropped_depths`) -> sample dict (`gt` only when `with_gt`).
Its `__getitem__` is the one bad-item wrapper: a `DataError` is raised (default) or, with
`skip_bad=True`, logged, counted and skipped; any other exception gets the item's file named.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from torch.utils.data import Dataset

from selfdc_core.data.base import make_sample
from selfdc_core.data.io import DataError
from selfdc_core.data.sampling import file_rng, sample_sparse_depth, training_rng
from selfdc_core.data.transforms import (
    AugmentConfig,
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
class RawFrame:
    """One frame as its source stores it (before any augmentation, resize or crop)."""

    rgb: np.ndarray  # uint8 (H,W,3)
    sparse: np.ndarray | None  # (H,W) metres, 0 = no measurement; None: sampled from `gt`
    K: np.ndarray  # (3,3) intrinsics of the stored image
    gt: np.ndarray | None = None  # (H,W) metres, 0 = invalid; None when not read
    segments: np.ndarray | None = None  # labels that come with the frame (they win over the cache)
    extras: dict = field(default_factory=dict)  # per-item values added to the sample (e.g. stamp)


@runtime_checkable
class FrameSource(Protocol):
    def __len__(self) -> int: ...

    def key(self, i: int) -> str: ...

    def read(self, i: int) -> RawFrame: ...


@dataclass
class View:
    """The output geometry of one item: the transform from the stored frame, and the placed rgb.

    Without a transform (no augmentation, no placement) the stored arrays are used as they are."""

    transform: PixelTransform | None
    rgb: np.ndarray
    K: np.ndarray
    segments: np.ndarray | None = None

    def dense(self, depth: np.ndarray | None) -> np.ndarray | None:
        if depth is None or self.transform is None:
            return depth
        return self.transform.apply_dense_depth(depth)

    def sparse(self, depth: np.ndarray) -> np.ndarray:
        return depth if self.transform is None else self.transform.apply_sparse_depth(depth)

    def labels(self, labels: np.ndarray | None) -> np.ndarray | None:
        if labels is None or self.transform is None:
            return labels
        return self.transform.apply_nearest(labels)


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
    """Samples from a frame source; a dataset class is a FrameSource that inherits this."""

    with_gt: bool = False
    num_samples: int | None = None  # sparse points drawn from gt when the source has no sparse depth

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

    # ---- the source's part ----
    def key(self, i: int) -> str:
        raise NotImplementedError

    def read(self, i: int) -> RawFrame:
        raise NotImplementedError

    def source(self, i: int) -> str:
        """What to name when item i is bad (its file); the key unless a subclass knows better."""
        return self.key(i)

    # Set `place` to a method `place(transform, params, rng)` that resizes/crops to the output.
    place = None

    def raw_rgb(self, i: int) -> np.ndarray:
        """The image as stored (pseudo-labels are computed and cached at this size)."""
        return self.read(self._index(i)).rgb

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

    def _load(self, i: int) -> dict:
        key = self.key(i)
        frame = self.read(i)
        rng = self.frame_rng(key)
        try:
            view = self.view(key, frame, rng)
        except DataError as exc:  # the frame does not fit the placement (e.g. smaller than the crop)
            raise DataError(f"{self.source(i)}: {exc}") from exc
        gt = view.dense(frame.gt)
        if frame.sparse is not None:
            sparse = view.sparse(frame.sparse)
        else:
            try:
                sparse = sample_sparse_depth(gt, self.num_samples, rng)
            except ValueError as exc:
                raise DataError(f"{self.source(i)}: {exc}") from exc
        sample = self.sample(key, view.rgb, sparse, view.K, view.segments, gt if self.with_gt else None)
        sample.update(frame.extras)
        return sample

    def view(self, key: str, frame: RawFrame, rng: np.random.Generator) -> View:
        """Augment (when on), place (resize/crop to the output), resample once, colour-jitter."""
        labels = frame.segments if frame.segments is not None else self._raw_segments(key, frame.rgb)
        if self.augment is None and self.place is None:  # already at the output size
            return View(None, frame.rgb, frame.K, labels)
        tf = PixelTransform(frame.K, *frame.rgb.shape[:2])
        params = sample_augmentation(self.augment, rng) if self.augment is not None else None
        if params is not None:
            tf.apply_augmentation(params)
        if self.place is not None:
            self.place(tf, params, rng)
        rgb_out = tf.apply_image(frame.rgb)
        if params is not None:
            rgb_out = color_jitter(rgb_out, params)
        view = View(tf, rgb_out, tf.K)
        view.segments = view.labels(labels)
        return view

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

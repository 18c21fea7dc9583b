"""RosbagDataset: training samples from a recorded rosbag2 (camera + LiDAR/ToF), no ground truth needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfdc_core.data.frame_dataset import DEFAULT_MAX_DEPTH, FrameDataset, RawFrame

from .cache import SampleCache
from .extract import extract_bag
from .reader import resolve_bag_path
from .settings import ExtractionSettings

__all__ = ["RosbagDataset", "time_split"]

SPLITS = ("train", "val", "all")


def time_split(stamps: np.ndarray, split: str, val_fraction: float) -> np.ndarray:
    """Indices of `split`: "val" is the last `val_fraction` of the recording's time span, "train" the rest."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    stamps = np.asarray(stamps, dtype=np.int64)
    if split == "all":
        return np.arange(stamps.size)
    start, end = int(stamps.min()), int(stamps.max())
    cutoff = end - float(val_fraction) * (end - start)
    is_val = (stamps > cutoff) if val_fraction > 0 else np.zeros(stamps.size, bool)
    chosen = np.flatnonzero(is_val if split == "val" else ~is_val)
    if chosen.size == 0:
        raise ValueError(
            f"the {split!r} split of the bag is empty: {stamps.size} samples over "
            f"{(end - start) / 1e9:.2f} s "
            f"with val_fraction={val_fraction} (the last {val_fraction:.0%} of the time span is 'val'); "
            "record a longer bag or change val_fraction"
        )
    return chosen


class RosbagDataset(FrameDataset):
    """Samples of a rosbag2 in the common format (see selfdc_core.data.base), via an extraction cache.

    Args:
        bag: the rosbag2 directory (sqlite3 or mcap; `bag=<path>` of the training config).
        split: "train" (the first 1 - val_fraction of the recording's time span), "val" (the rest) or "all".
        val_fraction: held-out share of the time span (the end of the recording).
        cache_root: where extraction writes `<bag name>/<stamp>.npz` (default: `<bag dir>/../selfdc_cache`).
        image_topic, camera_info_topic, sparse_topic, gt_topic, typestore, sync_queue_size, sync_slop,
        use_projection_matrix, extrinsic, occlusion_filter: see `settings.ExtractionSettings` (the
            node's names and defaults).
        with_gt: True adds `gt` (the bag must carry gt_topic), False never reads it, "auto" adds it when
            the bag has it (validation of synthetic bags).
        size: [H, W] model input size (resize, then centre crop to keep the aspect); None = as recorded.
        augment: None (= on for "train"), bool, dict of AugmentConfig fields, or an AugmentConfig.
        segments_root, segment_fallback: pseudo-labels (see selfdc_core.segmentation.SegmentSource).
        seed: seeds the (optional) augmentation of non-training splits.
        progress: progress bar during extraction.
        skip_bad: log, count (`skipped`) and skip unreadable cached samples instead of raising.
        min_depth, max_depth: sparse depths outside this range are dropped and counted (`dropped_depths`).
    """

    def __init__(
        self,
        bag,
        split: str = "train",
        val_fraction: float = 0.1,
        cache_root=None,
        image_topic: str = "/camera/image",
        camera_info_topic: str = "/camera/camera_info",
        sparse_topic: str = "/lidar/points",
        gt_topic: str | None = "/camera/depth_gt",
        typestore: str = "humble",
        sync_queue_size: int = 10,
        sync_slop: float = 0.05,
        use_projection_matrix: bool = False,
        extrinsic=None,
        occlusion_filter=None,
        with_gt=False,
        size=None,
        augment=None,
        segments_root=None,
        segment_fallback=None,
        seed: int = 0,
        progress: bool = True,
        skip_bad: bool = False,
        min_depth: float = 0.0,
        max_depth: float = DEFAULT_MAX_DEPTH,
    ):
        super().__init__(split=split, augment=augment, seed=seed, skip_bad=skip_bad,
                         segments_root=segments_root, segment_fallback=segment_fallback,
                         min_depth=min_depth, max_depth=max_depth)
        if with_gt not in (True, False, "auto"):
            raise ValueError(f"with_gt must be true, false or 'auto', got {with_gt!r}")
        path = resolve_bag_path(bag)
        self.settings = ExtractionSettings(
            image_topic=image_topic, camera_info_topic=camera_info_topic, sparse_topic=sparse_topic,
            gt_topic=gt_topic, typestore=typestore, sync_queue_size=sync_queue_size, sync_slop=sync_slop,
            use_projection_matrix=use_projection_matrix, extrinsic=extrinsic,
            occlusion_filter=occlusion_filter,
        )
        self.size = None if size is None else self._check_size(size)
        self.cache_root = Path(cache_root) if cache_root is not None else path.parent / "selfdc_cache"
        self.index = extract_bag(path, self.cache_root, self.settings, progress=progress)
        self.cache = SampleCache.at(self.index["dir"], path.name)
        self.report = self.index["report"]
        has_gt = bool(self.report["gt"])
        if with_gt is True and not has_gt:
            raise ValueError(
                f"with_gt=True but the bag {path} has no ground-truth topic {self.settings.gt_topic!r}; "
                "real recordings have none: use with_gt: auto (or false)"
            )
        self.with_gt = has_gt if with_gt == "auto" else bool(with_gt)
        all_samples = self.index["samples"]
        chosen = time_split(np.array([s["stamp"] for s in all_samples]), split, val_fraction)
        self.samples = [all_samples[i] for i in chosen]

    @staticmethod
    def _check_size(size) -> tuple[int, int]:
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
            raise ValueError(f"size must be [height, width] in pixels or null, got {size!r}")
        return int(size[0]), int(size[1])

    def __len__(self) -> int:
        return len(self.samples)

    def key(self, i: int) -> str:
        return self.samples[self._index(i)]["key"]

    def stamp(self, i: int) -> int:
        """The sample's camera image stamp (ns)."""
        return int(self.samples[self._index(i)]["stamp"])

    def raw_rgb(self, i: int) -> np.ndarray:
        return self.cache.read(self.stamp(i))["rgb"]

    def source(self, i: int) -> str:
        return str(self.cache.sample_path(self.stamp(i)))

    def place(self, tf, params, rng) -> None:
        stored_h, stored_w = tf.source_shape  # as recorded, before augmentation
        if self.size is not None:
            h, w = self.size
            scale = max(h / stored_h, w / stored_w)  # cover the target, then crop the excess
            tf.resize(scale).center_crop(h, w)
        else:
            tf.center_crop(stored_h, stored_w)

    def read(self, i: int) -> RawFrame:
        entry = self.samples[i]
        data = self.cache.read(entry["stamp"])
        if self.with_gt and "gt" not in data:
            raise ValueError(f"cached sample {self.cache.sample_path(entry['stamp'])} has no GT depth")
        return RawFrame(
            rgb=data["rgb"], sparse=data["sparse"], K=data["K"], gt=data["gt"] if self.with_gt else None,
            extras={"stamp": int(entry["stamp"])},  # camera stamp in ns (collates to an int64 tensor)
        )

    def __repr__(self) -> str:
        return (f"RosbagDataset({self.cache.bag_name!r}, split={self.split!r}, {len(self)} samples, "
                f"with_gt={self.with_gt}, cache={self.cache.dir})")

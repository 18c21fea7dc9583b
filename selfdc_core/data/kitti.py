"""KITTI Depth Completion in the official directory layout.

    <root>/{train,val}/<drive>/proj_depth/velodyne_raw/image_0{2,3}/<frame>.png   sparse LiDAR
    <root>/{train,val}/<drive>/proj_depth/groundtruth/image_0{2,3}/<frame>.png    semi-dense GT
    <raw_root>/<date>/<drive>/image_0{2,3}/data/<frame>.png                       RGB (raw data)
    <raw_root>/<date>/calib_cam_to_cam.txt                                        P_rect_02/03
    <root>/depth_selection/val_selection_cropped/{image,velodyne_raw,groundtruth_depth,intrinsics}/
    <root>/depth_selection/test_depth_completion_anonymous/{image,velodyne_raw,intrinsics}/

Depth PNGs are uint16 = metres * 256 (0 = none). `<date>` is the first 10 characters of the
drive name; `raw_root` defaults to `root`.

Item keys are the RGB file's path without extension, relative to `raw_root` for train/val
(`2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005`) and to `root` for the
depth_selection splits, so the pseudo-label cache mirrors the images it labels.

LiDAR noise: before any resampling, points that lie behind a closer surface as seen from the
camera are removed with `geometry.filter_occluded_points` (defaults: 5x5 window, removed when
more than 0.5 m AND 15% deeper than the window's nearest point). This applies to every split,
as the deployed node does the same; `num_filtered` and `filter_stats` report what was removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfdc_core.data.frame_dataset import DEFAULT_MAX_DEPTH, FrameDataset, RawFrame
from selfdc_core.data.io import (
    DataError,
    read_depth_png,
    read_intrinsics_txt,
    read_kitti_calib,
    read_rgb_png,
)
from selfdc_core.data.transforms import PixelTransform
from selfdc_core.geometry import filter_occluded_points

__all__ = ["KITTIDepthCompletion"]

SPLITS = ("train", "val", "val_selection", "test")
EVAL_CROP = (352, 1216)
TRAIN_CROP = (240, 1216)

LAYOUT_HINT = (
    "Expected the KITTI depth completion tree: <root>/{train,val}/<drive>/proj_depth/"
    "{velodyne_raw,groundtruth}/image_0{2,3}/*.png plus the raw drives <raw_root>/<date>/<drive>/"
    "image_0{2,3}/data/*.png with <raw_root>/<date>/calib_cam_to_cam.txt, and "
    "<root>/depth_selection/{val_selection_cropped,test_depth_completion_anonymous}/. Download the "
    "depth completion data (data_depth_velodyne, data_depth_annotated, data_depth_selection) from "
    "https://www.cvlibs.net/datasets/kitti/eval_depth.php?benchmark=depth_completion and the matching "
    "raw drives (synced+rectified, with calibration) from https://www.cvlibs.net/datasets/kitti/raw_data.php."
)

_SELECTION_DIRS = {
    "val_selection": "depth_selection/val_selection_cropped",
    "test": "depth_selection/test_depth_completion_anonymous",
}


@dataclass(frozen=True)
class _Frame:
    key: str
    rgb: Path
    sparse: Path
    gt: Path | None
    intrinsics: Path  # calib_cam_to_cam.txt (with `camera`) or a 9-number txt (camera None)
    camera: int | None


class KITTIDepthCompletion(FrameDataset):
    """KITTI-DC items in the common format (see selfdc_core.data.base), plus `num_filtered` (int).

    Args:
        root: holds train/, val/ and/or depth_selection/.
        split: "train", "val", "val_selection" or "test" (no ground truth).
        augment: None (= on for "train"), bool, dict of AugmentConfig fields, or an AugmentConfig.
        with_gt: include `gt`; None = True for val/val_selection, False for train; never for test.
        crop: (height, width); None = (240, 1216) for train, (352, 1216) otherwise.
        random_crop: None = random for train, bottom-centre crop otherwise.
        random_crop_rows: random crops stay inside the bottom rows (times the augmentation scale),
            where the LiDAR has returns; None = anywhere in the image.
        filter_noise, filter_kernel, filter_rel_threshold, filter_abs_threshold: LiDAR occlusion filter.
        segments_root / segment_fallback: pseudo-label cache and on-the-fly generator (SegmentSource).
        raw_root: where the raw drives live (default: root).
        seed: seeds the augmentation draw of non-training splits (when augment is on there).
        skip_bad: log, count (`skipped`) and skip bad or unmatched files instead of raising.
        min_depth, max_depth: sparse depths outside this range are dropped and counted (`dropped_depths`).
    """

    def __init__(
        self,
        root,
        split: str = "train",
        augment=None,
        with_gt: bool | None = None,
        crop: tuple[int, int] | None = None,
        random_crop: bool | None = None,
        random_crop_rows: int | None = 352,
        filter_noise: bool = True,
        filter_kernel: int = 5,
        filter_rel_threshold: float = 0.15,
        filter_abs_threshold: float = 0.5,
        segments_root=None,
        segment_fallback=None,
        raw_root=None,
        seed: int = 0,
        skip_bad: bool = False,
        min_depth: float = 0.0,
        max_depth: float = DEFAULT_MAX_DEPTH,
    ):
        super().__init__(split=split, augment=augment, seed=seed, skip_bad=skip_bad,
                         segments_root=segments_root, segment_fallback=segment_fallback,
                         min_depth=min_depth, max_depth=max_depth)
        if split not in SPLITS:
            raise ValueError(f"KITTIDepthCompletion split must be one of {SPLITS}, got {split!r}")
        if split == "test" and with_gt:
            raise ValueError("KITTI split 'test' has no ground truth (it is withheld); use with_gt=False")
        if filter_kernel < 1 or filter_kernel % 2 == 0:
            raise ValueError(f"filter_kernel must be a positive odd integer, got {filter_kernel}")
        self.root = Path(root)
        self.raw_root = Path(raw_root) if raw_root is not None else self.root
        self.with_gt = split in ("val", "val_selection") if with_gt is None else bool(with_gt)
        self.crop = tuple(
            int(x) for x in (crop if crop is not None else (TRAIN_CROP if split == "train" else EVAL_CROP))
        )
        if len(self.crop) != 2 or min(self.crop) <= 0:
            raise ValueError(f"crop must be (height, width) with positive sizes, got {crop}")
        self.random_crop = split == "train" if random_crop is None else bool(random_crop)
        self.random_crop_rows = random_crop_rows
        self.filter_noise = bool(filter_noise)
        self.filter_kernel = int(filter_kernel)
        self.filter_rel_threshold = float(filter_rel_threshold)
        self.filter_abs_threshold = float(filter_abs_threshold)
        self._points_removed = 0
        self._points_total = 0
        self._intrinsics_cache: dict[tuple[Path, int | None], np.ndarray] = {}
        if not self.root.is_dir():
            raise DataError(f"KITTI depth completion root {self.root} does not exist. {LAYOUT_HINT}")
        frames = self._index_selection() if split in _SELECTION_DIRS else self._index_drives()
        self.frames = self._drop_unmatched(frames)

    # ---- file index ----
    def _index_drives(self) -> list[_Frame]:
        split_dir = self.root / self.split
        velodyne = sorted(split_dir.glob("*/proj_depth/velodyne_raw/image_0[23]/*.png"))
        if not velodyne:
            raise DataError(f"no velodyne_raw PNGs for split '{self.split}' under {split_dir}. {LAYOUT_HINT}")
        frames = []
        for path in velodyne:
            cam_dir, drive = path.parent.name, path.parents[3].name
            date_dir = self.raw_root / drive[:10]
            rgb = date_dir / drive / cam_dir / "data" / path.name
            gt = split_dir / drive / "proj_depth" / "groundtruth" / cam_dir / path.name
            frames.append(
                _Frame(
                    key=rgb.relative_to(self.raw_root).with_suffix("").as_posix(),
                    rgb=rgb,
                    sparse=path,
                    gt=gt if self.with_gt else None,
                    intrinsics=date_dir / "calib_cam_to_cam.txt",
                    camera=int(cam_dir[-1]),
                )
            )
        return frames

    def _index_selection(self) -> list[_Frame]:
        base = self.root / _SELECTION_DIRS[self.split]
        velodyne = sorted((base / "velodyne_raw").glob("*.png"))
        if not velodyne:
            raise DataError(
                f"no velodyne_raw PNGs for split '{self.split}' in {base / 'velodyne_raw'}. {LAYOUT_HINT}"
            )
        frames = []
        for path in velodyne:
            # val_selection names differ only in the folder tag; the anonymous test set uses one name.
            image_name = path.name.replace("_velodyne_raw_", "_image_")
            gt_name = path.name.replace("_velodyne_raw_", "_groundtruth_depth_")
            rgb = base / "image" / image_name
            frames.append(
                _Frame(
                    key=rgb.relative_to(self.root).with_suffix("").as_posix(),
                    rgb=rgb,
                    sparse=path,
                    gt=base / "groundtruth_depth" / gt_name if self.with_gt else None,
                    intrinsics=base / "intrinsics" / Path(image_name).with_suffix(".txt"),
                    camera=None,
                )
            )
        return frames

    def _drop_unmatched(self, frames: list[_Frame]) -> list[_Frame]:
        """Every LiDAR frame needs its RGB, GT (when used) and intrinsics; each folder is listed once."""
        listings: dict[Path, set[str]] = {}

        def exists(path: Path) -> bool:
            folder = path.parent
            if folder not in listings:
                listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
            return path.name in listings[folder]

        problems: dict[str, list[str]] = {}
        kept = []
        for frame in frames:
            lacks = [
                (what, path)
                for what, path in (
                    ("RGB image", frame.rgb),
                    ("ground truth", frame.gt),
                    ("intrinsics", frame.intrinsics),
                )
                if path is not None and not exists(path)
            ]
            for what, path in lacks:
                problems.setdefault(what, []).append(f"{frame.sparse} -> missing {path}")
            if lacks:
                self.skipped += 1
                self.skipped_files.append(str(frame.sparse))
            else:
                kept.append(frame)
        if problems and not self.skip_bad:
            reports = "\n".join(
                self._missing_report(m, f"a matching {w}", len(frames)) for w, m in problems.items()
            )
            raise DataError(f"KITTI split '{self.split}': file lists do not match:\n{reports}\n{LAYOUT_HINT}")
        if not kept:
            raise DataError(
                f"KITTI split '{self.split}': no complete frames left after matching files. {LAYOUT_HINT}"
            )
        return kept

    # ---- contract ----
    def __len__(self) -> int:
        return len(self.frames)

    def key(self, i: int) -> str:
        return self.frames[self._index(i)].key

    def source(self, i: int) -> str:
        return str(self.frames[self._index(i)].sparse)

    def raw_rgb(self, i: int) -> np.ndarray:
        return read_rgb_png(self.frames[self._index(i)].rgb)

    @property
    def filter_stats(self) -> dict:
        """LiDAR points removed by the noise filter / valid points seen, so far in this process."""
        return {"removed": self._points_removed, "total": self._points_total}

    def intrinsics(self, i: int) -> np.ndarray:
        """K (3x3) of the stored, uncropped image of item i."""
        frame = self.frames[self._index(i)]
        cache_key = (frame.intrinsics, frame.camera)
        if cache_key not in self._intrinsics_cache:
            if frame.camera is None:
                K = read_intrinsics_txt(frame.intrinsics)
            else:
                K = read_kitti_calib(frame.intrinsics, frame.camera)
            self._intrinsics_cache[cache_key] = K
        return self._intrinsics_cache[cache_key]

    def read(self, i: int) -> RawFrame:
        """The stored frame, LiDAR noise filtered; `num_filtered` goes into the sample."""
        frame = self.frames[i]
        rgb = read_rgb_png(frame.rgb)
        sparse = read_depth_png(frame.sparse)
        gt = read_depth_png(frame.gt) if frame.gt is not None else None
        for name, arr, path in (("velodyne_raw", sparse, frame.sparse), ("ground truth", gt, frame.gt)):
            if arr is not None and arr.shape != rgb.shape[:2]:
                raise DataError(
                    f"{path}: {name} is {arr.shape[0]}x{arr.shape[1]} but its RGB {frame.rgb} is "
                    f"{rgb.shape[0]}x{rgb.shape[1]}"
                )
        K = self.intrinsics(i)

        num_filtered = 0
        if self.filter_noise:
            self._points_total += int(np.count_nonzero(sparse))
            sparse, num_filtered = filter_occluded_points(
                sparse, self.filter_kernel, self.filter_rel_threshold, self.filter_abs_threshold
            )
            self._points_removed += num_filtered

        return RawFrame(rgb=rgb, sparse=sparse, K=K, gt=gt, extras={"num_filtered": int(num_filtered)})

    def place(self, tf: PixelTransform, params, rng: np.random.Generator) -> None:
        try:
            self._crop(tf, rng, params.scale if params is not None else 1.0)
        except ValueError as exc:  # a frame smaller than the crop is bad data, not a bug
            raise DataError(str(exc)) from exc

    def _crop(self, tf: PixelTransform, rng: np.random.Generator, scale: float) -> None:
        height, width = self.crop
        if not self.random_crop:
            tf.bottom_crop(height, width)
            return
        frame_h, frame_w = tf.size
        if height > frame_h or width > frame_w:
            raise ValueError(f"crop {height}x{width} is larger than the frame {frame_h:g}x{frame_w:g}")
        lowest_top = frame_h - height
        highest_top = (
            0.0 if self.random_crop_rows is None else max(0.0, frame_h - self.random_crop_rows * scale)
        )
        top = int(rng.integers(int(np.ceil(min(highest_top, lowest_top))), int(np.floor(lowest_top)) + 1))
        left = int(rng.integers(0, int(np.floor(frame_w - width)) + 1))
        tf.crop(top, left, height, width)

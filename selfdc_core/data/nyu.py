"""NYU Depth v2 in the sparse-to-dense / NLSPN h5 layout.

    <root>/train/<scene>/<id>.h5       training frames
    <root>/val/official/<id>.h5        the 654 official test frames
Each h5 holds `rgb` (3x480x640 uint8) and `depth` (480x640 float32 metres).

Preprocessing follows the paper / NLSPN: half resolution (240x320), centre crop to 228x304,
optional NLSPN augmentation on training frames (see transforms.py). The sparse input is
exactly `num_samples` random valid pixels of the preprocessed depth; evaluation splits seed
that draw by the file key, so every run scores the same inputs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from selfdc_core.data.frame_dataset import DEFAULT_MAX_DEPTH, FrameDataset, RawFrame
from selfdc_core.data.io import DataError, read_nyu_h5

__all__ = ["NYU_INTRINSICS", "NYUDepthV2"]

# Published NYU Depth v2 colour-camera intrinsics at 640x480.
NYU_INTRINSICS = np.array(
    [
        [5.1885790117450188e02, 0.0, 3.2558244941119034e02],
        [0.0, 5.1946961112127485e02, 2.5373616633400465e02],
        [0.0, 0.0, 1.0],
    ]
)
NYU_SOURCE_SHAPE = (480, 640)
_HALF_SHAPE = (240, 320)

LAYOUT_HINT = (
    "Expected the sparse-to-dense / NLSPN layout <root>/train/<scene>/<id>.h5 and "
    "<root>/val/official/<id>.h5 (h5 keys 'rgb' 3x480x640 uint8, 'depth' 480x640 float32 metres). "
    "Get it from the sparse-to-dense release "
    "(http://datasets.lids.mit.edu/sparse-to-dense/data/nyudepthv2.tar.gz, also linked from the NLSPN "
    "README) and extract it so that <root> contains train/ and val/."
)

SPLITS = ("train", "val", "test")
# Above this, a "metre" depth from an indoor Kinect frame is a unit mistake (mm stored as float).
MILLIMETRE_HINT_DEPTH = 100.0
log = logging.getLogger(__name__)


class NYUDepthV2(FrameDataset):
    """NYU Depth v2 items in the common format (see selfdc_core.data.base).

    Args:
        root: dataset root (contains train/ and val/).
        split: "train", "val" or "test". Without `split_file`, "val" and "test" both mean val/official.
        num_samples: number of sparse depth samples N (the paper uses 200/500/1000/2000).
        split_file: optional NLSPN JSON split ({"train": [{"filename": "train/...h5"}, ...], ...}).
        augment: None (= on for "train"), bool, dict of AugmentConfig fields, or an AugmentConfig.
        with_gt: include `gt`; None = True for val/test, False for train (self-supervision never sees it).
        segments_root / segment_fallback: pseudo-label cache and on-the-fly generator (SegmentSource).
        height, width: output crop (at most 240x320, the half-resolution frame).
        seed: seeds the per-file sparse sampling of the evaluation splits.
        skip_bad: log, count (`skipped`) and skip unreadable files instead of raising.
        min_depth, max_depth: sparse depths outside this range are dropped and counted (`dropped_depths`).
    """

    def __init__(
        self,
        root,
        split: str = "train",
        num_samples: int = 500,
        split_file=None,
        augment=None,
        with_gt: bool | None = None,
        segments_root=None,
        segment_fallback=None,
        height: int = 228,
        width: int = 304,
        seed: int = 0,
        skip_bad: bool = False,
        min_depth: float = 0.0,
        max_depth: float = DEFAULT_MAX_DEPTH,
    ):
        super().__init__(split=split, augment=augment, seed=seed, skip_bad=skip_bad,
                         segments_root=segments_root, segment_fallback=segment_fallback,
                         min_depth=min_depth, max_depth=max_depth)
        if split not in SPLITS:
            raise ValueError(f"NYUDepthV2 split must be one of {SPLITS}, got {split!r}")
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if not (0 < height <= _HALF_SHAPE[0] and 0 < width <= _HALF_SHAPE[1]):
            raise ValueError(
                f"height x width must fit the 240x320 half-resolution frame, got {height}x{width}"
            )
        self.root = Path(root)
        self.num_samples = int(num_samples)
        self.height, self.width = int(height), int(width)
        self.millimetre_files = 0  # files whose depth looks like millimetres (warned about)
        self.with_gt = split != "train" if with_gt is None else bool(with_gt)
        self.files = self._list_files(split_file)

    # ---- file list ----
    def _list_files(self, split_file) -> list[Path]:
        if not self.root.is_dir():
            raise DataError(f"NYU Depth v2 root {self.root} does not exist. {LAYOUT_HINT}")
        if split_file is not None:
            files = self._files_from_split_file(Path(split_file))
            where = f"split '{self.split}' of {split_file}"
        elif self.split == "train":
            files = sorted((self.root / "train").rglob("*.h5"))
            where = str(self.root / "train")
        else:
            files = sorted((self.root / "val" / "official").glob("*.h5"))
            where = str(self.root / "val" / "official")
        if not files:
            raise DataError(f"no NYU h5 files for split '{self.split}' in {where}. {LAYOUT_HINT}")
        return files

    def _files_from_split_file(self, split_file: Path) -> list[Path]:
        try:
            spec = json.loads(split_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{split_file}: cannot read NLSPN JSON split file: {exc}") from exc
        entries = spec.get(self.split) if isinstance(spec, dict) else None
        if not isinstance(entries, list):
            raise DataError(
                f"{split_file}: expected a JSON object with a list under '{self.split}' "
                '(NLSPN format {"train": [{"filename": "train/<scene>/<id>.h5"}, ...], "val": [...], ...})'
            )
        bad = [e for e in entries if not (isinstance(e, dict) and isinstance(e.get("filename"), str))]
        if bad:
            raise DataError(
                f"{split_file}: entries of '{self.split}' need a 'filename' string, e.g. {bad[0]!r}"
            )
        files = [self.root / e["filename"] for e in entries]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            report = self._missing_report(missing, f"their h5 file under {self.root}", len(files))
            if not self.skip_bad:
                raise DataError(f"{split_file}: {report}. {LAYOUT_HINT}")
            self.skipped += len(missing)
            self.skipped_files.extend(missing)
            files = [p for p in files if p.is_file()]
        return files

    # ---- contract ----
    def __len__(self) -> int:
        return len(self.files)

    def key(self, i: int) -> str:
        return self.files[self._index(i)].relative_to(self.root).with_suffix("").as_posix()

    def source(self, i: int) -> str:
        return str(self.files[self._index(i)])

    def read(self, i: int) -> RawFrame:
        """The stored frame; its sparse input is drawn from the depth after placement."""
        rgb, depth = read_nyu_h5(self.files[i])
        if rgb.shape[:2] != NYU_SOURCE_SHAPE:
            raise DataError(
                f"{self.files[i]}: NYU frames must be 480x640 (the published intrinsics are for that size), "
                f"got {rgb.shape[0]}x{rgb.shape[1]}"
            )
        self._check_units(i, depth)
        return RawFrame(rgb=rgb, sparse=None, K=NYU_INTRINSICS, gt=depth)

    def _check_units(self, i: int, depth: np.ndarray) -> None:
        """Warn when depth looks like millimetres stored as float (NYU depths are metres, < 10 m)."""
        deepest = float(np.max(depth, initial=0.0, where=np.isfinite(depth)))
        if deepest > MILLIMETRE_HINT_DEPTH:
            self.millimetre_files += 1
            log.warning("%s: depth reaches %.0f, but NYU depths are metres (Kinect range under 10 m); the "
                        "file seems to store millimetres: divide its depth by 1000 (%d such files so far)",
                        self.files[i], deepest, self.millimetre_files)

    def place(self, tf, params, rng) -> None:
        tf.resize(_HALF_SHAPE[1] / NYU_SOURCE_SHAPE[1], _HALF_SHAPE[0] / NYU_SOURCE_SHAPE[0])
        tf.center_crop(self.height, self.width)

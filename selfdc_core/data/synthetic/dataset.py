"""SyntheticScenes: procedurally rendered frames in the common dataset format (see data/base.py)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from selfdc_core.geometry import filter_occluded_points, project_points

from ..frame_dataset import DEFAULT_MAX_DEPTH, FrameDataset, RawFrame
from .environments import get_environment
from .frame import SyntheticFrame, check_index, frame_rngs, render_frame
from .lidar import LidarConfig
from .render import check_image_size
from .sparse import random_sparse_depth, tof_sparse_depth

SPARSE_KINDS = ("lidar", "tof", "random")
SEGMENT_KINDS = (None, "oracle")


class SyntheticScenes(FrameDataset):
    """`num_frames` frames, frame i rendered on the fly from (environment, seed, i); no files needed.

    sparse        "lidar": the simulated LiDAR projected into the camera (z-buffer, then the
                  occlusion filter of the KITTI pipeline when `filter_lidar`);
                  "tof": a zone grid of about `num_samples` readings up to `tof_max_range`;
                  "random": exactly `num_samples` random pixels of the ground truth.
    sparse_noise  LiDAR range noise std in metres, or relative ToF noise; "random" is exact.
    lidar_config  extra LidarConfig fields (fov_up_deg, fov_down_deg, horizontal_resolution_deg, ...).
    with_gt       add the dense ground truth (evaluation only; the training path never reads it).
    segments      "oracle": the renderer's object ids, renumbered by area like the real generators
                  (1 = largest); it takes precedence over a configured cache. None: pseudo-labels
                  from `segments_root` (LabelCache of training/make_masks.py) and/or the
                  `segment_fallback` generator, or no segments when neither is set.
    cache         keep rendered frames in memory (per worker process).
    skip_bad, min_depth, max_depth   as for every dataset (see frame_dataset.py).
    """

    def __init__(
        self,
        num_frames: int,
        seed: int = 0,
        height: int = 228,
        width: int = 304,
        sparse: str = "lidar",
        num_samples: int = 500,
        lidar_beams: int = 32,
        with_gt: bool = False,
        segments: str | None = None,
        segments_root=None,
        segment_fallback=None,
        environment: str = "room",
        sparse_noise: float = 0.0,
        filter_lidar: bool = True,
        tof_max_range: float = 8.0,
        lidar_config: dict | None = None,
        shadows: bool = False,
        cache: bool = False,
        skip_bad: bool = False,
        min_depth: float = 0.0,
        max_depth: float = DEFAULT_MAX_DEPTH,
    ):
        super().__init__(augment=False, seed=0, skip_bad=skip_bad, segments_root=segments_root,
                         segment_fallback=segment_fallback, min_depth=min_depth, max_depth=max_depth)
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        self.seed = check_index("seed", seed)
        check_image_size(height, width)
        get_environment(environment)
        if sparse not in SPARSE_KINDS:
            raise ValueError(f"sparse must be one of {SPARSE_KINDS}, got {sparse!r}")
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        if segments not in SEGMENT_KINDS:
            raise ValueError(f"segments must be one of {SEGMENT_KINDS}, got {segments!r}")
        if not sparse_noise >= 0:
            raise ValueError(f"sparse_noise must be >= 0, got {sparse_noise}")
        if not tof_max_range > 0:
            raise ValueError(f"tof_max_range must be > 0, got {tof_max_range}")
        self.lidar = self._lidar_config(lidar_beams, lidar_config, sparse_noise if sparse == "lidar" else 0.0)
        self.num_frames = int(num_frames)
        self.height, self.width = int(height), int(width)
        self.sparse, self.num_samples = sparse, int(num_samples)
        self.environment, self.with_gt, self.segments = environment, bool(with_gt), segments
        self.sparse_noise, self.filter_lidar, self.tof_max_range = (
            float(sparse_noise),
            filter_lidar,
            tof_max_range,
        )
        self.shadows, self.cache = shadows, cache
        self._frames: dict[int, SyntheticFrame] = {}

    @staticmethod
    def _lidar_config(beams, overrides, noise) -> LidarConfig:
        overrides = dict(overrides or {})
        known = {f.name for f in fields(LidarConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"lidar_config has unknown key(s) {unknown}; valid keys: {sorted(known)}")
        if "beams" in overrides:
            raise ValueError("set the beam count with lidar_beams, not lidar_config.beams")
        overrides["beams"] = beams
        overrides.setdefault("range_noise_std", noise)
        try:
            return LidarConfig(**overrides)
        except ValueError as err:
            raise ValueError(f"lidar_beams/lidar_config: {err}") from None

    def __len__(self) -> int:
        return self.num_frames

    def key(self, i: int) -> str:
        return f"synthetic/{self.environment}/seed{self.seed}/{self._index(i):06d}"

    def frame(self, i: int) -> SyntheticFrame:
        """The full rendered frame (rgb, depth, object ids, K; LiDAR points and extrinsic only when
        sparse="lidar", None otherwise)."""
        i = self._index(i)
        if i in self._frames:
            return self._frames[i]
        frame = render_frame(
            self.seed,
            i,
            self.height,
            self.width,
            self.environment,
            lidar=self.lidar,
            with_lidar=self.sparse == "lidar",
            shadows=self.shadows,
        )
        if self.cache:
            self._frames[i] = frame
        return frame

    def raw_rgb(self, i: int) -> np.ndarray:
        return self.frame(i).rgb

    def sparse_depth(self, i: int, frame: SyntheticFrame | None = None) -> np.ndarray:
        """(H,W) float32 sparse depth of item i, 0 = no measurement."""
        frame = frame if frame is not None else self.frame(i)
        rng = frame_rngs(self.seed, self._index(i), self.environment)["sparse"]
        if self.sparse == "lidar":
            sparse = project_points(
                frame.lidar_points, frame.K, self.height, self.width, transform=frame.T_cam_lidar
            )
            if self.filter_lidar:
                sparse, _ = filter_occluded_points(sparse)
            return sparse
        if self.sparse == "tof":
            return tof_sparse_depth(
                frame.depth,
                self.num_samples,
                max_range=self.tof_max_range,
                noise_std=self.sparse_noise,
                rng=rng,
            )
        return random_sparse_depth(frame.depth, self.num_samples, rng)

    def read(self, i: int) -> RawFrame:
        """Rendered at the output size, so the dataset neither augments nor places it."""
        frame = self.frame(i)
        oracle = None
        if self.segments == "oracle":
            from selfdc_core.segmentation.relabel import rank_regions_by_area

            oracle = rank_regions_by_area(frame.object_ids)
        return RawFrame(rgb=frame.rgb, sparse=self.sparse_depth(i, frame), K=frame.K,
                        gt=frame.depth if self.with_gt else None, segments=oracle)

    def __repr__(self) -> str:
        return (
            f"SyntheticScenes(num_frames={self.num_frames}, seed={self.seed}, "
            f"environment={self.environment!r}, size={self.height}x{self.width}, "
            f"sparse={self.sparse!r}, with_gt={self.with_gt})"
        )

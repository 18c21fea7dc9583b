"""What extraction needs to know about a recording: topics, synchronisation, extrinsic, filtering.

Names and defaults follow the node's parameters (config/completion.yaml), so a bag recorded
from a running node extracts with the defaults. Topic names may be relative, as the node's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from selfdc_core.geometry import check_rigid_transform, make_transform

from .reader import TYPESTORES, normalize_topic

__all__ = ["ExtractionSettings", "extrinsic_matrix"]

FILTER_DEFAULTS = {"kernel_size": 5, "rel_threshold": 0.15, "abs_threshold": 0.5}


def extrinsic_matrix(extrinsic) -> np.ndarray | None:
    """T_cam_sensor from config: None, a 4x4 (nested or 16 row-major numbers), or
    {translation: [x,y,z], rotation: [x,y,z,w]} / {matrix: ...}."""
    if extrinsic is None:
        return None
    if isinstance(extrinsic, dict):
        unknown = sorted(set(extrinsic) - {"translation", "rotation", "matrix"})
        if unknown:
            raise ValueError(f"extrinsic has unknown key(s) {unknown}; use translation + rotation, or matrix")
        if "matrix" in extrinsic:
            if {"translation", "rotation"} & set(extrinsic):
                raise ValueError("extrinsic: give either matrix or translation + rotation, not both")
            return extrinsic_matrix(extrinsic["matrix"])
        if set(extrinsic) != {"translation", "rotation"}:
            raise ValueError(f"extrinsic needs translation [x,y,z] and rotation [x,y,z,w], got {extrinsic}")
        if np.asarray(extrinsic["rotation"]).shape != (4,):
            raise ValueError(f"extrinsic.rotation must be a quaternion [x,y,z,w], "
                             f"got {extrinsic['rotation']!r}")
        return make_transform(extrinsic["translation"], extrinsic["rotation"])
    T = np.asarray(extrinsic, dtype=np.float64)
    if T.size != 16:
        raise ValueError(f"extrinsic matrix must be 4x4 (16 numbers, row-major), got shape {T.shape}")
    return check_rigid_transform(T.reshape(4, 4), "extrinsic matrix")


@dataclass(frozen=True)
class ExtractionSettings:
    """image_topic: sensor_msgs/Image or CompressedImage (the recorded type decides the decoder).
    sparse_topic: PointCloud2 (LiDAR, projected) or Image (ToF depth registered to the camera).
    gt_topic: optional dense depth (32FC1 m / 16UC1 mm) at the image stamp, kept for evaluation.
    extrinsic: T_cam_sensor from config (wins), else /tf_static of the bag; see `extrinsic_matrix`.
    occlusion_filter: None (off, the node's default), or kwargs of geometry.filter_occluded_points."""

    image_topic: str = "/camera/image"
    camera_info_topic: str = "/camera/camera_info"
    sparse_topic: str = "/lidar/points"
    gt_topic: str | None = "/camera/depth_gt"
    typestore: str = "humble"
    sync_queue_size: int = 10
    sync_slop: float = 0.05
    use_projection_matrix: bool = False
    extrinsic: object = None
    occlusion_filter: dict | None = None
    _filter: dict | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("image_topic", "camera_info_topic", "sparse_topic"):
            object.__setattr__(self, name, normalize_topic(getattr(self, name)))
        if self.gt_topic is not None:
            object.__setattr__(self, "gt_topic", normalize_topic(self.gt_topic))
        if self.typestore not in TYPESTORES:
            raise ValueError(f"typestore must be one of {sorted(TYPESTORES)}, got {self.typestore!r}")
        if isinstance(self.sync_queue_size, bool) or int(self.sync_queue_size) < 1:
            raise ValueError(f"sync_queue_size must be an integer >= 1, got {self.sync_queue_size!r}")
        if not float(self.sync_slop) >= 0:
            raise ValueError(f"sync_slop must be >= 0 seconds, got {self.sync_slop!r}")
        extrinsic_matrix(self.extrinsic)  # validate early
        if self.occlusion_filter is not None:
            opts = {} if self.occlusion_filter is True else self.occlusion_filter
            if not isinstance(opts, dict) or set(opts) - set(FILTER_DEFAULTS):
                raise ValueError(
                    f"occlusion_filter must be null, true or a mapping with keys {sorted(FILTER_DEFAULTS)}, "
                    f"got {self.occlusion_filter!r}"
                )
            object.__setattr__(self, "_filter", {**FILTER_DEFAULTS, **opts})

    @property
    def T_cam_sensor(self) -> np.ndarray | None:
        return extrinsic_matrix(self.extrinsic)

    @property
    def filter_kwargs(self) -> dict | None:
        return self._filter

    def fingerprint(self) -> dict:
        """JSON-able record of everything that changes the extracted samples."""
        out = asdict(self)
        out.pop("_filter")
        T = self.T_cam_sensor
        out["extrinsic"] = None if T is None else np.round(T, 9).tolist()
        out["occlusion_filter"] = self._filter
        out["sync_slop"] = float(self.sync_slop)
        out["sync_queue_size"] = int(self.sync_queue_size)
        return out

"""One synchronised message set (image, camera_info, LiDAR cloud or ToF depth) -> model input arrays.

The single path from messages to (rgb, sparse depth, camera) shared by the ROS node and the
rosbag reader, so live and recorded data become the same arrays. It reads message fields only
(no ROS import), and every unusable set raises `BadMessage` with a `kind` for counting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from selfdc_core.msg_decode import (
    BadMessage,
    DecodeLimits,
    decode_camera,
    depth_image_to_metres,
    pointcloud2_to_xyz,
)
from selfdc_core.sensor_geometry import (
    CameraModel,
    drop_out_of_range,
    resize_depth_to_camera,
    sparse_depth_from_points,
)

__all__ = ["SetArrays", "SetOptions", "set_to_arrays"]

DEFAULT_MAX_DEPTH = 300.0  # m: beyond any LiDAR or ToF range; a larger value is a unit or driver error


@dataclass(frozen=True)
class SetOptions:
    """How the messages of a set are read; fixed per node or per bag."""

    compressed_image: bool = False  # sensor_msgs/CompressedImage instead of Image
    sparse_is_cloud: bool = True  # PointCloud2, else a ToF depth Image aligned with the camera
    use_projection_matrix: bool = False  # project with P (a rectified image) instead of K
    distortion: str = "auto"  # 'auto': apply camera_info's D to a raw image; 'ignore': pinhole
    filter_kwargs: dict | None = None  # geometry.filter_occluded_points settings, None = off
    min_depth: float = 0.0  # sparse depths outside [min_depth, max_depth] m are dropped
    max_depth: float = DEFAULT_MAX_DEPTH
    limits: DecodeLimits = field(default_factory=DecodeLimits)

    def __post_init__(self):
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"sparse depth range must satisfy 0 <= min_depth < max_depth, got "
                             f"[{self.min_depth}, {self.max_depth}]")


@dataclass
class SetArrays:
    rgb: np.ndarray  # (H,W,3) uint8
    sparse: np.ndarray  # (H,W) float32 m, 0 = none
    camera: CameraModel  # K or P, size and distortion as projected
    out_of_range: int = 0  # sparse depths dropped outside [min_depth, max_depth]
    unit_hint: str | None = None  # set when the dropped depths look like millimetres

    @property
    def K(self) -> np.ndarray:
        return self.camera.matrix


def _no_stage(_name: str):
    return contextlib.nullcontext()


def set_to_arrays(
    image_msg,
    info_msg,
    sparse_msg,
    options: SetOptions,
    extrinsic: Callable | None = None,
    stage: Callable = _no_stage,
) -> SetArrays:
    """Decode and project one set.

    extrinsic  (image_msg, sparse_msg) -> 4x4 T_cam_sensor for a cloud (None: identity); it may
               raise BadMessage (e.g. `no_transform`).
    stage      name -> context manager timing the 'decode' and 'projection' stages.
    """
    with stage("decode"):
        rgb, camera = decode_camera(image_msg, info_msg, options.compressed_image, options.limits,
                                    options.use_projection_matrix, options.distortion)
        if options.sparse_is_cloud:
            points = pointcloud2_to_xyz(sparse_msg)
        else:
            depth = depth_image_to_metres(sparse_msg, options.limits.max_pixels)
    h, w = rgb.shape[:2]
    depth_range = (options.min_depth, options.max_depth)
    with stage("projection"):
        if options.sparse_is_cloud:
            T = extrinsic(image_msg, sparse_msg) if extrinsic is not None else None
            sparse, dropped, hint = sparse_depth_from_points(
                points, camera, T, options.filter_kwargs, depth_range
            )
        else:
            resized = resize_depth_to_camera(depth, h, w)
            if resized is None:
                raise BadMessage("size_mismatch", f"depth image is {depth.shape[1]}x{depth.shape[0]}, "
                                 f"camera {w}x{h}: another aspect ratio, so not aligned with the camera")
            sparse, dropped, hint = drop_out_of_range(resized, *depth_range)
    if not (sparse > 0).any():
        if dropped:
            detail = f"all {dropped} sparse depths in view are outside [{options.min_depth:g}, "
            detail += f"{options.max_depth:g}] m" + (f"; {hint}" if hint else "")
            raise BadMessage("depth_out_of_range", detail)
        raise BadMessage("no_points_in_view", "no sparse measurement falls inside the camera image")
    return SetArrays(rgb, sparse.astype(np.float32, copy=False), camera, dropped, hint)

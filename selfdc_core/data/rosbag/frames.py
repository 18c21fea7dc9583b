"""One synchronised set of recorded messages -> (rgb, sparse depth, K[, gt]), as the node builds its input.

The decoders are the node's (message fields only, so they take `rosbags` messages too), the
projection and the occlusion filter are `selfdc_core.geometry`'s: recorded and live frames
become the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfdc_core.msg_decode import (
    BadMessage,
    compressed_to_rgb,
    decode_camera,
    depth_image_to_metres,
    image_to_rgb,
    pointcloud2_to_xyz,
    register_depth_image,
    sparse_from_cloud,
    stamp_to_ns,
)

__all__ = [
    "BadMessage",
    "COMPRESSED_IMAGE",
    "IMAGE",
    "POINTCLOUD2",
    "RecordedFrame",
    "assemble_frame",
    "register_depth_image",
    "stamp_to_ns",
]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"


@dataclass
class RecordedFrame:
    rgb: np.ndarray  # (H,W,3) uint8
    sparse: np.ndarray  # (H,W) float32 m, 0 = none
    K: np.ndarray  # (3,3) float64 (the left 3x3 of P when projecting with P)
    gt: np.ndarray | None  # (H,W) float32 m, 0 = invalid


def assemble_frame(
    image_msg,
    image_type: str,
    info_msg,
    sparse_msg,
    sparse_type: str,
    T_cam_sensor: np.ndarray | None,
    use_projection_matrix: bool = False,
    filter_kwargs: dict | None = None,
    gt_msg=None,
) -> RecordedFrame:
    """Decode and project one set; raises BadMessage (with a `kind`) for anything unusable."""
    decode_image = compressed_to_rgb if image_type == COMPRESSED_IMAGE else image_to_rgb
    rgb, K = decode_camera(image_msg, info_msg, decode_image, use_projection_matrix)
    h, w = rgb.shape[:2]
    if sparse_type == POINTCLOUD2:
        sparse = sparse_from_cloud(pointcloud2_to_xyz(sparse_msg), K, h, w, T_cam_sensor, filter_kwargs)
    else:
        sparse = register_depth_image(depth_image_to_metres(sparse_msg), h, w)
    gt = None
    if gt_msg is not None:
        gt = depth_image_to_metres(gt_msg)
        if gt.shape != (h, w):
            raise BadMessage("size_mismatch", f"GT depth is {gt.shape[1]}x{gt.shape[0]}, camera {w}x{h}")
    return RecordedFrame(rgb=rgb, sparse=sparse.astype(np.float32, copy=False), K=np.asarray(K)[:, :3], gt=gt)

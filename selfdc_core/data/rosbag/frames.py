"""One synchronised set of recorded messages -> (rgb, sparse depth, K[, gt]), as the node builds it.

Both go through `selfdc_core.message_set.set_to_arrays` (message fields only, so it takes
`rosbags` messages too): recorded and live frames become the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfdc_core.message_set import SetOptions, set_to_arrays
from selfdc_core.msg_decode import BadMessage, depth_image_to_metres, stamp_to_ns

__all__ = [
    "BadMessage",
    "COMPRESSED_IMAGE",
    "IMAGE",
    "POINTCLOUD2",
    "RecordedFrame",
    "assemble_frame",
    "set_options",
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
    out_of_range: int = 0  # sparse depths dropped outside the valid range
    ignored_distortion: str | None = None  # why camera_info's D was not applied, if it was not


def set_options(image_type: str, sparse_type: str, use_projection_matrix=False, filter_kwargs=None):
    """The SetOptions of a bag whose topics have these message types."""
    return SetOptions(
        compressed_image=image_type == COMPRESSED_IMAGE,
        sparse_is_cloud=sparse_type == POINTCLOUD2,
        use_projection_matrix=use_projection_matrix,
        filter_kwargs=filter_kwargs,
    )


def assemble_frame(image_msg, info_msg, sparse_msg, options: SetOptions, T_cam_sensor=None,
                   gt_msg=None) -> RecordedFrame:
    """Decode and project one set; raises BadMessage (with a `kind`) for anything unusable."""
    arrays = set_to_arrays(image_msg, info_msg, sparse_msg, options, lambda *_: T_cam_sensor)
    h, w = arrays.rgb.shape[:2]
    gt = None
    if gt_msg is not None:
        gt = depth_image_to_metres(gt_msg, options.limits.max_pixels)
        if gt.shape != (h, w):
            raise BadMessage("size_mismatch", f"GT depth is {gt.shape[1]}x{gt.shape[0]}, camera {w}x{h}")
    return RecordedFrame(arrays.rgb, arrays.sparse, arrays.camera.K, gt, arrays.out_of_range,
                         arrays.camera.ignored_distortion)

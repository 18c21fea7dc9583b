"""numpy -> sensor_msgs, written by hand: cv_bridge and sensor_msgs_py come only with a ROS distribution."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

__all__ = ["copy_camera_info", "depth_to_image", "rgb_to_image", "xyzrgb_cloud"]


def _byte_array(arr: np.ndarray) -> array.array:
    # The generated setter accepts array('B') without a per-element type check.
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).tobytes())
    return out


def _image(header, arr: np.ndarray, encoding: str) -> Image:
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))  # published little-endian
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = False
    msg.step = int(arr.shape[1] * arr.dtype.itemsize * (arr.shape[2] if arr.ndim == 3 else 1))
    msg.data = _byte_array(arr)
    return msg


def depth_to_image(header, depth: np.ndarray, encoding: str = "32FC1") -> Image:
    """(H,W) depth as an Image: 32FC1 metres (NaN = invalid, REP 118) or 16UC1 millimetres."""
    if encoding == "32FC1":
        return _image(header, np.asarray(depth, dtype=np.float32), "32FC1")
    if encoding == "16UC1":
        mm = np.nan_to_num(np.asarray(depth, dtype=np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
        return _image(header, np.clip(np.round(mm), 0, 65535).astype(np.uint16), "16UC1")
    raise ValueError(f"depth encoding must be '32FC1' or '16UC1', got {encoding!r}")


def rgb_to_image(header, rgb: np.ndarray) -> Image:
    """uint8 (H,W,3) RGB as an rgb8 Image."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    return _image(header, rgb, "rgb8")


def copy_camera_info(info: CameraInfo, header) -> CameraInfo:
    """The camera info with another header (the output's)."""
    out = CameraInfo()
    for name in info.get_fields_and_field_types():
        setattr(out, name, getattr(info, name))
    out.header = header
    return out


_XYZRGB_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    # PCL's packed colour: 0x00RRGGBB stored in a float32 field named rgb.
    PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1),
]


def xyzrgb_cloud(header, depth: np.ndarray, rgb: np.ndarray, K: np.ndarray, stride: int = 1) -> PointCloud2:
    """Organised XYZRGB cloud of every `stride`-th pixel of a depth map (NaN xyz where invalid).

    Points are back-projected with the 3x3 (or 3x4) intrinsics into the camera optical frame.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    K = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    d = np.asarray(depth, dtype=np.float32)[::stride, ::stride]
    colour = np.asarray(rgb, dtype=np.uint8)[::stride, ::stride]
    v, u = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride].astype(np.float32)
    points = np.empty(d.shape, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    points["x"] = (u - np.float32(cx)) / np.float32(fx) * d
    points["y"] = (v - np.float32(cy)) / np.float32(fy) * d
    points["z"] = d
    c = colour.astype(np.uint32)
    points["rgb"] = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = int(d.shape[0]), int(d.shape[1])
    msg.fields = list(_XYZRGB_FIELDS)
    msg.is_bigendian = False
    msg.point_step = 16
    msg.row_step = 16 * msg.width
    msg.is_dense = bool(np.isfinite(d).all())
    msg.data = _byte_array(points)
    return msg

"""sensor_msgs -> numpy, written by hand.

cv_bridge and sensor_msgs_py come only with a full ROS distribution, while the node also runs
on the pip-installed rclpy wheels and bags are read without ROS. These decoders read only message fields
(duck typing) and import no ROS package, so they work the same on rclpy messages and on
the message objects of the `rosbags` package (the rosbag dataset uses them too).

Every malformed message raises `BadMessage(kind, detail)`, a ValueError whose `kind` is a
short stable name used for per-kind counting and throttled warnings in the node.
"""

from __future__ import annotations

import cv2
import numpy as np

from selfdc_core.geometry import filter_occluded_points, project_points, resize_sparse_depth

__all__ = [
    "BadMessage",
    "camera_info_to_intrinsics",
    "compressed_to_rgb",
    "decode_camera",
    "depth_image_to_metres",
    "image_to_array",
    "image_to_rgb",
    "pointcloud2_layout",
    "pointcloud2_to_xyz",
    "register_depth_image",
    "sparse_from_cloud",
    "stamp_to_ns",
]

# Image encodings: (numpy dtype, channels). Names as in sensor_msgs/image_encodings.hpp.
IMAGE_ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "mono16": (np.uint16, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}
# PointField datatypes usable for coordinates (sensor_msgs/PointField constants).
POINTFIELD_FLOAT = {7: np.dtype(np.float32), 8: np.dtype(np.float64)}
POINTFIELD_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 8: 8}


class BadMessage(ValueError):
    """A message that cannot be used; `kind` names the problem for counting."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def stamp_to_ns(header) -> int:
    """Header stamp in integer nanoseconds; a zero or negative stamp is a bad message."""
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        raise BadMessage("missing_stamp", "message has no header.stamp")
    ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    if ns <= 0:
        raise BadMessage(
            "zero_stamp", f"header.stamp is {stamp.sec}.{stamp.nanosec:09d}; the sensor driver must stamp it"
        )
    return ns


def _buffer(data) -> np.ndarray:
    # rclpy gives array.array('B'), rosbags a numpy array, tests may give bytes: all are buffers.
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def image_to_array(msg) -> np.ndarray:
    """An Image as an (H,W) or (H,W,C) array of its encoding's dtype (a view when possible)."""
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise BadMessage(
            "unknown_encoding", f"image encoding {encoding!r} is not one of {sorted(IMAGE_ENCODINGS)}"
        )
    dtype, channels = IMAGE_ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise BadMessage("empty_image", f"image is {h}x{w}")
    pixel_bytes = np.dtype(dtype).itemsize * channels
    if step < w * pixel_bytes:
        raise BadMessage("bad_step", f"step {step} < width {w} x {pixel_bytes} bytes per {encoding} pixel")
    data = _buffer(msg.data)
    if data.size != step * h:
        raise BadMessage(
            "data_size_mismatch", f"data has {data.size} bytes, expected step {step} x height {h}"
        )
    rows = data.reshape(h, step)[:, : w * pixel_bytes]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = (
        np.ascontiguousarray(rows).view(dt).reshape(h, w, channels)
        if channels > 1
        else (np.ascontiguousarray(rows).view(dt).reshape(h, w))
    )
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def image_to_rgb(msg) -> np.ndarray:
    """A colour or mono Image as uint8 RGB (H,W,3)."""
    arr = image_to_array(msg)
    encoding = str(msg.encoding)
    if encoding == "rgb8":
        return arr
    if encoding == "bgr8":
        return arr[..., ::-1].copy()
    if encoding == "rgba8":
        return arr[..., :3].copy()
    if encoding == "bgra8":
        return arr[..., 2::-1].copy()
    if encoding in ("mono8", "8UC1"):
        return np.repeat(arr[..., None], 3, axis=2)
    if encoding == "mono16":
        return np.repeat((arr >> 8).astype(np.uint8)[..., None], 3, axis=2)
    raise BadMessage(
        "unknown_encoding", f"image encoding {encoding!r} is not a colour or mono image encoding"
    )


def compressed_to_rgb(msg) -> np.ndarray:
    """A CompressedImage (JPEG/PNG) as uint8 RGB (H,W,3)."""
    data = _buffer(msg.data)
    if data.size == 0:
        raise BadMessage("empty_compressed", f"compressed image (format {msg.format!r}) has no data")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # always 8-bit BGR
    if img is None:
        raise BadMessage(
            "undecodable_compressed", f"cannot decode {data.size} bytes as format {msg.format!r}"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def depth_image_to_metres(msg) -> np.ndarray:
    """A depth Image (16UC1/mono16 millimetres, 32FC1 metres) as float32 metres, 0 = invalid."""
    encoding = str(msg.encoding)
    if encoding not in ("16UC1", "mono16", "32FC1"):
        raise BadMessage("unknown_encoding", f"depth encoding {encoding!r}; expected 16UC1 (mm) or 32FC1 (m)")
    arr = image_to_array(msg)
    if encoding == "32FC1":
        depth = arr.astype(np.float32, copy=True)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0  # REP 118: NaN/Inf = no return
        return depth
    return arr.astype(np.float32) / np.float32(1000.0)


def camera_info_to_intrinsics(msg, use_projection: bool = False) -> tuple[np.ndarray, int, int]:
    """(K 3x3, or P 3x4 when `use_projection`), width, height from a CameraInfo."""
    w, h = int(msg.width), int(msg.height)
    if w <= 0 or h <= 0:
        raise BadMessage("camera_info_no_size", f"camera_info size is {w}x{h}")
    matrix = np.asarray(msg.p if use_projection else msg.k, dtype=np.float64)
    name = "P" if use_projection else "K"
    expected = 12 if use_projection else 9
    if matrix.size != expected:
        raise BadMessage(
            "camera_info_bad_matrix",
            f"camera_info.{name.lower()} has {matrix.size} values, expected {expected}",
        )
    matrix = matrix.reshape(3, -1)
    if not np.all(np.isfinite(matrix)):
        raise BadMessage("camera_info_not_finite", f"camera_info.{name.lower()} contains NaN or Inf")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise BadMessage(
            "zero_focal_length",
            f"camera_info.{name.lower()} focal lengths are fx={matrix[0, 0]}, fy={matrix[1, 1]}",
        )
    return matrix, w, h


def pointcloud2_layout(msg) -> np.dtype:
    """Validate a PointCloud2's layout; return the structured dtype reading its x, y, z."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in ("x", "y", "z") if n not in fields]
    if missing:
        raise BadMessage("cloud_missing_xyz", f"cloud has fields {sorted(fields)}; missing {missing}")
    h, w = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    if h * w == 0:
        raise BadMessage("empty_cloud", f"cloud is {h}x{w} points")
    for name in ("x", "y", "z"):
        f = fields[name]
        if int(f.datatype) not in POINTFIELD_FLOAT:
            raise BadMessage(
                "cloud_bad_field_type",
                f"field {name!r} has datatype {f.datatype}; expected FLOAT32 (7) or FLOAT64 (8)",
            )
        if int(f.offset) + POINTFIELD_FLOAT[int(f.datatype)].itemsize > point_step:
            raise BadMessage(
                "cloud_bad_layout",
                f"field {name!r} at offset {f.offset} does not fit point_step {point_step}",
            )
    if row_step < w * point_step:
        raise BadMessage("cloud_bad_layout", f"row_step {row_step} < width {w} x point_step {point_step}")
    size = _buffer(msg.data).size
    if size != row_step * h:
        raise BadMessage(
            "data_size_mismatch", f"cloud data has {size} bytes, expected row_step {row_step} x height {h}"
        )
    order = ">" if msg.is_bigendian else "<"
    return np.dtype(
        {
            "names": ["x", "y", "z"],
            "formats": [
                POINTFIELD_FLOAT[int(fields[n].datatype)].newbyteorder(order) for n in ("x", "y", "z")
            ],
            "offsets": [int(fields[n].offset) for n in ("x", "y", "z")],
            "itemsize": point_step,
        }
    )


def pointcloud2_to_xyz(msg) -> np.ndarray:
    """The finite x, y, z of a PointCloud2 (any field layout, float32 or float64) as float32 (N,3).

    Non-finite points (no return, in organised clouds) are dropped; a cloud with none left is bad.
    """
    layout = pointcloud2_layout(msg)
    h, w = int(msg.height), int(msg.width)
    rows = _buffer(msg.data).reshape(h, int(msg.row_step))[:, : w * int(msg.point_step)]
    points = np.ascontiguousarray(rows).view(layout).reshape(-1)
    xyz = np.empty((points.size, 3), dtype=np.float32)
    xyz[:, 0], xyz[:, 1], xyz[:, 2] = points["x"], points["y"], points["z"]
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.any():
        raise BadMessage("cloud_no_finite_points", f"all {points.size} points are NaN or Inf")
    return xyz if finite.all() else xyz[finite]


def decode_camera(image_msg, info_msg, decode_image, use_projection: bool = False):
    """(rgb, K or P) of one image + camera_info pair, whose sizes must agree.

    `decode_image` is image_to_rgb or compressed_to_rgb, chosen once by the caller.
    """
    rgb = decode_image(image_msg)
    K, info_w, info_h = camera_info_to_intrinsics(info_msg, use_projection)
    h, w = rgb.shape[:2]
    if (info_w, info_h) != (w, h):
        raise BadMessage("size_mismatch", f"image is {w}x{h} but camera_info says {info_w}x{info_h}")
    return rgb, K


def _require_points_in_view(sparse: np.ndarray) -> np.ndarray:
    if not (sparse > 0).any():
        raise BadMessage("no_points_in_view", "no sparse measurement falls inside the camera image")
    return sparse


def sparse_from_cloud(
    points, K, height: int, width: int, T_cam_sensor=None, filter_kwargs=None
) -> np.ndarray:
    """Sparse depth (H,W) of a decoded cloud: projected with the z-buffer, optionally occlusion-filtered
    (`filter_kwargs` of geometry.filter_occluded_points, None = off)."""
    sparse = project_points(points, K, height, width, transform=T_cam_sensor)
    if filter_kwargs is not None:
        sparse, _ = filter_occluded_points(sparse, **filter_kwargs)
    return _require_points_in_view(sparse)


def register_depth_image(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ToF depth image registered to the camera: same size, or the same field of view at another size."""
    if depth.shape == (height, width):
        return _require_points_in_view(depth)
    if abs(depth.shape[1] / depth.shape[0] - width / height) > 0.01 * (width / height):
        raise BadMessage(
            "size_mismatch", f"depth image is {depth.shape[1]}x{depth.shape[0]}, camera {width}x{height}"
        )
    return _require_points_in_view(resize_sparse_depth(depth, height, width))

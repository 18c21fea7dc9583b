"""sensor_msgs -> numpy, written by hand.

cv_bridge and sensor_msgs_py come only with a full ROS distribution, while the node also runs
on the pip-installed rclpy wheels and bags are read without ROS. These decoders read only message fields
(duck typing) and import no ROS package, so they work the same on rclpy messages and on
the message objects of the `rosbags` package (the rosbag dataset uses them too).

Every malformed message raises `BadMessage(kind, detail)`, a ValueError whose `kind` is a
short stable name used for per-kind counting and throttled warnings in the node.
Sizes are checked from the message fields (or a compressed image's header) before anything
is decoded, so a hostile size costs no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from selfdc_core.sensor_geometry import DISTORTION_MODELS, CameraModel

__all__ = [
    "BadMessage",
    "DecodeLimits",
    "camera_info_to_intrinsics",
    "camera_model_from_info",
    "check_compressed",
    "check_image_size",
    "compressed_image_size",
    "compressed_to_rgb",
    "decode_camera",
    "depth_image_to_metres",
    "image_to_array",
    "image_to_rgb",
    "pointcloud2_layout",
    "pointcloud2_to_xyz",
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


@dataclass(frozen=True)
class DecodeLimits:
    """What a camera image may cost before it is decoded.

    max_pixels             width x height above which an image is rejected (0 = no limit).
    max_compression_ratio  decoded RGB bytes (what decoding allocates) per compressed byte, above
                           which a compressed image is rejected (0 = no limit). Colour PNG and
                           JPEG frames stay below about 1100 even when blank; only a near-uniform
                           8-bit mono PNG (up to about 3100) or a decompression bomb goes above.
    """

    max_pixels: int = 7680 * 4320  # 8K UHD
    max_compression_ratio: float = 2000.0

    def __post_init__(self):
        if not (int(self.max_pixels) == self.max_pixels and self.max_pixels >= 0):
            raise ValueError(f"max_pixels must be a non-negative integer, got {self.max_pixels!r}")
        if not 0 <= self.max_compression_ratio < float("inf"):
            raise ValueError(f"max_compression_ratio must be >= 0, got {self.max_compression_ratio!r}")


def check_image_size(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """BadMessage `image_too_large` when width x height exceeds `max_pixels` (0 = no limit)."""
    if max_pixels and int(width) * int(height) > max_pixels:
        raise BadMessage(
            "image_too_large",
            f"{what} is {width}x{height} = {int(width) * int(height)} pixels, above the limit of "
            f"{max_pixels} (max_image_pixels)",
        )


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


def image_to_array(msg, max_pixels: int = 0) -> np.ndarray:
    """An Image as an (H,W) or (H,W,C) array of its encoding's dtype (a view when possible).

    `max_pixels` (0 = none) is checked against the width and height fields first."""
    encoding = str(msg.encoding)
    if encoding not in IMAGE_ENCODINGS:
        raise BadMessage(
            "unknown_encoding", f"image encoding {encoding!r} is not one of {sorted(IMAGE_ENCODINGS)}"
        )
    dtype, channels = IMAGE_ENCODINGS[encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise BadMessage("empty_image", f"image is {h}x{w}")
    check_image_size(w, h, max_pixels)
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


def image_to_rgb(msg, limits: DecodeLimits | None = None) -> np.ndarray:
    """A colour or mono Image as uint8 RGB (H,W,3)."""
    arr = image_to_array(msg, (limits or DecodeLimits()).max_pixels)
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...); C4, C8, CC are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RSTn, SOI: markers without a length


def _jpeg_size(data: np.ndarray) -> tuple[int, int]:
    i, n = 2, data.size  # walks the marker segments (a few dozen), never the entropy-coded data
    while i + 9 <= n:
        if data[i] != 0xFF:
            break
        marker = int(data[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            h, w = int(data[i + 5]) << 8 | int(data[i + 6]), int(data[i + 7]) << 8 | int(data[i + 8])
            return w, h
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        i += 2 if marker in _JPEG_NO_LENGTH else 2 + (int(data[i + 2]) << 8 | int(data[i + 3]))
    raise BadMessage("undecodable_compressed", "JPEG data has no readable frame header (SOF)")


def compressed_image_size(msg) -> tuple[int, int]:
    """(width, height) of a PNG or JPEG CompressedImage, read from its header without decoding."""
    data = _buffer(msg.data)
    if data.size == 0:
        raise BadMessage("empty_compressed", f"compressed image (format {msg.format!r}) has no data")
    head = data[:24].tobytes()
    if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    raise BadMessage(
        "undecodable_compressed",
        f"compressed image (format {msg.format!r}) is neither PNG nor JPEG; its size cannot be checked "
        "before decoding",
    )


def check_compressed(msg, limits: DecodeLimits, expected_size: tuple[int, int] | None = None):
    """(width, height) from the header, checked against the limits and, when given, against the
    camera_info (width, height), before a byte is decoded."""
    w, h = compressed_image_size(msg)
    if w <= 0 or h <= 0:
        raise BadMessage("empty_image", f"compressed image header says {w}x{h}")
    check_image_size(w, h, limits.max_pixels, "compressed image")
    if expected_size is not None and (w, h) != tuple(expected_size):
        raise BadMessage(
            "size_mismatch",
            f"compressed image header says {w}x{h} but camera_info says "
            f"{expected_size[0]}x{expected_size[1]}",
        )
    nbytes = _buffer(msg.data).size
    ratio = 3 * w * h / nbytes
    if limits.max_compression_ratio and ratio > limits.max_compression_ratio:
        raise BadMessage(
            "compression_ratio",
            f"compressed image of {nbytes} bytes decodes to {w}x{h} RGB, {ratio:.0f} bytes per "
            f"byte, above max_compression_ratio={limits.max_compression_ratio:g}",
        )
    return w, h


def compressed_to_rgb(msg, limits: DecodeLimits | None = None, expected_size=None) -> np.ndarray:
    """A CompressedImage (JPEG/PNG) as uint8 RGB (H,W,3), its header checked first (check_compressed)."""
    check_compressed(msg, limits or DecodeLimits(), expected_size)
    data = _buffer(msg.data)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # always 8-bit BGR
    if img is None:
        raise BadMessage(
            "undecodable_compressed", f"cannot decode {data.size} bytes as format {msg.format!r}"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def depth_image_to_metres(msg, max_pixels: int = 0) -> np.ndarray:
    """A depth Image (16UC1/mono16 millimetres, 32FC1 metres) as float32 metres, 0 = invalid."""
    encoding = str(msg.encoding)
    if encoding not in ("16UC1", "mono16", "32FC1"):
        raise BadMessage("unknown_encoding", f"depth encoding {encoding!r}; expected 16UC1 (mm) or 32FC1 (m)")
    arr = image_to_array(msg, max_pixels)
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


def _distortion(msg) -> tuple[str, np.ndarray]:
    """(model, D) of a CameraInfo; ('none', []) when every coefficient is zero."""
    D = np.asarray(getattr(msg, "d", ()), dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(D)):
        raise BadMessage("camera_info_not_finite", "camera_info.d contains NaN or Inf")
    if not D.any():
        return "none", D[:0]
    model = str(getattr(msg, "distortion_model", ""))
    if model not in DISTORTION_MODELS:
        raise BadMessage(
            "unsupported_distortion",
            f"camera_info.distortion_model is {model!r} with non-zero d; "
            f"supported: {sorted(DISTORTION_MODELS)} "
            "(or set distortion:=ignore for an image that is already rectified)",
        )
    sizes = DISTORTION_MODELS[model]
    if D.size not in sizes:
        raise BadMessage(
            "camera_info_bad_distortion",
            f"camera_info.d has {D.size} values; distortion_model {model!r} takes "
            f"{' or '.join(map(str, sizes))}",
        )
    return model, D


def camera_model_from_info(msg, use_projection: bool = False, distortion: str = "auto") -> CameraModel:
    """The camera a CameraInfo describes, as the sparse depth must be projected into it.

    distortion 'auto': a raw image (K) is projected with the distortion model and D; a rectified
    image (use_projection, P) is a pinhole and D is ignored. 'ignore': always a pinhole.
    """
    matrix, w, h = camera_info_to_intrinsics(msg, use_projection)
    if distortion not in ("auto", "ignore"):
        raise ValueError(f"distortion must be 'auto' or 'ignore', got {distortion!r}")
    if distortion == "ignore":  # D is not even read
        return CameraModel(matrix, w, h)
    model, D = _distortion(msg)
    if model != "none" and use_projection:
        return CameraModel(matrix, w, h, ignored_distortion=(
            f"camera_info has non-zero d ({model}) but use_projection_matrix is true, which means a "
            "rectified image: d is not applied. For a raw image set use_projection_matrix:=false"))
    return CameraModel(matrix, w, h, model, D)


def _xyz_fields(msg) -> dict:
    """name -> PointField of x, y, z: each named once, float, a single value, not overlapping."""
    names = [str(f.name) for f in msg.fields]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BadMessage(
            "cloud_duplicate_field",
            f"cloud fields {names} name {repeated} more than once; which one is meant is ambiguous",
        )
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in ("x", "y", "z") if n not in fields]
    if missing:
        raise BadMessage("cloud_missing_xyz", f"cloud has fields {sorted(fields)}; missing {missing}")
    point_step = int(msg.point_step)
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
        if int(getattr(f, "count", 1)) > 1:
            raise BadMessage("cloud_ambiguous_field", f"field {name!r} has count {f.count}; expected 1")
    spans = sorted((int(f.offset), POINTFIELD_FLOAT[int(f.datatype)].itemsize, n) for n, f in fields.items()
                   if n in ("x", "y", "z"))
    for (a, size, first), (b, _, second) in zip(spans, spans[1:], strict=False):
        if a + size > b:
            raise BadMessage(
                "cloud_ambiguous_field", f"fields {first!r} and {second!r} overlap (offsets {a} and {b})"
            )
    return fields


def pointcloud2_layout(msg) -> np.dtype:
    """Validate a PointCloud2's layout; return the structured dtype reading its x, y, z."""
    h, w = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    fields = _xyz_fields(msg)
    if h * w == 0:
        raise BadMessage("empty_cloud", f"cloud is {h}x{w} points")
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


def decode_camera(image_msg, info_msg, compressed: bool, limits: DecodeLimits | None = None,
                  use_projection: bool = False, distortion: str = "auto") -> tuple[np.ndarray, CameraModel]:
    """(rgb, camera) of one image + camera_info pair, whose sizes must agree.

    The image's size (fields, or a compressed image's header) is checked against the limits and
    the camera_info before it is decoded.
    """
    limits = limits or DecodeLimits()
    camera = camera_model_from_info(info_msg, use_projection, distortion)
    size = (camera.width, camera.height)
    if compressed:
        return compressed_to_rgb(image_msg, limits, expected_size=size), camera
    w, h = int(image_msg.width), int(image_msg.height)
    if w > 0 and h > 0 and (w, h) != size:
        raise BadMessage("size_mismatch", f"image is {w}x{h} but camera_info says {size[0]}x{size[1]}")
    return image_to_rgb(image_msg, limits), camera

"""The node's parameters: one table, the single source of truth.

The node declares exactly these (with descriptions); config/completion.yaml lists every
one of them and the launch file passes only these. Names with a dot are ROS parameter
namespaces (`sync.slop` is `sync: {slop: ...}` in YAML).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "PARAMETERS",
    "PARAMETER_NAMES",
    "Param",
    "declare_parameters",
    "inference_limits_of",
    "input_size_of",
    "set_options_of",
]


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    choices: tuple = ()


_IDENTITY_4X4 = [float(v) for v in np.eye(4).ravel()]

PARAMETERS: tuple[Param, ...] = (
    Param("checkpoint", "", "Path of the SelfDC checkpoint (.pt) to run. Required."),
    Param(
        "device", "auto", "Torch device: 'auto' (CUDA when present, with fp16 autocast), 'cpu' or 'cuda:N'."
    ),
    Param(
        "input_height", 0, "Model input height in pixels; 0 = the camera resolution. Output is mapped back."
    ),
    Param("input_width", 0, "Model input width in pixels; 0 = the camera resolution."),
    Param("warmup", True, "Run a few dummy frames at start-up so the first real frame is not slow."),
    Param(
        "image_transport",
        "raw",
        "'raw': sensor_msgs/Image on camera/image; "
        "'compressed': sensor_msgs/CompressedImage on camera/image/compressed.",
        ("raw", "compressed"),
    ),
    Param(
        "sparse_source",
        "pointcloud",
        "'pointcloud': PointCloud2 on lidar/points; 'depth_image': "
        "Image on tof/depth (16UC1 mm or 32FC1 m) registered to the camera.",
        ("pointcloud", "depth_image"),
    ),
    Param("use_projection_matrix", False, "Project with CameraInfo.P (rectified images) instead of K."),
    Param(
        "distortion",
        "auto",
        "'auto': a raw image (K) is projected with camera_info's distortion_model and D "
        "(plumb_bob, rational_polynomial, equidistant); 'ignore': always a pinhole.",
        ("auto", "ignore"),
    ),
    Param(
        "limits.max_image_pixels",
        7680 * 4320,
        "Camera or depth images with more pixels are skipped before decoding (0 = no limit).",
    ),
    Param(
        "limits.max_compression_ratio",
        2000.0,
        "Compressed images decoding to more RGB bytes per compressed byte are skipped before decoding "
        "(colour frames stay below ~1100; a blank mono PNG reaches ~3100). 0 = no limit.",
    ),
    Param(
        "limits.max_inference_pixels",
        1_000_000,
        "With input_height/width 0, larger cameras run the model downscaled to this many pixels "
        "(memory grows with them; see README). 0 = no limit.",
    ),
    Param("limits.min_sparse_depth", 0.0, "Sparse depths nearer than this (m) are dropped and counted."),
    Param(
        "limits.max_sparse_depth", 300.0, "Sparse depths farther than this (m) are dropped and counted."
    ),
    Param("sync.queue_size", 10, "Messages held per input by the approximate time synchroniser."),
    Param("sync.slop", 0.05, "Largest stamp difference (s) within one synchronised set."),
    Param("sync.warn_after", 2.0, "Warn when all inputs arrive but no set synchronises for this long (s)."),
    Param(
        "sync.jump_threshold",
        1.0,
        "A stamp this much (s) behind the last set restarts the synchroniser (bag loop, simulation "
        "reset); one this much ahead of its input's next stamp is evicted as a future stamp.",
    ),
    Param(
        "qos.reliability",
        "best_effort",
        "Input QoS reliability ('best_effort' = sensor data QoS).",
        ("best_effort", "reliable"),
    ),
    Param("qos.depth", 5, "Input QoS history depth."),
    Param(
        "extrinsic.source",
        "quaternion",
        "Where the LiDAR->camera transform comes from: 'quaternion' "
        "(translation + rotation), 'matrix' (4x4) or 'tf' (tf2, when tf2_ros is importable).",
        ("quaternion", "matrix", "tf"),
    ),
    Param(
        "extrinsic.translation", [0.0, 0.0, 0.0], "LiDAR origin in the camera optical frame (x, y, z) in m."
    ),
    Param(
        "extrinsic.rotation",
        [0.0, 0.0, 0.0, 1.0],
        "Rotation LiDAR->camera optical frame as a quaternion (x, y, z, w).",
    ),
    Param("extrinsic.matrix", _IDENTITY_4X4, "Row-major 4x4 transform T_cam_lidar (p_cam = T p_lidar)."),
    Param("extrinsic.tf_timeout", 0.1, "Seconds to wait for the tf2 transform of each frame."),
    Param(
        "filter.enabled", False, "Drop LiDAR points occluded from the camera's view (as the KITTI pipeline)."
    ),
    Param("filter.kernel_size", 5, "Neighbourhood (pixels, odd) of the occlusion filter."),
    Param("filter.rel_threshold", 0.15, "Occlusion filter: relative depth gap to the neighbourhood minimum."),
    Param("filter.abs_threshold", 0.5, "Occlusion filter: absolute depth gap in metres."),
    Param(
        "keep_measurements",
        True,
        "Publish the measured sparse depths unchanged at their pixels "
        "(they may blur when the model runs at another resolution).",
    ),
    Param("max_depth", 0.0, "Output pixels farther than this (m) are published as NaN; 0 = no limit."),
    Param(
        "colorize.min_depth", 0.0, "Near end (m) of the colourised depth range; min = max = 0 -> automatic."
    ),
    Param("colorize.max_depth", 0.0, "Far end (m) of the colourised depth range; 0 with min 0 = automatic."),
    Param("cloud_stride", 4, "Pixel stride of the organised completion/points cloud."),
    Param("timing_log_period", 10.0, "Seconds between timing log lines (throttled)."),
    Param("warn_throttle", 5.0, "Seconds between repeated warnings about the same kind of bad input."),
)

PARAMETER_NAMES = frozenset(p.name for p in PARAMETERS)


def input_size_of(values: dict) -> tuple[int, int] | None:
    """The model input (height, width), or None for the camera resolution."""
    h, w = int(values["input_height"]), int(values["input_width"])
    return (h, w) if h > 0 and w > 0 else None


def set_options_of(values: dict):
    """How the node turns a message set into arrays (selfdc_core.message_set.SetOptions)."""
    from selfdc_core.message_set import SetOptions
    from selfdc_core.msg_decode import DecodeLimits

    return SetOptions(
        compressed_image=values["image_transport"] == "compressed",
        sparse_is_cloud=values["sparse_source"] == "pointcloud",
        use_projection_matrix=bool(values["use_projection_matrix"]),
        distortion=values["distortion"],
        filter_kwargs=(
            {k: values[f"filter.{k}"] for k in ("kernel_size", "rel_threshold", "abs_threshold")}
            if values["filter.enabled"]
            else None
        ),
        min_depth=float(values["limits.min_sparse_depth"]),
        max_depth=float(values["limits.max_sparse_depth"]),
        limits=DecodeLimits(
            int(values["limits.max_image_pixels"]), float(values["limits.max_compression_ratio"])
        ),
    )


def inference_limits_of(values: dict):
    """The DepthCompleter's input limits (selfdc_core.inference_limits.InferenceLimits)."""
    from selfdc_core.inference_limits import InferenceLimits

    return InferenceLimits(
        int(values["limits.max_inference_pixels"]),
        float(values["limits.min_sparse_depth"]),
        float(values["limits.max_sparse_depth"]),
    )


def _check(values: dict) -> None:
    for p in PARAMETERS:
        if p.choices and values[p.name] not in p.choices:
            raise ValueError(f"parameter {p.name!r} is {values[p.name]!r}; expected one of {list(p.choices)}")
    if (int(values["input_height"]) > 0) != (int(values["input_width"]) > 0):
        raise ValueError("parameters input_height and input_width must both be > 0, or both 0 (camera size)")
    if len(values["extrinsic.translation"]) != 3:
        raise ValueError(
            f"parameter 'extrinsic.translation' needs 3 values, got {values['extrinsic.translation']}"
        )
    if len(values["extrinsic.rotation"]) != 4:
        raise ValueError(
            f"parameter 'extrinsic.rotation' needs 4 values (x,y,z,w), got {values['extrinsic.rotation']}"
        )
    if len(values["extrinsic.matrix"]) != 16:
        raise ValueError(
            "parameter 'extrinsic.matrix' needs 16 values (row-major 4x4), "
            f"got {len(values['extrinsic.matrix'])}"
        )
    k = int(values["filter.kernel_size"])
    if k < 1 or k % 2 == 0:
        raise ValueError(f"parameter 'filter.kernel_size' must be a positive odd integer, got {k}")
    if int(values["cloud_stride"]) < 1:
        raise ValueError(f"parameter 'cloud_stride' must be >= 1, got {values['cloud_stride']}")
    if int(values["sync.queue_size"]) < 1 or float(values["sync.slop"]) < 0:
        raise ValueError("parameters sync.queue_size must be >= 1 and sync.slop >= 0")
    if not float(values["sync.slop"]) < float(values["sync.jump_threshold"]) < float("inf"):
        raise ValueError("parameter 'sync.jump_threshold' must be finite and larger than sync.slop")
    for name in ("limits.max_image_pixels", "limits.max_inference_pixels"):
        if int(values[name]) < 0:
            raise ValueError(f"parameter {name!r} must be >= 0 (0 = no limit), got {values[name]}")
    if not 0 <= float(values["limits.max_compression_ratio"]) < float("inf"):
        raise ValueError("parameter 'limits.max_compression_ratio' must be >= 0 (0 = no limit)")
    if not 0 <= float(values["limits.min_sparse_depth"]) < float(values["limits.max_sparse_depth"]):
        raise ValueError("parameters limits.min_sparse_depth and max_sparse_depth need 0 <= min < max")


def declare_parameters(node) -> dict:
    """Declare every parameter on `node` (with its description); return the validated values by name."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for p in PARAMETERS:
        desc = p.description + (f" One of {list(p.choices)}." if p.choices else "")
        values[p.name] = node.declare_parameter(
            p.name, p.default, ParameterDescriptor(description=desc)
        ).value
    _check(values)
    return values

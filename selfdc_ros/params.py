"""The node's parameters: one table, the single source of truth.

The node declares exactly these (with descriptions); config/completion.yaml lists every
one of them. Names with a dot are ROS parameter namespaces (`sync.slop` is
`sync: {slop: ...}` in YAML). A parameter is either `live` (applied while the node runs,
checked by `validate` first) or read-only. Adding a parameter is one line in PARAMETERS;
its type is the default's type, and `minimum`/`maximum` bound numbers.

An int is accepted where a double is declared, and a list of ints for a list of doubles,
as users write YAML (`max_depth: 10`, `translation: [0, 0, 0]`).
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass

__all__ = [
    "PARAMETERS",
    "PARAMETER_NAMES",
    "Param",
    "coerce",
    "coerce_parameters",
    "coerce_values",
    "declare_parameters",
    "declared_values",
    "inference_limits_of",
    "input_size_of",
    "ParameterError",
    "problems",
    "set_options_of",
    "validate",
]


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    choices: tuple = ()
    live: bool = False  # applied at run time; otherwise read-only
    minimum: float | None = None
    maximum: float | None = None

    @property
    def kind(self) -> str:
        """'bool', 'int', 'float', 'str' or 'floats' (a list of doubles)."""
        return "floats" if isinstance(self.default, list) else type(self.default).__name__


_IDENTITY_4X4 = [1.0 if r == c else 0.0 for r in range(4) for c in range(4)]

PARAMETERS: tuple[Param, ...] = (
    Param(
        "checkpoint",
        "",
        "Model file to run ('~' is expanded), required: a training checkpoint (.pt), slim weights "
        "(.safetensors) or an ONNX export (.onnx) from training/export.py.",
    ),
    Param(
        "backend",
        "auto",
        "'auto' (onnxruntime for .onnx, PyTorch otherwise), 'torch' or 'onnxruntime'.",
        choices=("auto", "torch", "onnxruntime"),
    ),
    Param("device", "auto", "Torch device: 'auto' (CUDA when present), 'cpu' or 'cuda:N'."),
    Param(
        "precision",
        "auto",
        "Autocast precision of the PyTorch backend: 'auto' (float16 on CUDA, bfloat16 on CPUs with AMX "
        "or AVX512-BF16, about 4x faster there, else float32), 'float32', 'float16' (CUDA only) or "
        "'bfloat16'. The propagation always runs in float32; an ONNX model takes 'auto'.",
        choices=("auto", "float32", "float16", "bfloat16"),
    ),
    Param(
        "input_height",
        0,
        "Model input height in pixels; 0 = the camera resolution. Output is mapped back.",
        minimum=0,
    ),
    Param("input_width", 0, "Model input width in pixels; 0 = the camera resolution.", minimum=0),
    Param("warmup", True, "Run a few dummy frames at start-up so the first real frame is not slow."),
    Param(
        "autostart",
        True,
        "Configure and activate the (lifecycle) node at start-up; false waits for lifecycle transitions.",
    ),
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
        minimum=0,
    ),
    Param(
        "limits.max_compression_ratio",
        2000.0,
        "Compressed images decoding to more RGB bytes per compressed byte are skipped before decoding "
        "(colour frames stay below ~1100; a blank mono PNG reaches ~3100). 0 = no limit.",
        minimum=0.0,
    ),
    Param(
        "limits.max_inference_pixels",
        1_000_000,
        "With input_height/width 0, larger cameras run the model downscaled to this many pixels "
        "(memory grows with them; see README). 0 = no limit.",
        minimum=0,
    ),
    Param(
        "limits.min_sparse_depth",
        0.0,
        "Sparse depths nearer than this (m) are dropped and counted.",
        minimum=0.0,
    ),
    Param(
        "limits.max_sparse_depth", 300.0, "Sparse depths farther than this (m) are dropped and counted."
    ),
    Param(
        "sync.jump_threshold",
        0.0,
        "A stamp this much (s) behind the last set restarts the synchroniser (bag loop, simulation "
        "reset); one this much ahead of its input's next stamp is evicted as a future stamp. "
        "0 = automatic: max(1 s, 2 x sync.slop).",
        minimum=0.0,
    ),
    Param("sync.queue_size", 10, "Messages held per input by the approximate time synchroniser.", minimum=1),
    Param("sync.slop", 0.05, "Largest stamp difference (s) within one synchronised set.", minimum=0.0),
    Param(
        "sync.warn_after",
        2.0,
        "Warn when all inputs arrive but no set synchronises for this long (s).",
        live=True,
        minimum=0.0,
    ),
    Param(
        "extrinsic.source",
        "auto",
        "Where the LiDAR->camera transform comes from: 'auto' (tf2 when tf2_ros is importable, "
        "otherwise translation + rotation), 'tf', 'quaternion' (translation + rotation) or 'matrix' (4x4).",
        ("auto", "tf", "quaternion", "matrix"),
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
    Param(
        "extrinsic.tf_timeout",
        0.1,
        "Seconds to wait for the tf2 transform at the cloud's stamp.",
        minimum=0.0,
    ),
    Param(
        "filter.enabled",
        False,
        "Drop LiDAR points occluded from the camera's view (as the KITTI pipeline).",
        live=True,
    ),
    Param(
        "filter.kernel_size", 5, "Neighbourhood (pixels, odd) of the occlusion filter.", live=True, minimum=1
    ),
    Param(
        "filter.rel_threshold",
        0.15,
        "Occlusion filter: relative depth gap to the neighbourhood minimum.",
        live=True,
        minimum=0.0,
    ),
    Param(
        "filter.abs_threshold", 0.5, "Occlusion filter: absolute depth gap in metres.", live=True, minimum=0.0
    ),
    Param(
        "keep_measurements",
        True,
        "Publish the measured sparse depths unchanged at their pixels "
        "(they may blur when the model runs at another resolution).",
        live=True,
    ),
    Param(
        "max_depth",
        0.0,
        "Output pixels farther than this (m) are published as NaN; 0 = no limit.",
        live=True,
        minimum=0.0,
    ),
    Param(
        "output.depth_colorized", True, "Publish completion/depth_colorized (while subscribed).", live=True
    ),
    Param("output.points", True, "Publish completion/points (while subscribed).", live=True),
    Param("output.confidence", True, "Publish completion/confidence (while subscribed).", live=True),
    Param(
        "colorize.min_depth",
        0.0,
        "Near end (m) of the colourised depth range; min = max = 0 -> automatic.",
        live=True,
        minimum=0.0,
    ),
    Param(
        "colorize.max_depth",
        0.0,
        "Far end (m) of the colourised depth range; 0 with min 0 = automatic.",
        live=True,
        minimum=0.0,
    ),
    Param("cloud_stride", 4, "Pixel stride of the organised completion/points cloud.", live=True, minimum=1),
    Param(
        "diagnostics.period",
        1.0,
        "Seconds between /diagnostics messages (one status per stage).",
        minimum=0.05,
    ),
    Param(
        "diagnostics.expected_image_rate",
        0.0,
        "Expected camera rate (Hz) reported against the receive rate; 0 = estimated from the stamps.",
        live=True,
        minimum=0.0,
    ),
    Param(
        "diagnostics.expected_sparse_rate",
        0.0,
        "Expected LiDAR/ToF rate (Hz); 0 = estimated from the stamps.",
        live=True,
        minimum=0.0,
    ),
    Param(
        "diagnostics.rate_tolerance",
        0.2,
        "An input receiving less than (1 - this) x its expected rate sets the status to WARN.",
        live=True,
        minimum=0.0,
        maximum=1.0,
    ),
    Param("timing_log_period", 10.0, "Seconds between timing log lines (throttled).", live=True, minimum=0.0),
    Param(
        "warn_throttle",
        5.0,
        "Seconds between repeated warnings about the same kind of bad input.",
        live=True,
        minimum=0.0,
    ),
)

# The online learner's adaptation.* parameters (its component registers itself on import).
from selfdc_ros.online_adaptation import parameter_rows  # noqa: E402

PARAMETERS += tuple(Param(**row) for row in parameter_rows())
PARAMETER_NAMES = frozenset(p.name for p in PARAMETERS)
_BY_NAME = {p.name: p for p in PARAMETERS}
_KIND_WORDS = {
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "floats": "a list of numbers",
}


class ParameterError(ValueError):
    """A parameter value is unusable; `names` are the parameters involved."""

    def __init__(self, names: tuple[str, ...], message: str):
        super().__init__(message)
        self.names = names


def input_size_of(values: dict) -> tuple[int, int] | None:
    """The model input (height, width), or None for the camera resolution."""
    h, w = int(values["input_height"]), int(values["input_width"])
    return (h, w) if h > 0 and w > 0 else None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def coerce(p: Param, value):
    """`value` in the parameter's declared type where that is lossless (int -> double), else as is."""
    if p.kind == "float" and _is_number(value):
        return float(value)
    if p.kind == "floats" and isinstance(value, (list, tuple, array.array)):
        if all(_is_number(v) for v in value):
            return [float(v) for v in value]
    return value


def _has_kind(p: Param, value) -> bool:
    if p.kind == "bool":
        return isinstance(value, bool)
    if p.kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if p.kind == "float":
        return isinstance(value, float)
    if p.kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, float) for v in value)


def _single_problem(p: Param, value) -> str | None:
    if not _has_kind(p, value):
        return f"parameter {p.name!r} is {value!r} ({type(value).__name__}); expected {_KIND_WORDS[p.kind]}"
    if p.choices and value not in p.choices:
        return f"parameter {p.name!r} is {value!r}; expected one of {list(p.choices)}"
    if p.kind == "float" and not math.isfinite(value):
        return f"parameter {p.name!r} is {value}; expected a finite number"
    if p.kind == "floats" and not all(math.isfinite(v) for v in value):
        return f"parameter {p.name!r} has a non-finite value: {value}"
    if p.minimum is not None and _is_number(value) and value < p.minimum:
        return f"parameter {p.name!r} is {value}; expected >= {p.minimum}"
    if p.maximum is not None and _is_number(value) and value > p.maximum:
        return f"parameter {p.name!r} is {value}; expected <= {p.maximum}"
    return None


_LENGTHS = {
    "extrinsic.translation": (3, "3 values (x, y, z)"),
    "extrinsic.rotation": (4, "4 values (x, y, z, w)"),
    "extrinsic.matrix": (16, "16 values (row-major 4x4)"),
}


def _cross_problems(v: dict) -> list[ParameterError]:
    out = []
    for name, (n, what) in _LENGTHS.items():
        if len(v[name]) != n:
            out.append(ParameterError((name,), f"parameter {name!r} needs {what}, got {len(v[name])}"))
    if (v["input_height"] > 0) != (v["input_width"] > 0):
        out.append(
            ParameterError(
                ("input_height", "input_width"),
                "parameters input_height and input_width must both be > 0, or both 0 (camera size)",
            )
        )
    if v["filter.kernel_size"] % 2 == 0:
        out.append(
            ParameterError(
                ("filter.kernel_size",),
                f"parameter 'filter.kernel_size' must be odd, got {v['filter.kernel_size']}",
            )
        )
    jump = v["sync.jump_threshold"]
    if jump != 0 and not v["sync.slop"] < jump < math.inf:
        out.append(
            ParameterError(
                ("sync.slop", "sync.jump_threshold"),
                "parameter 'sync.jump_threshold' must be 0 (automatic) or finite and larger than sync.slop",
            )
        )
    if not v["limits.min_sparse_depth"] < v["limits.max_sparse_depth"]:
        out.append(
            ParameterError(
                ("limits.min_sparse_depth", "limits.max_sparse_depth"),
                "parameters limits.min_sparse_depth and limits.max_sparse_depth need min < max",
            )
        )
    if 0 < v["colorize.max_depth"] <= v["colorize.min_depth"]:
        out.append(
            ParameterError(
                ("colorize.min_depth", "colorize.max_depth"),
                "parameter 'colorize.max_depth' must be 0 (automatic) or above 'colorize.min_depth'",
            )
        )
    return out


def problems(values: dict) -> list[ParameterError]:
    """Every reason why `values` (coerced, by name) cannot run; empty when they can."""
    out = []
    for p in PARAMETERS:
        message = _single_problem(p, values[p.name])
        if message:
            out.append(ParameterError((p.name,), message))
    return out if out else _cross_problems(values)


def coerce_values(values: dict) -> dict:
    return {name: coerce(_BY_NAME[name], v) if name in _BY_NAME else v for name, v in values.items()}


def validate(values: dict) -> dict:
    """The coerced values; ParameterError naming the first unusable parameter."""
    coerced = coerce_values(values)
    found = problems(coerced)
    if found:
        raise found[0]
    return coerced


def _descriptor(p: Param, typed: bool):
    from rcl_interfaces.msg import ParameterDescriptor

    # Bounds stay in `validate`, the one check shared by start-up and live changes.
    text = p.description + (f" One of {list(p.choices)}." if p.choices else "")
    text += "" if p.live else " Read-only: set at start-up."
    return ParameterDescriptor(description=text, read_only=not p.live, dynamic_typing=not typed)


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


def declare_parameters(node) -> dict:
    """Declare every parameter on `node`; return the (coerced, not yet validated) values by name.

    Declaring never raises for a wrong type: each value is first read with dynamic typing and
    coerced, then declared again with its final descriptor (typed and bounded when the value
    fits, so tools show its type), and `validate` reports what is wrong with one clear message.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for p in PARAMETERS:
        raw = node.declare_parameter(p.name, p.default, ParameterDescriptor(dynamic_typing=True)).value
        value = coerce(p, raw)
        node.undeclare_parameter(p.name)
        typed = _single_problem(p, value) is None
        node.declare_parameter(p.name, value, _descriptor(p, typed), ignore_override=True)
        values[p.name] = value
    return values


def declared_values(node) -> dict:
    """The node's current values of these parameters, coerced."""
    return coerce_values({p.name: node.get_parameter(p.name).value for p in PARAMETERS})


def coerce_parameters(parameter_list: list) -> list:
    """Pre-set callback: an int sent for a double (or ints for doubles) becomes the declared type."""
    from rclpy.parameter import Parameter

    out = []
    for param in parameter_list:
        spec = _BY_NAME.get(param.name)
        value = coerce(spec, param.value) if spec else param.value
        out.append(param if value is param.value else Parameter(param.name, value=value))
    return out

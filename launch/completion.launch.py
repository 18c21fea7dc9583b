"""Start the SelfDC depth-completion node (a lifecycle node), and RViz2 when use_rviz is true.

    ros2 launch selfdc_ros completion.launch.py checkpoint:=~/models/selfdc.pt use_rviz:=true \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info \
        points_topic:=/velodyne_points

Targets ROS 2 Humble, Jazzy and Kilted (only long-standing launch / launch_ros API is used).
`params_file` goes to the node as a ROS parameter file, so its usual keys apply under any
namespace: `/**:`, `/**/completion_node:` or the node's full name (`/robot/completion_node:`).
Launch arguments named in PARAMETER_ARGUMENTS override it. The node configures and activates
itself when `autostart` is true (on every distribution); with autostart:=false it waits for
`ros2 lifecycle set <node> configure` / `activate`.
"""

import os

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

# (launch argument, the node's topic it remaps, default)
TOPIC_ARGUMENTS = [
    ("image_topic", "camera/image", "camera/image"),
    ("compressed_image_topic", "camera/image/compressed", "camera/image/compressed"),
    ("camera_info_topic", "camera/camera_info", "camera/camera_info"),
    ("points_topic", "lidar/points", "lidar/points"),
    ("tof_topic", "tof/depth", "tof/depth"),
    ("depth_topic", "completion/depth", "completion/depth"),
    ("depth_colorized_topic", "completion/depth_colorized", "completion/depth_colorized"),
    ("output_camera_info_topic", "completion/camera_info", "completion/camera_info"),
    ("output_points_topic", "completion/points", "completion/points"),
    ("confidence_topic", "completion/confidence", "completion/confidence"),
]
# Topics RViz shows (relative, so they follow the namespace and the output remaps).
RVIZ_TOPICS = ("completion/depth_colorized", "completion/points")

# (launch argument, node parameter, description); '' keeps the params_file value.
PARAMETER_ARGUMENTS = [
    ("checkpoint", "checkpoint", "Model file to run (.pt, .safetensors or .onnx); '~' is expanded"),
    ("backend", "backend", "auto, torch or onnxruntime"),
    ("device", "device", "Torch device: auto, cpu or cuda:N"),
    ("precision", "precision", "auto, float32, float16 (CUDA) or bfloat16"),
    ("sparse_source", "sparse_source", "pointcloud or depth_image"),
    ("image_transport", "image_transport", "raw or compressed"),
    ("extrinsic_source", "extrinsic.source", "auto, tf, quaternion or matrix"),
    ("input_height", "input_height", "Model input height (0 = camera resolution)"),
    ("input_width", "input_width", "Model input width (0 = camera resolution)"),
    ("max_depth", "max_depth", "Output pixels farther than this (m) become NaN"),
]


def _yaml_value(text: str):
    """A launch argument as the YAML value users would write in the parameters file."""
    return yaml.safe_load(text) if text.strip() else None


def _node_parameter_overrides(arguments: dict) -> dict:
    """Node parameters from the launch arguments that were given (non-empty)."""
    params = {}
    for arg, name, _ in PARAMETER_ARGUMENTS:
        value = arguments.get(arg, "")
        if value:
            params[name] = os.path.expanduser(value) if name == "checkpoint" else _yaml_value(value)
    for name in ("use_sim_time", "autostart"):
        params[name] = bool(_yaml_value(arguments.get(name, "true" if name == "autostart" else "false")))
    return params


def _unsupported_parameter_arguments(arguments: dict, parameter_names) -> list:
    """Launch arguments that name a node parameter this file does not pass on (they'd be ignored)."""
    supported = {arg for arg, _, _ in PARAMETER_ARGUMENTS} | {name for _, name, _ in PARAMETER_ARGUMENTS}
    supported |= {"autostart"}  # a launch argument of its own
    candidates = {n for n in parameter_names} | {n.replace(".", "_") for n in parameter_names}
    return sorted(a for a in arguments if a in candidates and a not in supported)


def _rviz2_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return False
    return True


def _check_arguments(arguments: dict, parameter_names, rviz_installed) -> None:
    """RuntimeError (launch prints it and starts nothing) for arguments that cannot work."""
    unsupported = _unsupported_parameter_arguments(arguments, parameter_names)
    if unsupported:
        raise RuntimeError(
            f"node parameter(s) {unsupported} cannot be given as launch arguments: set them in a "
            "params_file (see config/completion.yaml). Launch arguments for node parameters: "
            + ", ".join(arg for arg, _, _ in PARAMETER_ARGUMENTS)
        )
    if _yaml_value(arguments.get("use_rviz", "false")) is True and not rviz_installed():
        raise RuntimeError(
            "use_rviz:=true but the rviz2 package is not installed: install it "
            "(apt install ros-$ROS_DISTRO-rviz2) or launch with use_rviz:=false. Nothing was started."
        )


def _launch(context):
    from selfdc_ros.params import PARAMETER_NAMES

    arguments = dict(context.launch_configurations)
    _check_arguments(arguments, PARAMETER_NAMES, _rviz2_installed)  # before anything starts
    share = FindPackageShare("selfdc_ros").perform(context)
    params_file = os.path.expanduser(arguments.get("params_file", "")) or os.path.join(
        share, "config", "completion.yaml"
    )
    overrides = _node_parameter_overrides(arguments)
    namespace = arguments.get("namespace", "")
    ros_args = ["--ros-args", "--log-level", arguments.get("log_level", "info")]
    node = LifecycleNode(
        package="selfdc_ros",
        executable="completion_node",
        name="completion_node",
        namespace=namespace,
        parameters=[params_file, overrides],
        remappings=[(topic, arguments[arg]) for arg, topic, _ in TOPIC_ARGUMENTS],
        arguments=ros_args,
        output="screen",
        emulate_tty=True,
    )
    if _yaml_value(arguments.get("use_rviz", "false")) is not True:
        return [node]
    rviz_args = ["-d", os.path.join(share, "config", "selfdc.rviz")]
    if arguments.get("rviz_fixed_frame"):
        rviz_args += ["-f", arguments["rviz_fixed_frame"]]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="selfdc_rviz",
        namespace=namespace,
        arguments=rviz_args,
        parameters=[{"use_sim_time": overrides["use_sim_time"]}],
        remappings=[(t, arguments[a]) for a, t, _ in TOPIC_ARGUMENTS if t in RVIZ_TOPICS],
    )
    return [node, rviz]


def generate_launch_description():
    share = FindPackageShare("selfdc_ros")
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "completion.yaml"]),
            description="ROS parameter file of the node (keys /**: or its full name); '~' is expanded",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and RViz"),
        DeclareLaunchArgument(
            "autostart", default_value="true", description="Configure and activate the lifecycle node"
        ),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="Use /clock (bag replay), node and RViz"
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Also start RViz2"),
        DeclareLaunchArgument(
            "rviz_fixed_frame",
            default_value="camera_optical",
            description="RViz fixed frame: the camera image's frame_id (or any frame tf connects)",
        ),
    ]
    arguments += [
        DeclareLaunchArgument(arg, default_value="", description=f"{text} (empty: from params_file)")
        for arg, _, text in PARAMETER_ARGUMENTS
    ]
    arguments += [
        DeclareLaunchArgument(arg, default_value=default, description=f"Topic remapped to the node's {topic}")
        for arg, topic, default in TOPIC_ARGUMENTS
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch)])

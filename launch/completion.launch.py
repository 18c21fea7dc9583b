"""Start the SelfDC depth-completion node, and RViz2 when use_rviz is true.

    ros2 launch selfdc_ros completion.launch.py checkpoint:=/path/to/model.pt use_rviz:=true \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info \
        points_topic:=/velodyne_points

Targets ROS 2 Humble, Jazzy and Kilted (only long-standing launch / launch_ros API is used).
The parameters file is read here and handed to the node as a dict, so its
`completion_node: ros__parameters:` section applies whatever namespace the node runs in.
"""

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
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


def _node_parameters(params_file: str, checkpoint: str) -> dict:
    with open(params_file) as f:
        content = yaml.safe_load(f) or {}
    section = content.get("completion_node", content.get("/**", {}))
    params = dict(section.get("ros__parameters", {}))
    if checkpoint:
        params["checkpoint"] = checkpoint
    return params


def _launch_node(context):
    params = _node_parameters(
        LaunchConfiguration("params_file").perform(context),
        LaunchConfiguration("checkpoint").perform(context),
    )
    remappings = [(topic, LaunchConfiguration(arg)) for arg, topic, _ in TOPIC_ARGUMENTS]
    return [
        Node(
            package="selfdc_ros",
            executable="completion_node",
            name="completion_node",
            namespace=LaunchConfiguration("namespace"),
            parameters=[params],
            remappings=remappings,
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    share = FindPackageShare("selfdc_ros")
    arguments = [
        DeclareLaunchArgument("checkpoint", default_value="", description="SelfDC checkpoint (.pt) to run"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, "config", "completion.yaml"]),
            description="Node parameters (completion_node: ros__parameters: ...)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Also start RViz2"),
    ]
    arguments += [
        DeclareLaunchArgument(arg, default_value=default, description=f"Topic remapped to the node's {topic}")
        for arg, topic, default in TOPIC_ARGUMENTS
    ]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="selfdc_rviz",
        namespace=LaunchConfiguration("namespace"),
        arguments=["-d", PathJoinSubstitution([share, "config", "selfdc.rviz"])],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
    )
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node), rviz])

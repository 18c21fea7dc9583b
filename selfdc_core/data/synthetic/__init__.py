"""Procedural indoor scenes rendered by vectorised ray casting, with a simulated LiDAR and ToF.

`render_frame(seed, index, ...)` gives one camera + LiDAR frame without a Dataset (ROS and
rosbag tests publish these); `SyntheticScenes` is the torch Dataset of the common contract.
"""

from .dataset import SyntheticScenes
from .environments import ENVIRONMENTS, EnvironmentSpec, get_environment
from .frame import SyntheticFrame, render_frame
from .lidar import LidarConfig, beam_directions, simulate_lidar
from .raycast import cast_rays
from .render import nyu_like_intrinsics, render_camera
from .scene import Scene, make_scene
from .sparse import random_sparse_depth, tof_grid_shape, tof_sparse_depth

__all__ = [
    "ENVIRONMENTS",
    "EnvironmentSpec",
    "LidarConfig",
    "Scene",
    "SyntheticFrame",
    "SyntheticScenes",
    "beam_directions",
    "cast_rays",
    "get_environment",
    "make_scene",
    "nyu_like_intrinsics",
    "random_sparse_depth",
    "render_camera",
    "render_frame",
    "simulate_lidar",
    "tof_grid_shape",
    "tof_sparse_depth",
]

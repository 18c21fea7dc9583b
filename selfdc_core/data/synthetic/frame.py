"""One synthetic sensor frame (camera + LiDAR), rendered deterministically from (seed, index)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .environments import get_environment
from .lidar import LidarConfig, simulate_lidar
from .render import check_image_size, nyu_like_intrinsics, render_camera
from .scene import Scene, make_scene


@dataclass
class SyntheticFrame:
    rgb: np.ndarray  # (H,W,3) uint8
    depth: np.ndarray  # (H,W) float32 z-depth in metres, > 0 everywhere (closed room)
    object_ids: np.ndarray  # (H,W) int32 surface id >= 1 (floor, ceiling, 4 walls, then one per object)
    K: np.ndarray  # (3,3) float32
    lidar_points: np.ndarray | None  # (N,3) float32 in the LiDAR frame (x fwd, y left, z up)
    T_cam_lidar: np.ndarray | None  # (4,4) float64: LiDAR frame -> camera optical frame
    lidar_rings: np.ndarray | None  # (N,) int16 beam index, 0 = highest beam
    T_world_cam: np.ndarray  # (4,4) float64 camera pose in the room (world z up)
    scene: Scene


def check_index(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def frame_rngs(seed: int, index: int, environment: str) -> dict[str, np.random.Generator]:
    """Independent random streams of one frame, so that e.g. the scene does not change with the
    image size or with whether the LiDAR is simulated."""
    root = np.random.SeedSequence(
        [zlib.crc32(environment.encode()), check_index("seed", seed), check_index("index", index)]
    )
    names = ("scene", "pixels", "lidar", "sparse")
    return {
        name: np.random.default_rng(child) for name, child in zip(names, root.spawn(len(names)), strict=True)
    }


def render_frame(
    seed: int,
    index: int,
    height: int = 228,
    width: int = 304,
    environment: str = "room",
    lidar_beams: int = 32,
    lidar: LidarConfig | None = None,
    with_lidar: bool = True,
    shadows: bool = True,
    pixel_noise: float = 1.5,
) -> SyntheticFrame:
    """Render frame `index` of the scene sequence `seed` in `environment`.

    `lidar` overrides every LiDAR setting (its `beams` wins over `lidar_beams`). The same
    (seed, index, environment) always gives identical arrays.
    """
    spec = get_environment(environment)
    check_image_size(height, width)
    if pixel_noise < 0:
        raise ValueError(f"pixel_noise must be >= 0, got {pixel_noise}")
    config = lidar if lidar is not None else LidarConfig(beams=lidar_beams)
    rngs = frame_rngs(seed, index, environment)
    scene = make_scene(rngs["scene"], spec)
    K = nyu_like_intrinsics(height, width)
    rgb, depth, ids = render_camera(
        scene, K, height, width, rng=rngs["pixels"], shadows=shadows, pixel_noise=pixel_noise
    )
    points = rings = T_cam_lidar = None
    if with_lidar:
        points, rings, T_cam_lidar = simulate_lidar(scene, config, rngs["lidar"])
    return SyntheticFrame(
        rgb=rgb,
        depth=depth,
        object_ids=ids,
        K=K,
        lidar_points=points,
        T_cam_lidar=T_cam_lidar,
        lidar_rings=rings,
        T_world_cam=scene.T_world_cam.copy(),
        scene=scene,
    )

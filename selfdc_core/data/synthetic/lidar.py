"""A simulated spinning LiDAR rigidly mounted next to the camera.

Points are returned in the LiDAR's own frame (REP 103 body frame: x forward, y left, z up),
with the full 360 degree sweep (most points fall outside the camera's view, as on a real
robot). `T_cam_lidar` maps them into the camera optical frame (z forward, x right, y down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raycast import cast_rays
from .scene import Scene

# columns: the LiDAR's x (forward), y (left), z (up) axes expressed in the camera optical frame
R_CAM_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class LidarConfig:
    """Sensor model. `translation` is the LiDAR origin in the camera optical frame (metres):
    the default mounts it 10 cm above, 2 cm right of and 3 cm behind the camera."""

    beams: int = 32
    fov_up_deg: float = 15.0
    fov_down_deg: float = -15.0
    horizontal_resolution_deg: float = 0.4
    min_range: float = 0.1
    max_range: float = 50.0
    range_noise_std: float = 0.0  # metres, Gaussian along the beam
    dropout: float = 0.0  # probability that a return is lost
    translation: tuple[float, float, float] = (0.02, -0.10, -0.03)

    def __post_init__(self):
        if isinstance(self.beams, bool) or not isinstance(self.beams, (int, np.integer)) or self.beams < 1:
            raise ValueError(f"lidar beams must be a positive integer, got {self.beams!r}")
        if not (-90.0 <= self.fov_down_deg < self.fov_up_deg <= 90.0):
            raise ValueError(
                f"lidar fov must satisfy -90 <= fov_down_deg < fov_up_deg <= 90, "
                f"got fov_down_deg={self.fov_down_deg}, fov_up_deg={self.fov_up_deg}"
            )
        if not (0.0 < self.horizontal_resolution_deg <= 90.0):
            raise ValueError(
                f"horizontal_resolution_deg must be in (0, 90], got {self.horizontal_resolution_deg}"
            )
        if not (0.0 <= self.min_range < self.max_range):
            raise ValueError(
                f"lidar ranges must satisfy 0 <= min_range < max_range, "
                f"got min_range={self.min_range}, max_range={self.max_range}"
            )
        if self.range_noise_std < 0:
            raise ValueError(f"range_noise_std must be >= 0, got {self.range_noise_std}")
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if np.asarray(self.translation).shape != (3,):
            raise ValueError(f"lidar translation must be 3 numbers, got {self.translation!r}")

    @property
    def elevations_deg(self) -> np.ndarray:
        """Beam elevations, top to bottom (ring 0 is the highest beam)."""
        if self.beams == 1:
            return np.array([(self.fov_up_deg + self.fov_down_deg) / 2])
        return np.linspace(self.fov_up_deg, self.fov_down_deg, self.beams)

    @property
    def azimuths_deg(self) -> np.ndarray:
        return np.arange(0.0, 360.0, self.horizontal_resolution_deg)

    def T_cam_lidar(self) -> np.ndarray:
        """4x4 transform taking LiDAR-frame points into the camera optical frame."""
        T = np.eye(4)
        T[:3, :3] = R_CAM_LIDAR
        T[:3, 3] = self.translation
        return T


def beam_directions(config: LidarConfig) -> tuple[np.ndarray, np.ndarray]:
    """Unit ray directions (beams*columns, 3) in the LiDAR frame and their ring index."""
    el = np.deg2rad(config.elevations_deg)[:, None]
    az = np.deg2rad(config.azimuths_deg)[None, :]
    dirs = np.stack(
        np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1
    )
    rings = np.broadcast_to(np.arange(config.beams)[:, None], dirs.shape[:2])
    return dirs.reshape(-1, 3).astype(np.float32), rings.reshape(-1).astype(np.int16)


def simulate_lidar(scene: Scene, config: LidarConfig, rng: np.random.Generator | None = None):
    """One sweep. Returns (points (N,3) float32 in the LiDAR frame, rings (N,) int16, T_cam_lidar (4,4)).

    `rng` is needed only for range noise and dropout.
    """
    if rng is None and (config.range_noise_std > 0 or config.dropout > 0):
        raise ValueError("simulate_lidar needs an rng when range_noise_std or dropout is set")
    T_cam_lidar = config.T_cam_lidar()
    T_world_lidar = scene.T_world_cam @ T_cam_lidar
    dirs, rings = beam_directions(config)
    ranges, _ = cast_rays(scene, T_world_lidar[:3, 3], dirs @ T_world_lidar[:3, :3].T.astype(np.float32))
    if config.range_noise_std > 0:
        ranges = ranges + rng.normal(0.0, config.range_noise_std, size=ranges.shape).astype(np.float32)
    keep = (ranges >= config.min_range) & (ranges <= config.max_range)
    if config.dropout > 0:
        keep &= rng.uniform(size=ranges.shape) >= config.dropout
    points = dirs[keep] * ranges[keep, None]
    return points.astype(np.float32), rings[keep], T_cam_lidar

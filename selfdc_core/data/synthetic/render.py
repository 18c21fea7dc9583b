"""Pinhole camera rendering: RGB, z-depth and object ids of a Scene by ray casting."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .raycast import cast_rays
from .scene import Scene
from .texture import albedo, surface_frame

# NYU Depth v2 at half resolution, centre-cropped to 304x228: f = 518.86 / 2
NYU_HALF_FOCAL = 259.43
NYU_HALF_WIDTH = 304
SHADOW_OFFSET = 2e-3  # metres along the normal, so a shadow ray does not hit its own surface


def check_image_size(height, width) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def nyu_like_intrinsics(height: int, width: int) -> np.ndarray:
    """K of NYU half resolution (fx = fy = 259.43 at 304 px wide) scaled with the width; square pixels,
    principal point at the image centre."""
    check_image_size(height, width)
    f = NYU_HALF_FOCAL * width / NYU_HALF_WIDTH
    return np.array(
        [[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]], dtype=np.float32
    )


@lru_cache(maxsize=8)
def _pixel_rays(height: int, width: int, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Camera-frame ray per pixel centre, scaled so that z = 1 (ray parameter = z-depth)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1).reshape(-1, 3)
    rays.setflags(write=False)
    return rays


def shade(
    scene: Scene,
    points: np.ndarray,
    normals: np.ndarray,
    base: np.ndarray,
    shadows: bool,
) -> np.ndarray:
    """Lambertian shading from the point light, with an ambient term and optional hard shadows.

    Normals face the camera by construction (it is inside the room and outside every object).
    """
    to_light = scene.light_position - points
    dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
    lambert = np.maximum(np.einsum("ij,ij->i", normals, to_light) / np.maximum(dist, 1e-6), 0.0)
    if shadows:  # rays from the light to each lit point: blocked if something is hit before the point
        lit = np.flatnonzero(lambert > 0)
        t, _ = cast_rays(scene, scene.light_position, -to_light[lit], include_room=False)
        lambert[lit[t * dist[lit] < dist[lit] - SHADOW_OFFSET]] = 0.0
    falloff = 1.0 / (1.0 + (dist / scene.light_range) ** 2)
    light = scene.ambient + (1.0 - scene.ambient) * scene.light_gain * lambert * falloff
    return base * light[:, None] * scene.light_colour


def render_camera(
    scene: Scene,
    K: np.ndarray,
    height: int,
    width: int,
    rng: np.random.Generator | None = None,
    shadows: bool = True,
    pixel_noise: float = 1.5,
):
    """Render the scene from `scene.T_world_cam`.

    Returns rgb uint8 (H,W,3), depth float32 (H,W) z-depth in metres, ids int32 (H,W).
    `pixel_noise` is the std of additive sensor noise in 8-bit units (needs `rng`).
    """
    check_image_size(height, width)
    K = np.asarray(K, dtype=np.float64)
    rays_cam = _pixel_rays(height, width, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    R = scene.T_world_cam[:3, :3].astype(np.float32)
    origin = scene.T_world_cam[:3, 3].astype(np.float32)
    dirs = rays_cam @ R.T
    t, ids = cast_rays(scene, origin, dirs)
    points = origin + t[:, None] * dirs
    normals, uv = surface_frame(scene, points, ids)
    colour = shade(scene, points, normals, albedo(scene, ids, uv), shadows)
    rgb = colour * 255.0
    if rng is not None and pixel_noise > 0:
        rgb += rng.standard_normal(size=rgb.shape, dtype=np.float32) * np.float32(pixel_noise)
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)
    return rgb, t.reshape(height, width), ids.reshape(height, width)

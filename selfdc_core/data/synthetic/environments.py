"""Environment families: the parameter ranges a scene is drawn from.

Each family has its own room sizes, object mix, palettes and texture preferences, so a
model trained on one family meets a real domain shift on another (field adaptation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Texture kinds, indexed by the material table (see texture.py).
SOLID, STRIPES, CHECKER, NOISE = 0, 1, 2, 3
TEXTURE_NAMES = ("solid", "stripes", "checker", "noise")


@dataclass(frozen=True)
class EnvironmentSpec:
    """Ranges (lo, hi) sampled uniformly, palettes as RGB in [0,1], texture weights per surface class."""

    name: str
    room_size: tuple[tuple[float, float, float], tuple[float, float, float]]
    num_boxes: tuple[int, int]
    num_spheres: tuple[int, int]
    num_cylinders: tuple[int, int]
    box_size: tuple[tuple[float, float, float], tuple[float, float, float]]
    stack_probability: float  # chance a box sits on top of an earlier one (shelves, stacked crates)
    sphere_radius: tuple[float, float]
    cylinder_radius: tuple[float, float]
    cylinder_height: tuple[float, float]
    full_height_cylinder_probability: float  # pillars reaching the ceiling
    camera_height: tuple[float, float]
    wall_margin: float  # minimum camera distance to the walls
    floor_palette: tuple[tuple[float, float, float], ...]
    wall_palette: tuple[tuple[float, float, float], ...]
    object_palette: tuple[tuple[float, float, float], ...]
    floor_textures: tuple[float, float, float, float]  # weights for SOLID, STRIPES, CHECKER, NOISE
    wall_textures: tuple[float, float, float, float]
    object_textures: tuple[float, float, float, float]
    texture_scale: tuple[float, float]  # metres per texture period
    ambient: float
    light_gain: float  # diffuse strength relative to the ambient-free maximum
    light_range: float  # distance (m) at which the point light falls to half intensity
    light_colour: tuple[float, float, float]

    def palette(self, which: str) -> np.ndarray:
        return np.asarray(getattr(self, f"{which}_palette"), dtype=np.float32)

    def texture_weights(self, which: str) -> np.ndarray:
        w = np.asarray(getattr(self, f"{which}_textures"), dtype=np.float64)
        return w / w.sum()


ROOM = EnvironmentSpec(
    name="room",
    room_size=((3.5, 3.0, 2.4), (7.0, 6.0, 3.0)),
    num_boxes=(3, 7),
    num_spheres=(0, 3),
    num_cylinders=(1, 3),
    box_size=((0.35, 0.35, 0.3), (1.8, 1.0, 2.0)),
    stack_probability=0.15,
    sphere_radius=(0.1, 0.35),
    cylinder_radius=(0.1, 0.3),
    cylinder_height=(0.4, 1.3),
    full_height_cylinder_probability=0.1,
    camera_height=(1.0, 1.7),
    wall_margin=0.5,
    floor_palette=((0.55, 0.38, 0.22), (0.70, 0.55, 0.38), (0.80, 0.78, 0.72), (0.35, 0.25, 0.18)),
    wall_palette=((0.88, 0.84, 0.76), (0.80, 0.85, 0.80), (0.90, 0.88, 0.86), (0.75, 0.70, 0.62)),
    object_palette=(
        (0.60, 0.20, 0.15),
        (0.20, 0.35, 0.60),
        (0.85, 0.70, 0.30),
        (0.30, 0.50, 0.30),
        (0.45, 0.30, 0.20),
        (0.90, 0.90, 0.88),
        (0.15, 0.15, 0.18),
        (0.70, 0.45, 0.55),
    ),
    floor_textures=(0.1, 0.5, 0.3, 0.1),
    wall_textures=(0.55, 0.15, 0.05, 0.25),
    object_textures=(0.35, 0.25, 0.15, 0.25),
    texture_scale=(0.08, 0.6),
    ambient=0.35,
    light_gain=1.6,
    light_range=4.0,
    light_colour=(1.0, 0.95, 0.85),
)

WAREHOUSE = EnvironmentSpec(
    name="warehouse",
    room_size=((12.0, 10.0, 5.0), (25.0, 20.0, 9.0)),
    num_boxes=(8, 16),
    num_spheres=(0, 2),
    num_cylinders=(3, 8),
    box_size=((0.8, 0.8, 0.6), (3.0, 2.0, 3.5)),
    stack_probability=0.35,
    sphere_radius=(0.3, 0.8),
    cylinder_radius=(0.2, 0.5),
    cylinder_height=(0.8, 1.2),
    full_height_cylinder_probability=0.5,
    camera_height=(0.4, 1.2),  # a ground robot's camera
    wall_margin=1.0,
    floor_palette=((0.45, 0.45, 0.45), (0.55, 0.55, 0.52), (0.35, 0.37, 0.40)),
    wall_palette=((0.55, 0.60, 0.65), (0.70, 0.70, 0.68), (0.40, 0.45, 0.52)),
    object_palette=(
        (0.85, 0.50, 0.10),
        (0.65, 0.50, 0.30),
        (0.20, 0.30, 0.55),
        (0.80, 0.75, 0.20),
        (0.25, 0.45, 0.25),
        (0.60, 0.15, 0.10),
        (0.50, 0.50, 0.55),
    ),
    floor_textures=(0.1, 0.1, 0.1, 0.7),
    wall_textures=(0.2, 0.6, 0.0, 0.2),
    object_textures=(0.3, 0.35, 0.1, 0.25),
    texture_scale=(0.1, 1.2),
    ambient=0.4,
    light_gain=2.4,
    light_range=10.0,
    light_colour=(0.90, 0.95, 1.0),
)

CORRIDOR = EnvironmentSpec(
    name="corridor",
    room_size=((14.0, 2.2, 2.5), (30.0, 3.5, 3.2)),
    num_boxes=(2, 6),
    num_spheres=(0, 1),
    num_cylinders=(1, 4),
    box_size=((0.3, 0.3, 0.4), (1.2, 0.6, 1.9)),
    stack_probability=0.05,
    sphere_radius=(0.1, 0.3),
    cylinder_radius=(0.1, 0.25),
    cylinder_height=(0.5, 1.1),
    full_height_cylinder_probability=0.0,
    camera_height=(0.8, 1.6),
    wall_margin=0.5,
    floor_palette=((0.30, 0.32, 0.30), (0.60, 0.58, 0.55), (0.20, 0.22, 0.28)),
    wall_palette=((0.92, 0.92, 0.90), (0.75, 0.82, 0.88), (0.85, 0.80, 0.70)),
    object_palette=((0.75, 0.10, 0.10), (0.15, 0.45, 0.70), (0.55, 0.55, 0.55), (0.90, 0.75, 0.15)),
    floor_textures=(0.2, 0.1, 0.5, 0.2),
    wall_textures=(0.7, 0.2, 0.0, 0.1),
    object_textures=(0.6, 0.2, 0.05, 0.15),
    texture_scale=(0.1, 0.8),
    ambient=0.4,
    light_gain=1.8,
    light_range=6.0,
    light_colour=(1.0, 1.0, 0.95),
)

ENVIRONMENTS: dict[str, EnvironmentSpec] = {spec.name: spec for spec in (ROOM, WAREHOUSE, CORRIDOR)}


def get_environment(name: str) -> EnvironmentSpec:
    if name not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {sorted(ENVIRONMENTS)}, got {name!r}")
    return ENVIRONMENTS[name]

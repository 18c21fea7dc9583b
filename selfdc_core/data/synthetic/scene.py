"""Random scene descriptions: a closed room with boxes, spheres and vertical cylinders.

World frame: z up, the room spans [0, Lx] x [0, Ly] x [0, Lz]. Every surface has an id >= 1:
the floor, ceiling and four walls are 1..6, then one id per box, sphere and cylinder, in that
order. The id indexes the material table, and it is the "oracle" object map of a frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .environments import SOLID, EnvironmentSpec

FLOOR, CEILING, WALL_X0, WALL_X1, WALL_Y0, WALL_Y1 = 1, 2, 3, 4, 5, 6
NUM_ROOM_FACES = 6
CAMERA_CLEARANCE = 0.6  # metres between the camera and any object (the LiDAR sits within 0.2 m)


@dataclass
class Materials:
    """Per-id texture parameters; row 0 is unused (id 0 never occurs in a closed room)."""

    kind: np.ndarray  # (M+1,) int: SOLID, STRIPES, CHECKER, NOISE
    colour_a: np.ndarray  # (M+1,3) float32 albedo
    colour_b: np.ndarray  # (M+1,3) float32 second albedo of the pattern
    scale: np.ndarray  # (M+1,) float32 pattern period in metres
    angle: np.ndarray  # (M+1,) float32 stripe direction in surface coordinates


@dataclass
class Scene:
    environment: str
    room_size: np.ndarray  # (3,) float32
    box_lo: np.ndarray  # (nb,3) float32
    box_hi: np.ndarray  # (nb,3) float32
    sphere_centre: np.ndarray  # (ns,3) float32
    sphere_radius: np.ndarray  # (ns,) float32
    cylinder_xy: np.ndarray  # (nc,2) float32
    cylinder_radius: np.ndarray  # (nc,) float32
    cylinder_z: np.ndarray  # (nc,2) float32 bottom, top
    materials: Materials
    light_position: np.ndarray  # (3,) float32
    light_colour: np.ndarray  # (3,) float32
    ambient: float
    light_gain: float
    light_range: float
    T_world_cam: np.ndarray  # (4,4) float64, camera optical frame -> world

    @property
    def first_box_id(self) -> int:
        return NUM_ROOM_FACES + 1

    @property
    def first_sphere_id(self) -> int:
        return self.first_box_id + len(self.box_lo)

    @property
    def first_cylinder_id(self) -> int:
        return self.first_sphere_id + len(self.sphere_radius)

    @property
    def num_ids(self) -> int:
        """Largest id in the scene."""
        return self.first_cylinder_id + len(self.cylinder_radius) - 1


def object_distances(points: np.ndarray, scene_parts: dict) -> np.ndarray:
    """Euclidean distance from each point (P,3) to each object surface, (P, n_objects); inside -> <= 0."""
    p = np.asarray(points, dtype=np.float64)[:, None, :]
    lo, hi = scene_parts["box_lo"], scene_parts["box_hi"]
    outside = np.maximum(np.maximum(lo - p, p - hi), 0.0)
    d_box = np.linalg.norm(outside, axis=-1)
    d_sph = np.linalg.norm(p - scene_parts["sphere_centre"], axis=-1) - scene_parts["sphere_radius"]
    radial = np.linalg.norm(p[..., :2] - scene_parts["cylinder_xy"], axis=-1) - scene_parts["cylinder_radius"]
    z0, z1 = scene_parts["cylinder_z"][:, 0], scene_parts["cylinder_z"][:, 1]
    vertical = np.maximum(np.maximum(z0 - p[..., 2], p[..., 2] - z1), 0.0)
    d_cyl = np.hypot(np.maximum(radial, 0.0), vertical)
    return np.concatenate([d_box, d_sph, d_cyl], axis=1)


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-optical rotation: columns are the camera's right, down and forward axes in the world."""
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, forward], axis=1)


def _sample_boxes(rng: np.random.Generator, spec: EnvironmentSpec, room: np.ndarray):
    n = int(rng.integers(spec.num_boxes[0], spec.num_boxes[1] + 1))
    size = rng.uniform(spec.box_size[0], spec.box_size[1], size=(n, 3))
    size[:, :2] = np.minimum(size[:, :2], room[:2] * 0.4)
    lo = np.zeros((n, 3))
    lo[:, :2] = rng.uniform(0.0, 1.0, size=(n, 2)) * (room[:2] - size[:, :2])
    stacked = rng.uniform(size=n) < spec.stack_probability
    for i in range(1, n):  # sequential: a stacked box rests on the top face of an earlier box
        if stacked[i]:
            base = int(rng.integers(0, i))
            base_size = size[base]
            size[i, :2] = np.minimum(size[i, :2], base_size[:2])
            lo[i, :2] = lo[base, :2] + rng.uniform(size=2) * (base_size[:2] - size[i, :2])
            lo[i, 2] = lo[base, 2] + base_size[2]
    hi = lo + size
    keep = hi[:, 2] < room[2] - 0.15  # leave a gap below the ceiling
    return lo[keep], hi[keep]


def _sample_spheres(rng: np.random.Generator, spec: EnvironmentSpec, room, box_lo, box_hi):
    n = int(rng.integers(spec.num_spheres[0], spec.num_spheres[1] + 1))
    r = rng.uniform(*spec.sphere_radius, size=n)
    centre = np.empty((n, 3))
    centre[:, :2] = r[:, None] + rng.uniform(size=(n, 2)) * (room[:2] - 2 * r[:, None])
    centre[:, 2] = r
    if len(box_lo):  # some spheres rest on a box (balls on a table)
        on_box = rng.uniform(size=n) < 0.5
        base = rng.integers(0, len(box_lo), size=n)
        top_centre = (box_lo[base, :2] + box_hi[base, :2]) / 2
        centre[on_box, :2] = top_centre[on_box]
        centre[on_box, 2] = box_hi[base[on_box], 2] + r[on_box]
    keep = centre[:, 2] + r < room[2] - 0.1
    return centre[keep], r[keep]


def _sample_cylinders(rng: np.random.Generator, spec: EnvironmentSpec, room):
    n = int(rng.integers(spec.num_cylinders[0], spec.num_cylinders[1] + 1))
    r = rng.uniform(*spec.cylinder_radius, size=n)
    xy = r[:, None] + rng.uniform(size=(n, 2)) * (room[:2] - 2 * r[:, None])
    top = rng.uniform(*spec.cylinder_height, size=n)
    top = np.where(
        rng.uniform(size=n) < spec.full_height_cylinder_probability, room[2], np.minimum(top, room[2])
    )
    z = np.stack([np.zeros(n), top], axis=1)
    return xy, r, z


def _place_viewpoint(rng, spec: EnvironmentSpec, room, parts: dict):
    """Pick a camera position with clearance from every object; drop objects if no candidate is clear."""
    n_candidates = 64
    cam = np.empty((n_candidates, 3))
    cam[:, :2] = spec.wall_margin + rng.uniform(size=(n_candidates, 2)) * (room[:2] - 2 * spec.wall_margin)
    z_hi = min(spec.camera_height[1], room[2] - 0.3)
    cam[:, 2] = rng.uniform(spec.camera_height[0], z_hi, size=n_candidates)
    dist = object_distances(cam, parts)
    if dist.shape[1] == 0:
        return cam[0], np.ones(0, dtype=bool)
    clear = dist.min(axis=1) > CAMERA_CLEARANCE
    best = int(np.argmax(clear)) if clear.any() else int(np.argmax(dist.min(axis=1)))
    return cam[best], dist[best] > CAMERA_CLEARANCE


def _sample_materials(rng: np.random.Generator, spec: EnvironmentSpec, num_objects: int) -> Materials:
    m = NUM_ROOM_FACES + num_objects + 1
    kind = np.zeros(m, dtype=np.int64)
    colour_a = np.zeros((m, 3))
    classes = ["floor", "wall"] + ["wall"] * 4 + ["object"] * num_objects
    for offset, which in enumerate(classes):  # ids 1..M
        palette = spec.palette(which)
        kind[offset + 1] = rng.choice(4, p=spec.texture_weights(which))
        colour_a[offset + 1] = palette[rng.integers(len(palette))]
    kind[CEILING] = SOLID if rng.uniform() < 0.7 else kind[CEILING]
    colour_a[CEILING] = np.minimum(colour_a[CEILING] * 1.1, 1.0)
    if rng.uniform() < 0.7:  # usually all four walls share one paint
        kind[WALL_X0 : WALL_Y1 + 1] = kind[WALL_X0]
        colour_a[WALL_X0 : WALL_Y1 + 1] = colour_a[WALL_X0]
    colour_a = np.clip(colour_a + rng.normal(0.0, 0.04, size=colour_a.shape), 0.02, 1.0)
    # the second colour is either a darker shade or another colour of the palette
    shade = colour_a * rng.uniform(0.45, 0.8, size=(m, 1))
    other = spec.palette("object")[rng.integers(len(spec.object_palette), size=m)]
    colour_b = np.where(rng.uniform(size=(m, 1)) < 0.6, shade, other)
    lo, hi = np.log(spec.texture_scale[0]), np.log(spec.texture_scale[1])
    scale = np.exp(rng.uniform(lo, hi, size=m))
    angle = np.where(
        rng.uniform(size=m) < 0.8, rng.integers(0, 2, size=m) * (np.pi / 2), rng.uniform(0.0, np.pi, size=m)
    )
    return Materials(
        kind=kind,
        colour_a=colour_a.astype(np.float32),
        colour_b=colour_b.astype(np.float32),
        scale=scale.astype(np.float32),
        angle=angle.astype(np.float32),
    )


def _camera_pose(rng: np.random.Generator, room: np.ndarray, position: np.ndarray) -> np.ndarray:
    """T_world_cam looking roughly towards the room's interior, not at a wall right in front: the
    first candidate heading with min(3 m, half the best) of free floor ahead."""
    to_centre = np.arctan2(room[1] / 2 - position[1], room[0] / 2 - position[0])
    yaws = to_centre + rng.uniform(-0.6, 0.6, size=8) * np.pi
    heading = np.stack([np.cos(yaws), np.sin(yaws)], axis=1)
    heading = np.where(np.abs(heading) < 1e-9, 1e-9, heading)
    free = np.min((np.where(heading > 0, room[:2], 0.0) - position[:2]) / heading, axis=1)
    ok = free >= min(3.0, 0.5 * free.max())
    yaw = yaws[int(np.argmax(ok))]
    pitch = np.deg2rad(np.clip(rng.normal(-5.0, 6.0), -20.0, 10.0))
    roll = np.deg2rad(rng.normal(0.0, 2.0))
    T_world_cam = np.eye(4)
    T_world_cam[:3, :3] = camera_rotation(yaw, pitch, roll)
    T_world_cam[:3, 3] = position
    return T_world_cam


def _ceiling_light(rng: np.random.Generator, room: np.ndarray, parts: dict) -> np.ndarray:
    """A ceiling light kept out of objects (a light inside a pillar would black out the room)."""
    lights = np.empty((16, 3))
    lights[:, :2] = room[:2] * rng.uniform(0.2, 0.8, size=(16, 2))
    lights[:, 2] = room[2] - 0.2
    light_dist = object_distances(lights, parts)
    return lights[int(np.argmax(light_dist.min(axis=1)))] if light_dist.shape[1] else lights[0]


def make_scene(rng: np.random.Generator, spec: EnvironmentSpec) -> Scene:
    """Draw one scene and a camera pose inside it from `rng`."""
    room = rng.uniform(spec.room_size[0], spec.room_size[1])
    box_lo, box_hi = _sample_boxes(rng, spec, room)
    sphere_centre, sphere_radius = _sample_spheres(rng, spec, room, box_lo, box_hi)
    cylinder_xy, cylinder_radius, cylinder_z = _sample_cylinders(rng, spec, room)
    parts = dict(
        box_lo=box_lo,
        box_hi=box_hi,
        sphere_centre=sphere_centre,
        sphere_radius=sphere_radius,
        cylinder_xy=cylinder_xy,
        cylinder_radius=cylinder_radius,
        cylinder_z=cylinder_z,
    )
    position, keep = _place_viewpoint(rng, spec, room, parts)
    nb, ns = len(box_lo), len(sphere_radius)
    keep_box, keep_sph, keep_cyl = keep[:nb], keep[nb : nb + ns], keep[nb + ns :]
    parts = dict(
        box_lo=box_lo[keep_box],
        box_hi=box_hi[keep_box],
        sphere_centre=sphere_centre[keep_sph],
        sphere_radius=sphere_radius[keep_sph],
        cylinder_xy=cylinder_xy[keep_cyl],
        cylinder_radius=cylinder_radius[keep_cyl],
        cylinder_z=cylinder_z[keep_cyl],
    )
    num_objects = int(keep.sum())
    T_world_cam = _camera_pose(rng, room, position)
    light = _ceiling_light(rng, room, parts)
    f32 = {k: v.astype(np.float32) for k, v in parts.items()}
    return Scene(
        environment=spec.name,
        room_size=room.astype(np.float32),
        materials=_sample_materials(rng, spec, num_objects),
        light_position=light.astype(np.float32),
        light_colour=np.asarray(spec.light_colour, dtype=np.float32),
        ambient=spec.ambient,
        light_gain=spec.light_gain,
        light_range=spec.light_range,
        T_world_cam=T_world_cam,
        **f32,
    )

"""Surface normals, surface coordinates and procedural textures at ray hits.

Textures are functions of 2-D surface coordinates in metres (the two in-plane world axes of a
planar face, angle x radius and height on a cylinder, longitude/latitude x radius on a sphere),
so patterns keep their physical size at any distance and resolution.
"""

from __future__ import annotations

import numpy as np

from .environments import CHECKER, NOISE, STRIPES
from .scene import NUM_ROOM_FACES, Scene

# room faces 1..6 -> (normal axis, inward sign); index 0 is a placeholder
_ROOM_AXIS = np.array([2, 2, 2, 0, 0, 1, 1])
_ROOM_SIGN = np.array([1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0], dtype=np.float32)
_EYE = np.eye(3, dtype=np.float32)


def surface_frame(scene: Scene, points: np.ndarray, ids: np.ndarray):
    """Unit normals (N,3) (room faces inward, objects outward) and surface coordinates (N,2).

    Planar faces (room, boxes) are computed for every hit with whole-array ops (most pixels are
    planar); curved surfaces then overwrite their own hits.
    """
    room_face = np.minimum(ids, NUM_ROOM_FACES)
    axis = _ROOM_AXIS[room_face]
    sign = _ROOM_SIGN[room_face]
    sel = (ids >= scene.first_box_id) & (ids < scene.first_sphere_id)
    if sel.any():
        j = ids[sel] - scene.first_box_id
        centre = (scene.box_lo[j] + scene.box_hi[j]) / 2
        q = (points[sel] - centre) / ((scene.box_hi[j] - scene.box_lo[j]) / 2)
        aq = np.abs(q)
        box_axis = np.where(
            (aq[:, 0] >= aq[:, 1]) & (aq[:, 0] >= aq[:, 2]), 0, np.where(aq[:, 1] >= aq[:, 2], 1, 2)
        )
        axis[sel] = box_axis
        sign[sel] = np.sign(q[np.arange(len(q)), box_axis])
    normals = _EYE[axis] * sign[:, None]
    px, py, pz = points[:, 0], points[:, 1], points[:, 2]
    # in-plane coordinates: (y, z) on x-faces, (x, z) on y-faces, (x, y) on z-faces
    uv = np.stack([np.where(axis == 0, py, px), np.where(axis == 2, py, pz)], axis=1)

    sel = (ids >= scene.first_sphere_id) & (ids < scene.first_cylinder_id)
    if sel.any():
        j = ids[sel] - scene.first_sphere_id
        r = scene.sphere_radius[j]
        n = (points[sel] - scene.sphere_centre[j]) / r[:, None]
        normals[sel] = n
        uv[sel] = np.stack([np.arctan2(n[:, 1], n[:, 0]), np.arcsin(np.clip(n[:, 2], -1, 1))], 1) * r[:, None]

    sel = ids >= scene.first_cylinder_id
    if sel.any():
        j = ids[sel] - scene.first_cylinder_id
        p = points[sel]
        r = scene.cylinder_radius[j]
        rel = p[:, :2] - scene.cylinder_xy[j]
        top = np.abs(p[:, 2] - scene.cylinder_z[j, 1]) < 1e-3
        bottom = np.abs(p[:, 2] - scene.cylinder_z[j, 0]) < 1e-3
        cap = top | bottom
        n = np.zeros_like(p)
        n[:, :2] = np.where(cap[:, None], 0.0, rel / r[:, None])
        n[:, 2] = np.where(top, 1.0, np.where(bottom, -1.0, 0.0))
        normals[sel] = n
        side_uv = np.stack([np.arctan2(rel[:, 1], rel[:, 0]) * r, p[:, 2]], axis=1)
        uv[sel] = np.where(cap[:, None], p[:, :2], side_uv)
    return normals, uv


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0,1) per integer lattice point (wrapping uint32 hash)."""
    h = ix.astype(np.int64).astype(np.uint32) * np.uint32(0x8DA6B343)
    h ^= iy.astype(np.int64).astype(np.uint32) * np.uint32(0xD8163841)
    h ^= salt.astype(np.uint32) * np.uint32(0xCB1AB31F)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0x5BD1E995)
    h ^= h >> np.uint32(15)
    return h.astype(np.float32) * np.float32(1.0 / 4294967296.0)


def value_noise(u: np.ndarray, v: np.ndarray, salt: np.ndarray) -> np.ndarray:
    """Smoothly interpolated lattice noise in [0,1], one lattice cell per unit of (u, v)."""
    iu, iv = np.floor(u), np.floor(v)
    fu, fv = u - iu, v - iv
    su, sv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
    n00, n10 = _hash01(iu, iv, salt), _hash01(iu + 1, iv, salt)
    n01, n11 = _hash01(iu, iv + 1, salt), _hash01(iu + 1, iv + 1, salt)
    return (n00 * (1 - su) + n10 * su) * (1 - sv) + (n01 * (1 - su) + n11 * su) * sv


def albedo(scene: Scene, ids: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Texture colour (N,3) float32 in [0,1] of each hit."""
    mat = scene.materials
    kind = mat.kind[ids]
    scale = mat.scale[ids]
    u, v = uv[:, 0] / scale, uv[:, 1] / scale
    mix = np.zeros(len(ids), dtype=np.float32)

    sel = kind == STRIPES
    ang = mat.angle[ids[sel]]
    w = u[sel] * np.cos(ang) + v[sel] * np.sin(ang)
    mix[sel] = (w - np.floor(w)) < 0.5

    sel = kind == CHECKER
    mix[sel] = (np.floor(u[sel]) + np.floor(v[sel])) % 2

    sel = kind == NOISE  # two octaves: blotches plus finer grain
    salt = ids[sel]
    mix[sel] = 0.65 * value_noise(u[sel], v[sel], salt) + 0.35 * value_noise(
        4 * u[sel], 4 * v[sel], salt + 977
    )

    return mat.colour_a[ids] + (mat.colour_b - mat.colour_a)[ids] * mix[:, None]

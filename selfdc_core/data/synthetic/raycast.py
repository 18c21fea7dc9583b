"""Vectorised ray casting against a Scene.

Rays share one origin (a camera, a LiDAR, or the light for shadow rays) and are
`origin + t * direction`; directions need not be unit length, so `t` is in units of the
direction (camera rays with z_cam = 1 give z-depth directly, unit LiDAR rays give range).

Two vectorised stages instead of a full rays x primitives intersection: every ray is tested
against every primitive's bounding sphere (one matrix product), then the exact analytic
intersection (slab, quadric, disc) runs only on the candidate (ray, primitive) pairs, and a
scatter-min keeps the nearest hit per ray. Most primitives cover a small part of the view,
so this is several times cheaper than intersecting all pairs.
"""

from __future__ import annotations

import numpy as np

from .scene import CEILING, FLOOR, WALL_X0, WALL_X1, WALL_Y0, WALL_Y1, Scene

T_EPS = 1e-4
_INF = np.float32(np.inf)


def _nonzero(d: np.ndarray) -> np.ndarray:
    """Replace zero direction components by a tiny value of the same sign (avoids 0 * inf = NaN)."""
    return np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)


def _room_exit(room: np.ndarray, o: np.ndarray, d: np.ndarray):
    d_t = np.ascontiguousarray(d.T)  # (3,N): contiguous per-axis rows are faster than strided columns
    t_x, t_y, t_z = (np.where(d_t > 0, room[:, None], np.float32(0.0)) - o[:, None]) / d_t
    x_first = (t_x <= t_y) & (t_x <= t_z)
    y_first = ~x_first & (t_y <= t_z)
    positive = d_t > 0
    face = np.where(
        x_first,
        np.where(positive[0], WALL_X1, WALL_X0),
        np.where(y_first, np.where(positive[1], WALL_Y1, WALL_Y0), np.where(positive[2], CEILING, FLOOR)),
    )
    return np.minimum(np.minimum(t_x, t_y), t_z), face.astype(np.int32)


def _box_pairs(lo, hi, o, d):
    """Slab test for paired rows: lo, hi, d (P,3). Entry distance or inf."""
    t1 = (lo - o) / d
    t2 = (hi - o) / d
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin = np.maximum(np.maximum(near[:, 0], near[:, 1]), near[:, 2])  # column ops beat axis reductions
    tmax = np.minimum(np.minimum(far[:, 0], far[:, 1]), far[:, 2])
    return np.where((tmax >= tmin) & (tmin > T_EPS), tmin, _INF)


def _sphere_pairs(centre, radius, o, d):
    oc = o - centre
    a = np.einsum("ij,ij->i", d, d)
    b = np.einsum("ij,ij->i", d, oc)
    c = np.einsum("ij,ij->i", oc, oc) - radius * radius
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc >= 0) & (t > T_EPS), t, _INF)


def _cylinder_pairs(xy, radius, z, o, d):
    ox, oy = o[0] - xy[:, 0], o[1] - xy[:, 1]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = dx * dx + dy * dy
    b = dx * ox + dy * oy
    c = ox * ox + oy * oy - radius * radius
    disc = b * b - a * c
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / np.maximum(a, 1e-12)
    z_side = o[2] + t_side * dz
    side_ok = (disc >= 0) & (t_side > T_EPS) & (z_side >= z[:, 0]) & (z_side <= z[:, 1])
    best = np.where(side_ok, t_side, _INF)
    for cap in (z[:, 1], z[:, 0]):  # top and bottom discs
        t_cap = (cap - o[2]) / dz
        px, py = ox + t_cap * dx, oy + t_cap * dy
        cap_ok = (t_cap > T_EPS) & (px * px + py * py <= radius * radius)
        best = np.minimum(best, np.where(cap_ok, t_cap, _INF))
    return best


def bounding_spheres(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Centre (n,3) and radius (n,) enclosing each object, in id order (boxes, spheres, cylinders)."""
    box_c = (scene.box_lo + scene.box_hi) / 2
    box_r = np.linalg.norm(scene.box_hi - scene.box_lo, axis=1) / 2
    half_h = (scene.cylinder_z[:, 1] - scene.cylinder_z[:, 0]) / 2
    cyl_c = np.concatenate([scene.cylinder_xy, (scene.cylinder_z[:, :1] + half_h[:, None])], axis=1)
    cyl_r = np.hypot(scene.cylinder_radius, half_h)
    centres = np.concatenate([box_c, scene.sphere_centre, cyl_c]).astype(np.float32)
    radii = np.concatenate([box_r, scene.sphere_radius, cyl_r]).astype(np.float32) * np.float32(1.001)
    return centres, radii


def _candidate_pairs(scene: Scene, o: np.ndarray, d: np.ndarray):
    """(ray index, object index) of every ray whose direction lies in an object's bounding cone."""
    centres, radii = bounding_spheres(scene)
    if len(radii) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    to_obj = centres - o
    dist = np.linalg.norm(to_obj, axis=1)
    # a ray meets the bounding sphere only if its angle to the centre is below asin(R / dist)
    cos_limit = np.where(
        dist > radii, np.sqrt(np.maximum(1 - (radii / np.maximum(dist, 1e-9)) ** 2, 0)), -2.0
    )
    # d.u >= |d| cos_limit, without normalising every ray
    cosines = d @ (to_obj / np.maximum(dist, 1e-9)[:, None]).T.astype(np.float32)
    length = np.sqrt(np.einsum("ij,ij->i", d, d))[:, None]
    return np.nonzero(cosines >= length * (cos_limit.astype(np.float32) - np.float32(1e-6)))


def cast_rays(scene: Scene, origin: np.ndarray, directions: np.ndarray, include_room: bool = True):
    """Nearest hit of each ray from the shared `origin` (3,) along `directions` (N,3).

    Returns (t (N,) float32, ids (N,) int32). With the room included every ray from inside
    hits something; with `include_room=False` (shadow rays) misses are t = inf, id 0.
    """
    d = _nonzero(np.asarray(directions, dtype=np.float32).reshape(-1, 3))
    o = np.asarray(origin, dtype=np.float32).reshape(3)
    if include_room:
        t, ids = _room_exit(scene.room_size, o, d)
    else:
        t, ids = np.full(len(d), _INF), np.zeros(len(d), dtype=np.int32)
    t = t.astype(np.float32)
    rays, objs = _candidate_pairs(scene, o, d)
    if len(rays) == 0:
        return t, ids.astype(np.int32)

    nb, ns = len(scene.box_lo), len(scene.sphere_radius)
    t_pair = np.empty(len(rays), dtype=np.float32)
    sel = objs < nb
    j = objs[sel]
    t_pair[sel] = _box_pairs(scene.box_lo[j], scene.box_hi[j], o, d[rays[sel]])
    sel = (objs >= nb) & (objs < nb + ns)
    j = objs[sel] - nb
    t_pair[sel] = _sphere_pairs(scene.sphere_centre[j], scene.sphere_radius[j], o, d[rays[sel]])
    sel = objs >= nb + ns
    j = objs[sel] - nb - ns
    t_pair[sel] = _cylinder_pairs(
        scene.cylinder_xy[j], scene.cylinder_radius[j], scene.cylinder_z[j], o, d[rays[sel]]
    )

    np.minimum.at(t, rays, t_pair)
    # the pair that achieved a ray's minimum names its object (ties: the higher id, deterministically)
    won = (t_pair == t[rays]) & np.isfinite(t_pair)
    ids = ids.astype(np.int32)
    ids[rays[won]] = (scene.first_box_id + objs[won]).astype(np.int32)
    return t, ids

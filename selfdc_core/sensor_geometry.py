"""Sensor geometry: measurements of a LiDAR or a ToF camera turned into a sparse depth map of a camera.

The camera is described as its CameraInfo does (`CameraModel`): a pinhole K or P, or a raw
image with a distortion model (plumb_bob, rational_polynomial, equidistant), projected with
OpenCV so that each depth lands on the raw image's pixel. Conventions as in geometry.py:
metres, 0 = no measurement, pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from selfdc_core.geometry import (
    filter_occluded_points,
    project_points,
    resize_sparse_depth,
    scatter_nearest,
    transform_points,
)

__all__ = [
    "DISTORTION_MODELS",
    "CameraModel",
    "drop_out_of_range",
    "project_cloud",
    "resize_depth_to_camera",
    "sparse_depth_from_points",
]

# CameraInfo.distortion_model -> accepted numbers of coefficients in D (OpenCV's layouts).
DISTORTION_MODELS = {"plumb_bob": (4, 5), "rational_polynomial": (8, 12, 14), "equidistant": (4,)}
MIN_DEPTH = 1e-3  # points nearer than this to the image plane are not projected


@dataclass(frozen=True, eq=False)
class CameraModel:
    """A camera as its CameraInfo describes it.

    matrix      K (3x3) for a raw image, or P (3x4) for a rectified one.
    model, D    'none' (pinhole) or a DISTORTION_MODELS name with its coefficients.
    ignored_distortion  why a non-zero D is not applied (for a one-time warning), else None.
    """

    matrix: np.ndarray
    width: int
    height: int
    model: str = "none"
    D: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ignored_distortion: str | None = None

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.matrix, dtype=np.float64)[:, :3]

    def max_radius(self) -> float:
        """Largest x/z, y/z radius whose image the distortion moves outward monotonically.

        Beyond it a polynomial distortion folds back (points far outside the field of view
        would land on the image), so such points are dropped before projection.
        """
        cached = self.__dict__.get("_max_radius")
        if cached is None:
            k = np.zeros(14)
            k[: self.D.size] = self.D
            r = np.linspace(1e-3, 20.0, 20000)  # 20 = 87 degrees off axis
            r2 = r * r
            with np.errstate(divide="ignore", invalid="ignore"):
                numerator = 1 + k[0] * r2 + k[1] * r2**2 + k[4] * r2**3  # OpenCV order: k1 k2 p1 p2 k3 k4..
                radial = numerator / (1 + k[5] * r2 + k[6] * r2**2 + k[7] * r2**3)
                rd = r * radial
                bad = np.flatnonzero(~(radial > 0) | ~(np.diff(rd, append=np.inf) > 0))
            cached = float(r[bad[0]]) if bad.size else np.inf
            object.__setattr__(self, "_max_radius", cached)
        return cached


def project_cloud(points: np.ndarray, camera: CameraModel, transform: np.ndarray | None = None) -> np.ndarray:
    """(H,W) sparse depth of (N,3) points (moved by `transform`, e.g. T_cam_lidar) in `camera`.

    A pinhole camera uses geometry.project_points (fused transform). With distortion the
    points go through cv2.projectPoints (plumb_bob, rational_polynomial) or
    cv2.fisheye.projectPoints (equidistant); the nearest point wins on each pixel.
    """
    h, w = camera.height, camera.width
    if camera.model == "none":
        return project_points(points, camera.matrix, h, w, min_depth=MIN_DEPTH, transform=transform)
    pts = np.asarray(points, dtype=np.float32)
    if transform is not None:
        pts = transform_points(pts, transform)
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = z > MIN_DEPTH  # NaN compares False
        if camera.model != "equidistant":  # the fisheye model is monotonic in the angle
            keep &= x * x + y * y < (camera.max_radius() * z) ** 2
    pts = np.ascontiguousarray(pts[keep], dtype=np.float64).reshape(-1, 1, 3)
    if pts.shape[0] == 0:
        return np.zeros((h, w), np.float32)
    zero = np.zeros(3)
    if camera.model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(pts, zero, zero, camera.K, camera.D[:4].reshape(4, 1))
    else:
        uv, _ = cv2.projectPoints(pts, zero, zero, camera.K, camera.D)
    u, v = uv[:, 0, 0] + 0.5, uv[:, 0, 1] + 0.5
    inside = np.flatnonzero((u >= 0) & (u < w) & (v >= 0) & (v < h))
    lin = v[inside].astype(np.int64) * w + u[inside].astype(np.int64)
    return scatter_nearest(lin, pts[inside, 0, 2].astype(np.float32), h, w)


def sparse_depth_from_points(
    points: np.ndarray,
    camera: CameraModel,
    transform: np.ndarray | None = None,
    filter_kwargs=None,
    depth_range: tuple[float, float] = (0.0, np.inf),
):
    """(sparse depth of a decoded point cloud in `camera`, depths dropped as out of range, unit hint).

    Depths outside `depth_range` are dropped (drop_out_of_range) before the optional occlusion
    filter (`filter_kwargs` of geometry.filter_occluded_points; None = off), so an absurd
    point can neither reach the network nor hide a real one.
    """
    sparse, dropped, hint = drop_out_of_range(project_cloud(points, camera, transform), *depth_range)
    if filter_kwargs is not None:
        sparse, _ = filter_occluded_points(sparse, **filter_kwargs)
    return sparse, dropped, hint


def resize_depth_to_camera(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """A depth image that is already aligned with the camera (same optical centre and field of view),
    resized to the camera's size without blending; None when its aspect ratio differs.

    This is no reprojection: a ToF image from another viewpoint must be registered first.
    """
    if depth.shape == (height, width):
        return depth
    if abs(depth.shape[1] / depth.shape[0] - width / height) > 0.01 * (width / height):
        return None
    return resize_sparse_depth(depth, height, width)


def drop_out_of_range(sparse: np.ndarray, min_depth: float, max_depth: float):
    """(sparse with depths outside [min_depth, max_depth] set to 0, number dropped, unit hint).

    The hint is a sentence when most measurements are too far and would fit the range in
    millimetres, i.e. the source stored millimetres where metres were expected; else None.
    """
    d = np.asarray(sparse, dtype=np.float32)
    valid = d > 0
    bad = valid & ((d < min_depth) | (d > max_depth))
    dropped = int(np.count_nonzero(bad))
    if not dropped:
        return d, 0, None
    hint = None
    far = d[bad & (d > max_depth)]
    if far.size > 0.5 * np.count_nonzero(valid):
        median = float(np.median(far))
        if min_depth <= median / 1000.0 <= max_depth:
            hint = (f"most sparse depths exceed max_depth={max_depth:g} m (median {median:.1f} m), which "
                    "looks like millimetres read as metres")
    return np.where(bad, np.float32(0.0), d), dropped, hint

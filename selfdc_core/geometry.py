"""Camera geometry shared by the datasets, the rosbag reader and the ROS node.

Conventions: depth in metres, 0 = no measurement, camera optical frame
z forward / x right / y down (REP 103), pixel (u, v) = (column, row) with integer
coordinates at pixel centres.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "as_projection_matrix",
    "check_rigid_transform",
    "crop_intrinsics",
    "filter_occluded_points",
    "flip_intrinsics",
    "make_transform",
    "project_points",
    "resize_sparse_depth",
    "scale_intrinsics",
    "scatter_nearest",
    "transform_points",
]


def make_transform(translation, rotation) -> np.ndarray:
    """4x4 homogeneous transform from a translation (3,) and a rotation.

    `rotation` is a quaternion (x, y, z, w), as in geometry_msgs, or a 3x3 matrix.
    """
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape == (4,):
        norm = np.linalg.norm(r)
        if not np.isfinite(norm) or norm < 1e-9:
            raise ValueError(f"rotation quaternion {r.tolist()} has zero or non-finite norm")
        x, y, z, w = r / norm
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
    elif r.shape != (3, 3):
        raise ValueError(f"rotation must be a quaternion (x,y,z,w) or a 3x3 matrix, got shape {r.shape}")
    T = np.eye(4)
    T[:3, :3] = r
    T[:3, 3] = t
    return T


def check_rigid_transform(T, name: str = "transform", tol: float = 1e-4) -> np.ndarray:
    """T as a 4x4 float64 rigid transform (rotation + translation); ValueError naming `name` otherwise.

    A scale or shear in an extrinsic matrix moves every point; it is never what a sensor mount means.
    """
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {T.shape}")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=tol):
        raise ValueError(f"{name} must have last row 0 0 0 1, got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=tol) or np.linalg.det(R) < 0:
        scales = np.linalg.svd(R, compute_uv=False)
        raise ValueError(
            f"{name} is not rigid: its 3x3 part must be a rotation (orthonormal, det +1), "
            "got singular values "
            f"{np.round(scales, 6).tolist()} and det {np.linalg.det(R):.6g}"
        )
    return T


def transform_points(points: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N,3) points; returns float32 (N,3)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N,3), got {pts.shape}")
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"transform must be 4x4, got {T.shape}")
    return (pts.astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)


def as_projection_matrix(K: np.ndarray) -> np.ndarray:
    """Accept a 3x3 intrinsic matrix K or a 3x4 projection matrix P; return 3x4."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (3, 3):
        return np.hstack([K, np.zeros((3, 1))])
    if K.shape == (3, 4):
        return K
    raise ValueError(f"intrinsics must be 3x3 (K) or 3x4 (P), got {K.shape}")


def scatter_nearest(lin_index: np.ndarray, depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H,W) map of depths scattered to flat pixel indices; where several land on one pixel the nearest
    wins (a z-buffer); 0 elsewhere."""
    buf = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(buf, lin_index, depth.astype(np.float32, copy=False))
    buf[np.isinf(buf)] = 0.0
    return buf.reshape(height, width)


def project_points(
    points_cam: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    min_depth: float = 1e-3,
    transform: np.ndarray | None = None,
) -> np.ndarray:
    """Project (N,3) points in the camera optical frame into an (H,W) float32 sparse depth map.

    With `transform` (4x4, e.g. T_cam_lidar) the points are first moved into the camera frame;
    fusing it here avoids materialising a transformed (N,3) copy on the node's hot path.

    Points behind the camera (z <= min_depth), non-finite points and points outside the
    image are dropped; when several points hit one pixel the nearest wins (z-buffer).
    `K` may be 3x3 or a 3x4 projection matrix P (CameraInfo.p, KITTI P_rect).
    """
    pts = np.asarray(points_cam)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points_cam must have shape (N,3), got {pts.shape}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    P = as_projection_matrix(K)
    if P[0, 0] == 0 or P[1, 1] == 0 or not np.all(np.isfinite(P)):
        raise ValueError(f"intrinsics have zero or non-finite focal length: {P[:2, :3].tolist()}")
    # Work on 1-D columns with a single combined mask: (N,3) @ (3,3) and repeated boolean
    # indexing are several times slower. NaN compares False, so the mask also drops
    # non-finite points.
    x, y, z = (np.ascontiguousarray(pts[:, i], dtype=np.float32) for i in range(3))
    if transform is not None:
        T = np.asarray(transform, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"transform must be a finite 4x4 matrix, got shape {T.shape}")
        xc = T[0, 0] * x + T[0, 1] * y + T[0, 2] * z + T[0, 3]
        yc = T[1, 0] * x + T[1, 1] * y + T[1, 2] * z + T[1, 3]
        z = T[2, 0] * x + T[2, 1] * y + T[2, 2] * z + T[2, 3]
        x, y = xc, yc
    w = P[2, 0] * x + P[2, 1] * y + P[2, 2] * z + P[2, 3]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv_w = 1.0 / w
        u = (P[0, 0] * x + P[0, 1] * y + P[0, 2] * z + P[0, 3]) * inv_w + 0.5
        v = (P[1, 0] * x + P[1, 1] * y + P[1, 2] * z + P[1, 3]) * inv_w + 0.5
    inside = np.flatnonzero((z > min_depth) & (w > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height))
    # u, v >= 0 here, so truncation is the floor: pixel centres sit at integer coordinates.
    lin = v[inside].astype(np.int64) * width + u[inside].astype(np.int64)
    return scatter_nearest(lin, z[inside], height, width)


def filter_occluded_points(
    sparse: np.ndarray, kernel_size: int = 5, rel_threshold: float = 0.15, abs_threshold: float = 0.5
) -> tuple[np.ndarray, int]:
    """Drop LiDAR points that lie behind a closer surface, as seen from the camera.

    The LiDAR sits apart from the camera, so near object edges it sees background that
    the camera cannot: such points project into the foreground object. A point is dropped
    when its depth exceeds the minimum valid depth in its k x k neighbourhood by more than
    both `abs_threshold` metres and `rel_threshold` times that minimum. The relative term
    keeps ground points at grazing angles (whose neighbours are legitimately nearer).

    Returns (filtered copy, number of points removed).
    """
    d = np.asarray(sparse, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"sparse must be (H,W), got shape {d.shape}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    valid = d > 0
    inf_filled = np.where(valid, d, np.inf).astype(np.float32)
    window = np.ones((kernel_size, kernel_size), np.uint8)
    neighbour_min = cv2.erode(inf_filled, window, borderType=cv2.BORDER_REPLICATE)
    gap = d - neighbour_min
    occluded = valid & (gap > abs_threshold) & (gap > rel_threshold * neighbour_min)
    out = d.copy()
    out[occluded] = 0.0
    return out, int(occluded.sum())


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing the image by (sx, sy), with pixel-centre alignment."""
    K = np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[1, 1] *= sy
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def crop_intrinsics(K: np.ndarray, top: int, left: int) -> np.ndarray:
    """Intrinsics after cropping the image at (top, left)."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= left
    K[1, 2] -= top
    return K


def flip_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics after a horizontal flip of an image `width` pixels wide."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] = width - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    return K


def resize_sparse_depth(sparse: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a sparse depth map without inventing or blending values.

    Every measured pixel moves to the pixel that contains its centre in the new grid;
    collisions keep the nearest depth. (Interpolation would mix depth with the 0 holes.)
    """
    d = np.asarray(sparse, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"sparse must be (H,W), got shape {d.shape}")
    v, u = np.nonzero(d > 0)
    sy, sx = height / d.shape[0], width / d.shape[1]
    nu = np.minimum(np.floor((u + 0.5) * sx).astype(np.int64), width - 1)
    nv = np.minimum(np.floor((v + 0.5) * sy).astype(np.int64), height - 1)
    return scatter_nearest(nv * width + nu, d[v, u], height, width)

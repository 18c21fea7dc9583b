"""Readers for the public dataset file formats.

Every reader checks what it got against what the format promises and raises a
`DataError` naming the file and the expectation, so that a bad file in a 90k-frame
dataset surfaces as one readable line instead of a crash deep inside a worker.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DataError",
    "read_depth_png",
    "read_intrinsics_txt",
    "read_kitti_calib",
    "read_nyu_h5",
    "read_rgb_png",
]

# KITTI stores depth as uint16 = metres * 256, 0 = no measurement.
KITTI_DEPTH_SCALE = 256.0


class DataError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format."""


def _require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: missing {what}")
    return path


def read_nyu_h5(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a sparse-to-dense / NLSPN NYU file: `rgb` (3,H,W) uint8 and `depth` (H,W) float metres.

    Returns (rgb uint8 (H,W,3), depth float32 (H,W)); non-finite or negative depth becomes 0 (invalid).
    """
    import h5py  # only NYU needs it; keep `import selfdc_core.data.io` light

    path = _require_file(path, "NYU h5 file")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("rgb", "depth") if k not in f]
            if missing:
                raise DataError(
                    f"{path}: h5 file lacks dataset(s) {missing}; expected keys 'rgb' and 'depth'"
                )
            rgb, depth = f["rgb"][()], f["depth"][()]
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError/KeyError/RuntimeError for damaged files
        raise DataError(f"{path}: cannot read h5 file (corrupt or truncated?): {exc}") from exc
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[0] != 3:
        raise DataError(f"{path}: 'rgb' must be uint8 with shape (3,H,W), got {rgb.dtype} {rgb.shape}")
    if not np.issubdtype(depth.dtype, np.floating) or depth.shape != rgb.shape[1:]:
        raise DataError(
            f"{path}: 'depth' must be float metres with shape {rgb.shape[1:]} (matching rgb), "
            f"got {depth.dtype} {depth.shape}"
        )
    depth = depth.astype(np.float32)
    depth[~(np.isfinite(depth) & (depth > 0))] = 0.0
    return np.ascontiguousarray(rgb.transpose(1, 2, 0)), depth


def _imread(path: Path, what: str) -> np.ndarray:
    path = _require_file(path, what)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: cannot decode {what} (corrupt, truncated or not an image file)")
    return img


def read_depth_png(path: str | Path, scale: float = KITTI_DEPTH_SCALE) -> np.ndarray:
    """Read a KITTI-style depth PNG (single-channel uint16, value / `scale` = metres, 0 = none)."""
    img = _imread(Path(path), "16-bit depth PNG")
    if img.dtype != np.uint16 or img.ndim != 2:
        channels = 1 if img.ndim == 2 else img.shape[2]
        raise DataError(
            f"{path}: depth PNG must be single-channel 16-bit (uint16 = metres * {scale:g}), "
            f"got {img.dtype.itemsize * 8}-bit with {channels} channel(s)"
        )
    return img.astype(np.float32) / np.float32(scale)


def read_rgb_png(path: str | Path) -> np.ndarray:
    """Read an 8-bit colour image as RGB uint8 (H,W,3); an alpha channel is dropped."""
    img = _imread(Path(path), "RGB image")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        channels = 1 if img.ndim == 2 else img.shape[2]
        raise DataError(
            f"{path}: expected an 8-bit colour image (3 channels), "
            f"got {img.dtype.itemsize * 8}-bit with {channels} channel(s)"
        )
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def _check_intrinsics(K: np.ndarray, path: Path, source: str) -> np.ndarray:
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(
            f"{path}: {source} has non-finite values or a non-positive focal length: {K.tolist()}"
        )
    return K


def read_kitti_calib(path: str | Path, camera: int) -> np.ndarray:
    """K (3x3, float64) of rectified camera `camera` (2 or 3) from a KITTI raw `calib_cam_to_cam.txt`.

    Lines look like `P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 ...` (12 numbers,
    row-major 3x4); K is its left 3x3 block.
    """
    path = _require_file(Path(path), "KITTI calibration file calib_cam_to_cam.txt (from the raw data)")
    name = f"P_rect_{camera:02d}"
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read calibration text: {exc}") from exc
    for line in lines:
        label, sep, values = line.partition(":")
        if sep and label.strip() == name:
            try:
                numbers = np.array(values.split(), dtype=np.float64)
            except ValueError as exc:
                raise DataError(f"{path}: {name} has non-numeric values: {values.strip()!r}") from exc
            if numbers.size != 12:
                raise DataError(f"{path}: {name} must have 12 numbers (3x4), got {numbers.size}")
            return _check_intrinsics(numbers.reshape(3, 4)[:, :3].copy(), path, name)
    raise DataError(f"{path}: no '{name}:' line; expected a KITTI raw calib_cam_to_cam.txt")


def read_intrinsics_txt(path: str | Path) -> np.ndarray:
    """K (3x3, float64) from a KITTI depth_selection intrinsics file: 9 numbers, row-major."""
    path = _require_file(Path(path), "intrinsics txt (9 numbers, row-major 3x3)")
    try:
        numbers = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: intrinsics must be 9 numbers (row-major 3x3): {exc}") from exc
    if numbers.size != 9:
        raise DataError(f"{path}: intrinsics must be 9 numbers (row-major 3x3), got {numbers.size}")
    return _check_intrinsics(numbers.reshape(3, 3), path, "intrinsics")

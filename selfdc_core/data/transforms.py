"""Geometric transforms and augmentation applied identically to rgb, depths and segments.

A `PixelTransform` accumulates flips, rotations, resizes and crops as one 3x3 affine map
from source pixels to output pixels, and updates the intrinsics with the shared geometry
functions at every step. Each image is then resampled ONCE from the stored frame, so rgb,
sparse depth, ground truth and pseudo-labels land on exactly the same pixels and K stays
consistent with them. Pixel centres are at integer coordinates (as in geometry.py).

Physical meaning of the augmentations, which is what K describes afterwards:
  * horizontal flip  = the scene mirrored (x -> -x); K via `flip_intrinsics`.
  * rotation         = the scene rolled about the optical axis, i.e. the image rotated about
                       the principal point (warp K R K^-1); K is unchanged.
  * scale s (NLSPN)  = image enlarged by s and depth divided by s (the scene moved s times
                       closer); K via `scale_intrinsics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import cv2
import numpy as np

from selfdc_core.geometry import crop_intrinsics, flip_intrinsics, scale_intrinsics

__all__ = ["AugmentConfig", "AugmentParams", "PixelTransform", "color_jitter", "sample_augmentation"]

# Rounding to the nearest source pixel: the epsilon keeps exact half-pixel positions
# (e.g. a 2x downscale) on one deterministic side despite floating-point noise.
_ROUND_EPS = 1e-6


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation as in NLSPN; every part can be switched off on its own.

    scale_range   uniform scale s; the image is enlarged by s and depth divided by s ((1,1) = off)
    rotation_deg  uniform rotation in [-r, r] degrees about the principal point (0 = off)
    hflip_prob    probability of a horizontal flip (0 = off)
    brightness, contrast, saturation   colour-jitter strengths, factor uniform in [1-x, 1+x] (0 = off)
    """

    scale_range: tuple[float, float] = (1.0, 1.5)
    rotation_deg: float = 5.0
    hflip_prob: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4

    def __post_init__(self):
        lo, hi = self.scale_range
        if not (0 < lo <= hi):
            raise ValueError(f"augment scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.rotation_deg < 90:
            raise ValueError(f"augment rotation_deg must be in [0, 90), got {self.rotation_deg}")
        if not 0 <= self.hflip_prob <= 1:
            raise ValueError(f"augment hflip_prob must be in [0, 1], got {self.hflip_prob}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment {name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def resolve(cls, augment, default: bool) -> AugmentConfig | None:
        """Turn a dataset's `augment` argument (None/bool/dict/AugmentConfig) into a config or None."""
        if augment is None:
            augment = default
        if isinstance(augment, cls):
            return augment
        if isinstance(augment, bool):
            return cls() if augment else None
        if isinstance(augment, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(augment) - known)
            if unknown:
                raise ValueError(f"unknown augment option(s) {unknown}; known: {sorted(known)}")
            opts = dict(augment)
            if "scale_range" in opts:
                opts["scale_range"] = tuple(float(x) for x in opts["scale_range"])
            return cls(**opts)
        raise ValueError(
            f"augment must be None, a bool, a dict or an AugmentConfig, got {type(augment).__name__}"
        )


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the random augmentation parameters."""

    hflip: bool = False
    rotation_deg: float = 0.0
    scale: float = 1.0
    jitter: tuple[float, float, float] = (1.0, 1.0, 1.0)  # brightness, contrast, saturation factors
    jitter_order: tuple[int, int, int] = (0, 1, 2)


def sample_augmentation(cfg: AugmentConfig, rng: np.random.Generator) -> AugmentParams:
    def factor(strength: float) -> float:
        return float(rng.uniform(max(0.0, 1.0 - strength), 1.0 + strength)) if strength > 0 else 1.0

    return AugmentParams(
        hflip=bool(rng.random() < cfg.hflip_prob),
        rotation_deg=float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)) if cfg.rotation_deg > 0 else 0.0,
        scale=float(rng.uniform(*cfg.scale_range)),
        jitter=(factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)),
        jitter_order=tuple(int(i) for i in rng.permutation(3)),
    )


# ITU-R 601 luma weights, as torchvision's grayscale conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def color_jitter(rgb: np.ndarray, params: AugmentParams) -> np.ndarray:
    """Brightness/contrast/saturation jitter of a uint8 (H,W,3) image in a random order.

    Same definitions as torchvision's ColorJitter (brightness scales, contrast blends with the
    mean grey level, saturation blends with the per-pixel grey), computed in float32 with one
    final rounding; numpy here is several times faster than torch on single small images.
    """
    if params.jitter == (1.0, 1.0, 1.0):
        return rgb
    img = rgb.astype(np.float32)
    for i in params.jitter_order:
        f = np.float32(params.jitter[i])
        if f == 1.0:
            continue
        if i == 0:
            img *= f
        else:
            grey = img @ _LUMA
            grey = np.float32(grey.mean()) if i == 1 else grey[..., None]
            img = f * img + (1.0 - f) * grey
        np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img).astype(np.uint8)


class PixelTransform:
    """A chain of flips, rotations, resizes and crops from a (height, width) source frame.

    Builder methods return `self` so a pipeline reads top to bottom; `apply_*` resample arrays.
    `size` is the current (possibly fractional, before the final crop) frame size.
    """

    def __init__(self, K: np.ndarray, height: int, width: int):
        self.K = np.array(K, dtype=np.float64).reshape(3, 3)
        self.source_shape = (int(height), int(width))
        self.size = (float(height), float(width))
        self.A = np.eye(3)  # source pixel (u, v, 1) -> output pixel
        self.depth_factor = 1.0  # multiply depth values by this
        self._nearest_cache = None

    # ---- building ----
    def _then(self, M: np.ndarray) -> PixelTransform:
        self.A = M @ self.A
        self._nearest_cache = None
        return self

    def hflip(self) -> PixelTransform:
        w = self.size[1]
        self.K = flip_intrinsics(self.K, w)
        return self._then(np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))

    def rotate(self, degrees: float) -> PixelTransform:
        """Rotate the image about the principal point (the scene rolls about the optical axis)."""
        if degrees == 0:
            return self
        c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return self._then(self.K @ R @ np.linalg.inv(self.K))

    def resize(self, sx: float, sy: float | None = None) -> PixelTransform:
        """Scale the frame by (sx, sy) with pixel-centre alignment."""
        sy = sx if sy is None else sy
        if sx <= 0 or sy <= 0:
            raise ValueError(f"resize factors must be positive, got {sx}, {sy}")
        self.K = scale_intrinsics(self.K, sx, sy)
        self.size = (self.size[0] * sy, self.size[1] * sx)
        return self._then(np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]]))

    def scale_depth(self, factor: float) -> PixelTransform:
        self.depth_factor *= factor
        return self

    def crop(self, top: float, left: float, height: int, width: int) -> PixelTransform:
        self.K = crop_intrinsics(self.K, top, left)
        self.size = (float(height), float(width))
        return self._then(np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]]))

    def center_crop(self, height: int, width: int) -> PixelTransform:
        self._check_fits(height, width)
        return self.crop((self.size[0] - height) / 2, (self.size[1] - width) / 2, height, width)

    def bottom_crop(self, height: int, width: int) -> PixelTransform:
        """KITTI evaluation crop: the bottom rows (where the LiDAR is), centred horizontally."""
        self._check_fits(height, width)
        return self.crop(self.size[0] - height, (self.size[1] - width) // 2, height, width)

    def _check_fits(self, height: int, width: int) -> None:
        if height > self.size[0] + 1e-6 or width > self.size[1] + 1e-6:
            raise ValueError(
                f"crop {height}x{width} is larger than the frame "
                f"{self.size[0]:g}x{self.size[1]:g} (source {self.source_shape[0]}x{self.source_shape[1]})"
            )

    # ---- applying ----
    @property
    def output_shape(self) -> tuple[int, int]:
        return int(round(self.size[0])), int(round(self.size[1]))

    def _check_source(self, arr: np.ndarray, name: str) -> None:
        if arr.shape[:2] != self.source_shape:
            raise ValueError(
                f"{name} has shape {arr.shape[:2]}, expected the source frame {self.source_shape}"
            )

    def apply_image(self, rgb: np.ndarray) -> np.ndarray:
        """Bilinear resampling; strong downscales are area-filtered first so they do not alias."""
        self._check_source(rgb, "image")
        A, img = self.A, rgb
        linear_scale = math.sqrt(abs(np.linalg.det(A[:2, :2])))
        if linear_scale < 0.75:
            h, w = rgb.shape[:2]
            nh, nw = max(1, round(h * linear_scale)), max(1, round(w * linear_scale))
            img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
            sx, sy = nw / w, nh / h
            pre = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
            A = A @ np.linalg.inv(pre)
        h_out, w_out = self.output_shape
        return cv2.warpAffine(
            img, A[:2], (w_out, h_out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    def _nearest_source(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every output pixel: the nearest source pixel (rows, cols) and whether it exists."""
        if self._nearest_cache is None:
            h_out, w_out = self.output_shape
            inv = np.linalg.inv(self.A)
            v, u = np.mgrid[0:h_out, 0:w_out].astype(np.float64)
            su = np.floor(inv[0, 0] * u + inv[0, 1] * v + inv[0, 2] + 0.5 + _ROUND_EPS).astype(np.int64)
            sv = np.floor(inv[1, 0] * u + inv[1, 1] * v + inv[1, 2] + 0.5 + _ROUND_EPS).astype(np.int64)
            h, w = self.source_shape
            valid = (su >= 0) & (su < w) & (sv >= 0) & (sv < h)
            self._nearest_cache = (np.where(valid, sv, 0), np.where(valid, su, 0), valid)
        return self._nearest_cache

    def apply_nearest(self, arr: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resampling of a dense map (labels, dense depth); no source -> 0."""
        self._check_source(arr, "map")
        rows, cols, valid = self._nearest_source()
        return np.where(valid, arr[rows, cols], np.zeros((), dtype=arr.dtype))

    def apply_dense_depth(self, depth: np.ndarray) -> np.ndarray:
        return (
            self.apply_nearest(depth.astype(np.float32, copy=False)) * np.float32(self.depth_factor)
        ).astype(np.float32)

    def apply_sparse_depth(self, sparse: np.ndarray) -> np.ndarray:
        """Move every measurement to the output pixel its centre maps to (nearest wins on collisions).

        Backward sampling would copy one LiDAR point into several pixels when enlarging; forward
        mapping keeps one measurement per point and never invents values.
        """
        self._check_source(sparse, "sparse depth")
        v, u = np.nonzero(sparse > 0)
        A, (h_out, w_out) = self.A, self.output_shape
        nu = np.floor(A[0, 0] * u + A[0, 1] * v + A[0, 2] + 0.5 + _ROUND_EPS).astype(np.int64)
        nv = np.floor(A[1, 0] * u + A[1, 1] * v + A[1, 2] + 0.5 + _ROUND_EPS).astype(np.int64)
        inside = (nu >= 0) & (nu < w_out) & (nv >= 0) & (nv < h_out)
        buf = np.full(h_out * w_out, np.inf, dtype=np.float32)
        np.minimum.at(buf, nv[inside] * w_out + nu[inside], sparse[v[inside], u[inside]].astype(np.float32))
        buf[np.isinf(buf)] = 0.0
        return buf.reshape(h_out, w_out) * np.float32(self.depth_factor)

    def apply_augmentation(self, params: AugmentParams) -> PixelTransform:
        """The geometric part of `params` in NLSPN's order: flip, rotate, then scale (depth / s)."""
        if params.hflip:
            self.hflip()
        self.rotate(params.rotation_deg)
        if params.scale != 1.0:
            self.resize(params.scale).scale_depth(1.0 / params.scale)
        return self

"""Sparse samplers on a dense depth map: a ToF-style grid sensor and uniform random pixels."""

from __future__ import annotations

import numpy as np


def _check_depth(depth) -> np.ndarray:
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"depth must be a non-empty (H,W) array, got shape {d.shape}")
    return d


def _check_count(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    return int(num_samples)


def tof_grid_shape(num_samples: int, height: int, width: int) -> tuple[int, int]:
    """Rows x columns of the zone grid closest to `num_samples` zones with square-ish cells."""
    n = _check_count(num_samples)
    rows = int(np.clip(round(np.sqrt(n * height / width)), 1, height))
    cols = int(np.clip(round(n / rows), 1, width))
    return rows, cols


def tof_sparse_depth(
    depth,
    num_samples: int = 64,
    max_range: float = 4.0,
    jitter: float = 0.0,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A multi-zone ToF sensor: one reading at the centre of each cell of a regular grid.

    `jitter` (0..1) moves each reading uniformly within that fraction of its cell; `noise_std`
    is relative (ToF error grows with distance); readings beyond `max_range` are lost (0).
    Returns (H,W) float32 with rows*cols readings at most, see `tof_grid_shape`.
    """
    d = _check_depth(depth)
    h, w = d.shape
    rows, cols = tof_grid_shape(num_samples, h, w)
    if not max_range > 0:
        raise ValueError(f"max_range must be > 0, got {max_range}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1], got {jitter}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if rng is None and (jitter > 0 or noise_std > 0):
        raise ValueError("tof_sparse_depth needs an rng when jitter or noise_std is set")
    cell_h, cell_w = h / rows, w / cols
    cv, cu = np.meshgrid((np.arange(rows) + 0.5) * cell_h, (np.arange(cols) + 0.5) * cell_w, indexing="ij")
    if jitter > 0:
        cv = cv + rng.uniform(-0.5, 0.5, size=cv.shape) * jitter * cell_h
        cu = cu + rng.uniform(-0.5, 0.5, size=cu.shape) * jitter * cell_w
    v = np.clip(np.floor(cv), 0, h - 1).astype(np.int64).ravel()
    u = np.clip(np.floor(cu), 0, w - 1).astype(np.int64).ravel()
    values = d[v, u]
    if noise_std > 0:
        values = values * (1.0 + rng.normal(0.0, noise_std, size=values.shape)).astype(np.float32)
    values = np.where((d[v, u] > 0) & (values > 0) & (d[v, u] <= max_range), values, 0.0)
    out = np.zeros_like(d)
    out[v, u] = values
    return out


def random_sparse_depth(depth, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly `num_samples` uniformly random valid pixels (all of them if fewer are valid)."""
    d = _check_depth(depth)
    n = _check_count(num_samples)
    valid = np.flatnonzero(d > 0)
    pick = valid if len(valid) <= n else rng.choice(valid, size=n, replace=False)
    out = np.zeros(d.size, dtype=np.float32)
    out[pick] = d.ravel()[pick]
    return out.reshape(d.shape)

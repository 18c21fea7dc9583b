"""Sparse input sampling from dense depth (the NYU protocol of sparse-to-dense / NLSPN).

Evaluation splits draw their samples from a generator seeded by the file key, so every
run, every worker order and every machine scores the same sparse inputs. Training draws
from torch's generator, which DataLoader seeds per worker and `torch.manual_seed` fixes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["file_rng", "sample_sparse_depth", "training_rng"]


def file_rng(key: str, seed: int = 0) -> np.random.Generator:
    """A generator that depends only on (key, seed); stable across processes (no Python `hash`)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def training_rng() -> np.random.Generator:
    """A fresh generator drawn from torch's RNG (distinct per DataLoader worker, reproducible)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def sample_sparse_depth(depth: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Keep exactly `num_samples` random valid (> 0, finite) pixels of `depth`; 0 elsewhere.

    Raises ValueError when fewer valid pixels exist than requested.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    flat = np.asarray(depth, dtype=np.float32).ravel()
    valid = np.flatnonzero(np.isfinite(flat) & (flat > 0))
    if valid.size < num_samples:
        raise ValueError(f"depth has only {valid.size} valid pixels, cannot sample num_samples={num_samples}")
    chosen = rng.choice(valid, size=num_samples, replace=False)
    sparse = np.zeros_like(flat)
    sparse[chosen] = flat[chosen]
    return sparse.reshape(np.shape(depth))

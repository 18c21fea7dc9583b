"""Where datasets get pseudo-labels: the cache, else an on-the-fly generator, else a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .cache import LabelCache
from .common import check_rgb
from .generators import resolve_generator


class MissingLabelError(FileNotFoundError):
    """A pseudo-label is not cached and no fallback generator is configured."""


def make_masks_command(config_path=None, split=None, cache_root=None) -> str:
    """The `training/make_masks.py` command line that fills the cache."""
    parts = [
        "python training/make_masks.py",
        f"--config {config_path or 'config/<your training config>.yaml'}",
    ]
    if split is not None:
        parts.append(f"--split {split}")
    if cache_root is not None:
        parts.append(f"--cache-root {cache_root}")
    return " ".join(parts) + " [--generator felzenszwalb]"


class SegmentSource:
    """`get(key, rgb)` -> int64 (H,W) labels at the rgb's size.

    cache_root  LabelCache root written by training/make_masks.py (None: no cache).
    fallback    generator run when the cache has no file: a name ("felzenszwalb", "sam", ...),
                a `{name: ..., **cfg}` mapping or a callable; built on first use (None: error).
    config_path, split  only make the missing-label message's command concrete.
    """

    def __init__(self, cache_root=None, fallback=None, config_path=None, split=None):
        if cache_root is None and fallback is None:
            raise ValueError("SegmentSource needs a cache_root, a fallback generator, or both")
        self.cache = LabelCache(cache_root) if cache_root is not None else None
        self._fallback_spec = fallback
        self._fallback = None
        self.config_path, self.split = config_path, split

    def _generator(self):
        if self._fallback is None:
            self._fallback = resolve_generator(self._fallback_spec)
        return self._fallback

    def get(self, key: str, rgb: np.ndarray) -> np.ndarray:
        rgb = check_rgb(rgb, f"rgb of {key!r}")
        if self.cache is not None and self.cache.exists(key):
            labels, origin = self.cache.load(key), self.cache.path(key)
        elif self._fallback_spec is not None:
            labels, origin = self._generator()(rgb), f"fallback generator on {key!r}"
        else:
            expected = self.cache.path(key)
            raise MissingLabelError(
                f"pseudo-label for {key!r} not found: {expected}. Create the cache with\n  "
                f"{make_masks_command(self.config_path, self.split, self.cache.root)}\n"
                "or set segmentation.fallback (e.g. felzenszwalb) to compute labels on the fly."
            )
        if labels.shape != rgb.shape[:2]:
            raise ValueError(
                f"{origin}: label map has shape {labels.shape}, expected {rgb.shape[:2]} (the image's); "
                "was the cache made from another dataset or resolution? Re-run make_masks with --overwrite."
            )
        return labels.astype(np.int64)

    @property
    def cache_root(self) -> Path | None:
        return None if self.cache is None else self.cache.root


def optional_segment_source(cache_root=None, fallback=None) -> SegmentSource | None:
    """The SegmentSource of a dataset, or None when it is configured without pseudo-labels."""
    if cache_root is None and fallback is None:
        return None
    return SegmentSource(cache_root=cache_root, fallback=fallback)

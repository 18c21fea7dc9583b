"""Weight-free fallback generators (scikit-image): they run anywhere, with no download.

Defaults are tuned for 228x304 indoor images (NYU after the paper's crop) and chosen to give a
few dozen regions there; `min_area_fraction` scales with the image so that the same settings
behave alike on the 480x640 raw frames the cache is computed on.
"""

from __future__ import annotations

import numpy as np

from .common import check_rgb
from .relabel import rank_regions_by_area


class FelzenszwalbGenerator:
    """Felzenszwalb-Huttenlocher graph segmentation; every pixel gets a region (no 0)."""

    def __init__(self, scale: float = 300.0, sigma: float = 0.8, min_area_fraction: float = 0.002):
        if scale <= 0 or sigma < 0 or not 0 <= min_area_fraction < 1:
            raise ValueError(
                "felzenszwalb needs scale > 0, sigma >= 0 and 0 <= min_area_fraction < 1, got "
                f"scale={scale}, sigma={sigma}, min_area_fraction={min_area_fraction}"
            )
        self.scale, self.sigma, self.min_area_fraction = scale, sigma, min_area_fraction

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from skimage.segmentation import felzenszwalb

        rgb = check_rgb(rgb)
        min_size = max(1, round(self.min_area_fraction * rgb.shape[0] * rgb.shape[1]))
        regions = felzenszwalb(rgb, scale=self.scale, sigma=self.sigma, min_size=min_size)
        return rank_regions_by_area(regions.astype(np.int64) + 1)


class SlicGenerator:
    """SLIC superpixels (k-means in Lab + position); every pixel gets a region (no 0)."""

    def __init__(self, n_segments: int = 48, compactness: float = 10.0, sigma: float = 1.0):
        if n_segments < 1 or compactness <= 0 or sigma < 0:
            raise ValueError(
                "slic needs n_segments >= 1, compactness > 0 and sigma >= 0, got "
                f"n_segments={n_segments}, compactness={compactness}, sigma={sigma}"
            )
        self.n_segments, self.compactness, self.sigma = n_segments, compactness, sigma

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from skimage.segmentation import slic

        rgb = check_rgb(rgb)
        regions = slic(
            rgb, n_segments=self.n_segments, compactness=self.compactness, sigma=self.sigma, start_label=1
        )
        return rank_regions_by_area(regions.astype(np.int64))

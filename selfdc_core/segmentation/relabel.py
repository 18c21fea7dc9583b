"""Turn masks and arbitrary label maps into region ids ranked by area (1 = largest, 0 = unlabeled)."""

from __future__ import annotations

import numpy as np


def rank_regions_by_area(labels: np.ndarray) -> np.ndarray:
    """Renumber the regions of an integer map so that id 1 is the largest, 2 the next, ...

    0 stays 0 (unlabeled) and takes no rank; ids become consecutive 1..K. Ties in area are
    broken by the original id, so the result is deterministic. Returns int32 (H,W).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer (H,W) map, got {labels.dtype} {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be >= 0 (0 = unlabeled), got minimum {labels.min()}")
    ids, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    # Unlabeled sorts last so that the labelled regions take ranks 1..K.
    keyed = np.where(ids == 0, -1, counts)
    order = np.lexsort((ids, -keyed))
    new_ids = np.empty(len(ids), dtype=np.int32)
    new_ids[order] = np.arange(1, len(ids) + 1, dtype=np.int32)
    new_ids[ids == 0] = 0
    return new_ids[inverse.reshape(-1)].reshape(labels.shape)


def paint_masks(masks: np.ndarray) -> np.ndarray:
    """Flatten overlapping binary masks (N,H,W) into one region map ranked by visible area.

    Masks are painted largest first, so where they overlap the smaller (more specific) mask
    wins; pixels no mask covers are 0. A mask hidden entirely by smaller ones disappears.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N,H,W), got shape {masks.shape}")
    masks = masks.astype(bool, copy=False)
    if masks.shape[0] == 0:
        return np.zeros(masks.shape[1:], dtype=np.int32)
    areas = masks.reshape(len(masks), -1).sum(1)
    # Descending area (stable), so the last covering mask of a pixel is the smallest one.
    ordered = masks[np.argsort(-areas, kind="stable")]
    last_cover = len(ordered) - 1 - ordered[::-1].argmax(axis=0)
    painted = np.where(ordered.any(axis=0), last_cover + 1, 0)
    return rank_regions_by_area(painted)

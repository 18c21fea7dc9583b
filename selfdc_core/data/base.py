"""The common dataset contract and the one function that builds a sample dict.

Every dataset (NYU, KITTI-DC, synthetic, rosbag) is a torch Dataset whose items are:
    rgb       (3,H,W) float32 in [0,1]
    sparse    (1,H,W) float32 metres, 0 = no measurement
    K         (3,3)   float32 intrinsics after every crop and resize
    key       str     stable id, the relative path of the source without extension;
                      the pseudo-label cache mirrors it (see selfdc_core.segmentation)
    segments  (H,W)   int64 pseudo-labels, 0 = unlabeled   (only when configured)
    gt        (1,H,W) float32 metres, 0 = invalid          (only when with_gt=True)

and that also offers, for training/make_masks.py:
    key(i) -> str                      the item's key without loading it
    raw_rgb(i) -> uint8 (H0,W0,3)      the image as stored, before any crop or resize;
                                       pseudo-labels are computed and cached at this size
Every dataset reads its frames as a `FrameSource` and inherits the rest from `FrameDataset`
(see frame_dataset.py).

Ground truth is opt-in: `with_gt` defaults to False on training splits, so the
self-supervised path cannot read it by accident (the trainer also refuses a batch
with `gt` unless it runs the supervised baseline).
"""

from __future__ import annotations

import numpy as np
import torch


def make_sample(
    key: str,
    rgb: np.ndarray,
    sparse: np.ndarray,
    K: np.ndarray,
    segments: np.ndarray | None = None,
    gt: np.ndarray | None = None,
) -> dict:
    """Convert numpy arrays (RGB uint8 HxWx3, depths HxW metres) into a sample dict."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{key}: rgb must be uint8 (H,W,3), got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    for name, arr in (("sparse", sparse), ("gt", gt), ("segments", segments)):
        if arr is not None and arr.shape != (h, w):
            raise ValueError(f"{key}: {name} has shape {arr.shape}, expected {(h, w)} to match rgb")
    sample = {
        "key": key,
        "rgb": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0),
        "sparse": torch.from_numpy(np.ascontiguousarray(sparse, dtype=np.float32))[None],
        "K": torch.from_numpy(np.asarray(K, dtype=np.float32).reshape(3, 3).copy()),
    }
    if segments is not None:
        sample["segments"] = torch.from_numpy(np.ascontiguousarray(segments).astype(np.int64))
    if gt is not None:
        sample["gt"] = torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32))[None]
    return sample

"""SelfDC network: early-fusion encoder-decoder, NLSPN refinement, training-only segmentation decoder."""

from .backbone import imagenet_weights_path
from .nlspn import NonLocalPropagation, normalize_affinity, propagate_once
from .selfdc import SelfDC, build_model

__all__ = [
    "NonLocalPropagation",
    "SelfDC",
    "build_model",
    "imagenet_weights_path",
    "normalize_affinity",
    "propagate_once",
]

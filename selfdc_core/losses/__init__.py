"""SelfDC losses (paper Sections 3.2-3.4), as the paper defines them.

All gradient quantities live on the (H-1)x(W-1) grid (see grid.py). Everything is vectorised
over windows, segments and pixels, and works in float32 and float64.
"""

from .consistency import depth_consistency_loss, supervised_loss
from .gradient_constraint import local_gradient_constraint_loss
from .grid import grid_gradient, same_segment_gradient, segment_boundaries
from .segmentation import IGNORE_INDEX, image_reconstruction_loss, segmentation_loss, segments_to_classes
from .smoothness import (
    edge_aware_smoothness_loss,
    mask_aware_smoothness_loss,
    mask_based_smoothness_loss,
    selective_mask_aware_smoothness_loss,
)
from .total import SelfDCLoss

__all__ = [
    "IGNORE_INDEX",
    "SelfDCLoss",
    "depth_consistency_loss",
    "edge_aware_smoothness_loss",
    "grid_gradient",
    "image_reconstruction_loss",
    "local_gradient_constraint_loss",
    "mask_aware_smoothness_loss",
    "mask_based_smoothness_loss",
    "same_segment_gradient",
    "segment_boundaries",
    "segmentation_loss",
    "segments_to_classes",
    "selective_mask_aware_smoothness_loss",
    "supervised_loss",
]

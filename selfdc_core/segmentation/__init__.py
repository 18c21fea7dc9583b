"""Segmentation pseudo-labels: generators, the 16-bit PNG cache, and the source datasets read.

Every generator is a callable `rgb uint8 (H,W,3) -> int32 (H,W)` built by
`build_generator(name, **cfg)`; 0 always means unlabeled.

How labels become the C classes of the segmentation head (`losses.segments_to_classes`):
pixel label 0 is ignored, label r >= 1 becomes class min(r, C) - 1.
- Class-agnostic generators (sam, felzenszwalb/fallback, slic, oneformer panoptic) return
  region ids RANKED BY AREA (1 = largest). So the C-1 largest regions of an image each get
  their own class and all smaller regions share class C-1. The classes mean "k-th largest
  region", which is all the mask-consistency objective needs.
- OneFormer semantic returns class id + 1, so pixel classes keep their meaning; set
  C >= number of classes + 1 or the highest classes merge into class C-1.

Labels are cached by `LabelCache` as `<cache_root>/<dataset key>.png`, written by
`training/make_masks.py`, and read by datasets through `SegmentSource`.
"""

from .cache import LabelCache
from .common import MissingWeightsError
from .generators import GENERATOR_NAMES, build_generator, resolve_generator
from .make_masks import MakeMasksSummary, make_masks, parse_shard, shard_indices
from .relabel import paint_masks, rank_regions_by_area
from .source import MissingLabelError, SegmentSource, make_masks_command, optional_segment_source

__all__ = [
    "GENERATOR_NAMES",
    "LabelCache",
    "MakeMasksSummary",
    "MissingLabelError",
    "MissingWeightsError",
    "SegmentSource",
    "build_generator",
    "make_masks",
    "make_masks_command",
    "optional_segment_source",
    "paint_masks",
    "parse_shard",
    "rank_regions_by_area",
    "resolve_generator",
    "shard_indices",
]

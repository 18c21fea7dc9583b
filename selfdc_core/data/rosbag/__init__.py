"""Recorded rosbag2 files (camera + LiDAR/ToF) as a self-supervised training set (field adaptation).

`RosbagDataset` extracts a bag once into an indexed sample cache (`extract_bag`), pairing and
projecting messages with the node's synchroniser and geometry; `write_synthetic_bag` records
synthetic scenes as a real rosbag2 (tests, benchmark, examples).
"""

from importlib import import_module

from .dataset import RosbagDataset, time_split
from .extract import ExtractionError, extract_bag
from .reader import BagError, open_bag
from .settings import ExtractionSettings

__all__ = [
    "BagError",
    "ExtractionError",
    "ExtractionSettings",
    "RosbagDataset",
    "SyntheticBag",
    "extract_bag",
    "open_bag",
    "time_split",
    "write_synthetic_bag",
]


def __getattr__(name):
    # Lazy, so that `python -m selfdc_core.data.rosbag.writer` does not import itself twice.
    if name in ("SyntheticBag", "write_synthetic_bag"):
        return getattr(import_module(".writer", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

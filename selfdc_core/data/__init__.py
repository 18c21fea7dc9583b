"""Datasets in the common format of `selfdc_core.data.base`.

Names are imported lazily so that `import selfdc_core.data` stays cheap and a missing
optional dependency of one dataset does not break the others.
"""

from importlib import import_module

_EXPORTS = {
    "NYUDepthV2": ".nyu",
    "KITTIDepthCompletion": ".kitti",
    "SyntheticScenes": ".synthetic",
    "RosbagDataset": ".rosbag",
    "make_sample": ".base",
    "FrameDataset": ".frame_dataset",
    "FrameSource": ".frame_dataset",
    "RawFrame": ".frame_dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Build a dataset from a config spec: `{name: nyu|kitti|synthetic|rosbag, **kwargs}`.

The factory adds what the consumer decides rather than the dataset spec:
    split             "train"/"val", when the class takes `split` and the spec does not set it;
    with_gt           the consumer's `with_gt` unless the spec sets it (default: the validation
                      split has ground truth, the training split has none). `with_gt=False` on
                      the training split is a requirement: a spec asking for GT there is an error;
    segments_root,    from `segments` (the config's `segmentation` section: cache_root, fallback)
    segment_fallback  when the consumer needs pseudo-labels: on the training split, and on a
                      split without ground truth (its losses are then the only score);
    bag               the top-level `bag=` of the config, for `rosbag` specs.
Errors raised by the dataset classes (a missing root with the expected layout, missing
pseudo-labels naming `training/make_masks.py`) surface unchanged.
"""

from __future__ import annotations

import inspect
from importlib import import_module

from torch.utils.data import ConcatDataset

DATASETS = {
    "nyu": "NYUDepthV2",
    "kitti": "KITTIDepthCompletion",
    "synthetic": "SyntheticScenes",
    "rosbag": "RosbagDataset",
}
SPLITS = ("train", "val")
_INJECTED = ("split", "with_gt", "segments_root", "segment_fallback", "bag")


def dataset_class(name: str):
    """The dataset class registered under `name`."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset name {name!r}; valid names: {sorted(DATASETS)}")
    return getattr(import_module("selfdc_core.data"), DATASETS[name])


def _accepted(cls) -> tuple[set[str], bool]:
    params = inspect.signature(cls.__init__).parameters
    has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {n for n in params if n != "self"}, has_var_kw


def check_dataset_spec(spec: dict | list, where: str = "data") -> None:
    """Raise ValueError for a spec without a known `name` or with kwargs its class does not take."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"config key {where!r} is an empty list; give at least one dataset spec")
        for j, item in enumerate(spec):
            check_dataset_spec(item, f"{where}[{j}]")
        return
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(
            f"config key {where!r} must be a mapping with a 'name' ({sorted(DATASETS)}), got {spec!r}"
        )
    if spec["name"] not in DATASETS:
        raise ValueError(
            f"config key '{where}.name': unknown dataset {spec['name']!r}; valid: {sorted(DATASETS)}"
        )
    accepted, has_var_kw = _accepted(dataset_class(spec["name"]))
    if has_var_kw:
        return
    bad = [k for k in spec if k != "name" and k not in accepted]
    if bad:
        names = ", ".join(f"{where}.{k}" for k in bad)
        raise ValueError(
            f"unknown config key(s) {names} for dataset {spec['name']!r}; valid keys: {sorted(accepted)}"
        )


def dataset_kwargs(
    spec: dict,
    split: str,
    with_gt: bool | None = None,
    segments: dict | None = None,
    bag: str | None = None,
) -> dict:
    """The kwargs `build_dataset` passes to the class (spec kwargs plus the consumer's needs)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    check_dataset_spec(spec, f"data.{split}")
    accepted, has_var_kw = _accepted(dataset_class(spec["name"]))
    takes = (lambda k: True) if has_var_kw else accepted.__contains__
    kwargs = {k: v for k, v in spec.items() if k != "name"}

    if takes("split"):
        kwargs.setdefault("split", split)
    if split == "train" and with_gt is False and kwargs.get("with_gt"):
        raise ValueError(
            "data.train.with_gt is true but train.mode is self_supervised: self-supervised training "
            "reads no ground truth (set train.mode=supervised for the supervised baseline)"
        )
    if takes("with_gt"):
        kwargs.setdefault("with_gt", split == "val" if with_gt is None else bool(with_gt))
    if segments is not None and (split == "train" or not kwargs.get("with_gt", False)):
        if takes("segments_root") and segments.get("cache_root") is not None:
            kwargs.setdefault("segments_root", segments["cache_root"])
        if takes("segment_fallback") and segments.get("fallback") is not None:
            kwargs.setdefault("segment_fallback", segments["fallback"])
    if bag is not None and spec["name"] == "rosbag":
        kwargs["bag"] = bag
    return kwargs


def build_dataset(
    data_cfg: dict,
    split: str,
    with_gt: bool | None = None,
    segments: dict | None = None,
    bag: str | None = None,
):
    """Instantiate `data_cfg[split]` (the `data` section of a training config).

    `with_gt` and `segments` say what the consumer needs (see the module docstring); `bag` is the
    config's top-level `bag`. Returns None when the split is not configured (e.g. `data.val: null`).
    A list of specs gives their concatenation (e.g. a field bag mixed with the original data).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    spec = data_cfg.get(split)
    if spec is None:
        return None
    specs = spec if isinstance(spec, list) else [spec]
    datasets = [dataset_class(s["name"])(**dataset_kwargs(s, split, with_gt, segments, bag)) for s in specs]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)

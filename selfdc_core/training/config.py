"""Training configuration: YAML files with inheritance, command-line overrides and strict keys.

A config file is a YAML mapping with the sections of `DEFAULTS` plus:
    base: other.yaml      (optional) inherit from another file, path relative to this one;
                          mappings merge key by key, everything else is replaced.
    model:                kwargs of `selfdc_core.models.build_model` (checked against `SelfDC`)
    loss:                 kwargs of `selfdc_core.losses.SelfDCLoss` (checked against its signature)
    data.train/data.val:  {name: nyu|kitti|synthetic|rosbag, **dataset kwargs} (checked against
                          the dataset class; see `selfdc_core.data.factory`)

Overrides are `a.b.c=value` strings whose value is parsed as YAML (`train.epochs=5`,
`optim.betas=[0.9,0.99]`, `data.val=null`, `init=runs/nyu/best.pt`). A key that exists nowhere
is an error naming the key and the valid keys; it is never silently ignored.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import yaml

# Sections with a fixed set of keys. `None` as a default means "any type".
DEFAULTS: dict = {
    "init": None,  # checkpoint whose model weights start the run (fine-tuning)
    "bag": None,  # rosbag2 path, handed to `rosbag` dataset specs (config/finetune_rosbag.yaml)
    "model": {"backbone": "resnet34"},
    "data": {"train": None, "val": None, "max_depth": 10.0},
    "loss": {},
    "optim": {"lr": 1.0e-3, "betas": [0.9, 0.999], "weight_decay": 0.0, "grad_clip": None},
    # The paper states no schedule; we follow NLSPN's defaults (epochs 20, decay '10,15,20',
    # gamma '1.0,0.2,0.04'): the lr multiplier is factors[i] from milestones[i-1] on, with a
    # linear warm-up over the first epoch.
    "schedule": {"milestones": [10, 15], "factors": [1.0, 0.2, 0.04], "warmup_epochs": 1.0},
    "train": {
        "mode": "self_supervised",  # or "supervised": L1 + L2 on dense GT (the baseline)
        "epochs": 20,
        "max_steps": None,  # stop after this many optimiser steps (None: run all epochs)
        "batch_size": 8,
        "val_batch_size": None,  # None: same as batch_size
        "workers": 4,
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "amp": True,  # mixed precision: float16 on CUDA, bfloat16 on CPUs with AMX or AVX512-BF16
        "channels_last": True,  # NHWC convolutions: faster with cuDNN and with oneDNN on CPU
        "out_dir": "runs/default",  # checkpoints, config.yaml, TensorBoard logs
        "seed": 0,
        "eval_every": None,  # validate every N steps (None: at the end of each epoch)
        "max_val_batches": None,  # cap on validation batches (None: the whole split)
        "log_every": 20,  # scalar logging period in steps
        "num_images": 4,  # example images per validation in TensorBoard
        "max_nan_batches": 20,  # stop after this many consecutive non-finite losses
        "progress": True,  # tqdm progress bars
        "sanity_steps": 10,  # warn if modules get no gradient / the loss is 0 in these first steps (0: off)
    },
    "segmentation": {
        "generator": "fallback",  # generator training/make_masks.py runs (sam | oneformer | fallback)
        "generator_kwargs": {},
        "cache_root": None,  # pseudo-label cache read during training (16-bit PNGs)
        "fallback": None,  # generator run on the fly when a label is missing (None: error)
    },
}

_FREE_MAPPINGS = {("segmentation", "generator_kwargs")}
TRAIN_MODES = ("self_supervised", "supervised")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a float (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_value(text: str):
    """Parse an override value with YAML typing (`5` -> int, `1e-3` -> float, `null` -> None)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config must be a YAML mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Return `base` updated by `update`; nested mappings merge, other values are replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ValueError(f"config inheritance cycle: {chain}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"{path}: 'base' must be a file name, got {base!r}")
    return deep_merge(_load_with_bases(path.parent / base, (*seen, path)), data)


def apply_override(cfg: dict, override: str) -> None:
    """Apply one `a.b.c=value` override in place (keys are checked later by `validate_config`)."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like key=value (e.g. train.epochs=5)")
    dotted, text = override.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ValueError(f"override {override!r}: empty key in {dotted!r}")
    node = cfg
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None and key in node:
            child = node[key] = {}
        if not isinstance(child, dict):
            path = ".".join(keys[: depth + 1])
            valid = sorted(node) if isinstance(node, dict) else []
            raise ValueError(f"unknown config key {path!r} in override {override!r}; valid keys: {valid}")
        node = child
    node[keys[-1]] = parse_value(text)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Load a training config: DEFAULTS <- base files <- `path` <- overrides; validated."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        cfg = deep_merge(cfg, _load_with_bases(Path(path)))
    for override in overrides:
        apply_override(cfg, override)
    validate_config(cfg)
    return cfg


def config_from_dict(update: dict) -> dict:
    """DEFAULTS merged with `update` and validated (for code and tests that build configs)."""
    cfg = deep_merge(copy.deepcopy(DEFAULTS), update)
    validate_config(cfg)
    return cfg


def save_config(cfg: dict, path: str | Path) -> None:
    """Write the exact merged config as YAML (the run's record, loadable by `load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None)
    tmp.replace(path)


def _unknown(where: str, key: str, valid) -> ValueError:
    name = f"{where}.{key}" if where else key
    return ValueError(f"unknown config key {name!r}; valid keys: {sorted(valid)}")


def _check_fixed(where: str, value: dict, defaults: dict) -> None:
    for key, v in value.items():
        if key not in defaults:
            raise _unknown(where, key, defaults)
        default = defaults[key]
        name = f"{where}.{key}" if where else key
        if default is None or v is None:
            continue
        if (where, key) in _FREE_MAPPINGS:
            if not isinstance(v, dict):
                raise ValueError(f"config key {name!r} must be a mapping, got {v!r}")
            continue
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, float):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif isinstance(default, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(default, dict):
            ok = isinstance(v, dict)
        else:
            ok = isinstance(v, type(default))
        if not ok:
            raise ValueError(f"config key {name!r} must be {type(default).__name__}, got {v!r}")


def check_kwargs(where: str, kwargs: dict, fn, skip: tuple[str, ...] = ()) -> None:
    """Raise ValueError naming every key of `kwargs` that `fn` does not accept."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    bad = [k for k in kwargs if k not in valid and k not in skip]
    if bad:
        names = ", ".join(f"{where}.{k}" for k in bad)
        raise ValueError(f"unknown config key(s) {names}; valid keys: {sorted(valid)}")


def validate_config(cfg: dict) -> None:
    """Check every key and the obvious types; raise ValueError naming the first offender."""
    for key, value in cfg.items():
        if key not in DEFAULTS:
            raise _unknown("", key, DEFAULTS)
        if isinstance(DEFAULTS[key], dict) and not isinstance(value, dict):
            raise ValueError(f"config section {key!r} must be a mapping, got {value!r}")
    for section in ("optim", "schedule", "train", "segmentation"):
        _check_fixed(section, cfg[section], DEFAULTS[section])
    for key in ("init", "bag"):
        if cfg[key] is not None and not isinstance(cfg[key], str):
            raise ValueError(f"config key {key!r} must be a path string or null, got {cfg[key]!r}")

    data = cfg["data"]
    for key in data:
        if key not in DEFAULTS["data"]:
            raise _unknown("data", key, DEFAULTS["data"])
    if data["train"] is None:
        raise ValueError("config key 'data.train' is required: {name: nyu|kitti|synthetic|rosbag, ...}")
    from selfdc_core.data.factory import check_dataset_spec

    for split in ("train", "val"):
        if data[split] is not None:
            check_dataset_spec(data[split], f"data.{split}")

    train = cfg["train"]
    if train["mode"] not in TRAIN_MODES:
        raise ValueError(f"config key 'train.mode' must be one of {TRAIN_MODES}, got {train['mode']!r}")
    for key in ("epochs", "batch_size"):
        if train[key] < 1:
            raise ValueError(f"config key 'train.{key}' must be >= 1, got {train[key]}")
    sched = cfg["schedule"]
    if len(sched["factors"]) != len(sched["milestones"]) + 1:
        raise ValueError(
            "config keys 'schedule.factors' and 'schedule.milestones': factors needs one entry more "
            f"than milestones (the factor before the first milestone), got {sched['factors']} and "
            f"{sched['milestones']}"
        )
    if list(sched["milestones"]) != sorted(sched["milestones"]):
        raise ValueError(f"config key 'schedule.milestones' must be increasing, got {sched['milestones']}")

    from selfdc_core.losses import SelfDCLoss
    from selfdc_core.models import SelfDC

    check_kwargs("model", cfg["model"], SelfDC.__init__)
    try:  # SelfDCLoss validates its own keys and values; building it is cheap
        SelfDCLoss(**cfg["loss"])
    except ValueError as exc:
        raise ValueError(f"config section 'loss': {exc}") from exc

"""Shared fixtures.

`synthetic_checkpoint` (session): a SelfDC checkpoint trained self-supervised, through the real
trainer, on the synthetic frames that the inference and ROS node tests then complete (the
frames of `synthetic_test_scenes`: a 16-beam LiDAR and an 8x8-zone ToF view of the same rooms).
Self-supervised training reads no ground truth, so fitting the frames the tests score is
test-time training, not leakage. It lets a model trained in about a minute of CPU beat a
nearest-neighbour fill, which is what those tests check: that the node and the inference API
feed the network correctly (alignment, scale, resizing). How well SelfDC generalises to unseen
scenes is measured by the demo, the report (docs/synthetic_report.md) and the benchmarks.

`tiny_train_config(out_dir, **sections)`: a minimal, fast training config dict (tests merge
their own changes into it).

`load_tool(name)`: a command-line script of training/ imported as a module (to call its main()).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from selfdc_core.training.config import config_from_dict, deep_merge

# The frames of the session checkpoint; the tests that score it complete the same ones.
SYNTHETIC_CKPT_SIZE = (48, 64)
SYNTHETIC_CKPT_SCENES = {"num_frames": 3, "seed": 11, "height": 48, "width": 64, "environment": "room"}
SYNTHETIC_CKPT_SENSORS = {
    "lidar": {"sparse": "lidar", "lidar_beams": 16},
    "tof": {"sparse": "tof", "num_samples": 64, "tof_max_range": 20.0},  # an 8x8 multizone ToF
}


def synthetic_test_scenes(sensor: str):
    """The SyntheticScenes that `synthetic_checkpoint` was trained on, seen by `sensor` (lidar/tof)."""
    from selfdc_core.data import SyntheticScenes

    return SyntheticScenes(**SYNTHETIC_CKPT_SCENES, **SYNTHETIC_CKPT_SENSORS[sensor], cache=True)


def load_tool(name: str):
    """training/<name>.py as a module, under the name `<name>_cli`."""
    path = Path(__file__).resolve().parents[1] / "training" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_cli", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def make_tiny_config(out_dir, **sections) -> dict:
    """A validated config for a seconds-long CPU run on 48x64 synthetic frames."""
    base = {
        "model": {"backbone": "resnet18", "num_classes": 8, "prop_iterations": 1},
        "data": {
            "train": {"name": "synthetic", "num_frames": 8, "seed": 0, "height": 32, "width": 48,
                      "sparse": "random", "num_samples": 60, "segments": "oracle", "cache": True},
            "val": None,
        },
        "schedule": {"milestones": [1], "factors": [1.0, 0.5], "warmup_epochs": 0.5},
        "train": {"epochs": 2, "batch_size": 2, "workers": 0, "out_dir": str(out_dir), "log_every": 1,
                  "progress": False, "seed": 0},
    }
    return config_from_dict(deep_merge(base, sections))


@pytest.fixture
def tiny_train_config():
    return make_tiny_config


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory) -> Path:
    """Path of a checkpoint trained self-supervised on the test frames (see module docstring)."""
    from selfdc_core.training.trainer import Trainer

    out = tmp_path_factory.mktemp("synthetic_checkpoint")
    train = [
        {"name": "synthetic", **SYNTHETIC_CKPT_SCENES, **sensor, "segments": "oracle", "cache": True}
        for sensor in SYNTHETIC_CKPT_SENSORS.values()
    ]
    cfg = config_from_dict({
        "model": {"backbone": "resnet18", "num_classes": 16, "prop_iterations": 6},
        "data": {"train": train, "val": None, "max_depth": 10.0},
        "optim": {"lr": 1.0e-3},
        "schedule": {"milestones": [30], "factors": [1.0, 0.3], "warmup_epochs": 0.0},
        "train": {"epochs": 40, "batch_size": 3, "workers": 0, "out_dir": str(out), "seed": 0,
                  "log_every": 20, "progress": False,
                  "amp": False},  # float32: the same checkpoint on every CPU, with or without bfloat16 units
    })
    result = Trainer(cfg).fit()
    assert result.status == "finished", result
    return result.last_checkpoint

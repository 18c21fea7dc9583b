"""Shared fixtures.

`synthetic_checkpoint` (session): a SelfDC checkpoint trained self-supervised through the real
trainer on rendered synthetic rooms (simulated 32-beam LiDAR, oracle segments), 42 steps of 4
frames at 64x80 (SYNTHETIC_CKPT_SIZE / SYNTHETIC_CKPT_DATA describe its inputs), about a minute
on an idle 2-core CPU. test_inference checks that it beats a nearest-neighbour fill on unseen
synthetic rooms, which the ROS node tests rely on.

`tiny_train_config(out_dir, **sections)`: a minimal, fast training config dict (tests merge
their own changes into it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfdc_core.training.config import config_from_dict, deep_merge

# Frame size and sensor of the session checkpoint; tests that score it use the same.
SYNTHETIC_CKPT_SIZE = (64, 80)
SYNTHETIC_CKPT_DATA = {"name": "synthetic", "height": 64, "width": 80, "sparse": "lidar",
                       "lidar_beams": 32, "environment": "room", "segments": "oracle", "cache": True}


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
    """Path of a checkpoint trained a few dozen steps on SyntheticScenes (see module docstring)."""
    from selfdc_core.training.trainer import Trainer

    out = tmp_path_factory.mktemp("synthetic_checkpoint")
    cfg = config_from_dict({
        "model": {"backbone": "resnet18", "num_classes": 16, "prop_iterations": 6},
        "data": {
            "train": {**SYNTHETIC_CKPT_DATA, "num_frames": 24, "seed": 0},
            "val": None,
            "max_depth": 10.0,
        },
        "optim": {"lr": 2.0e-3},
        "schedule": {"milestones": [5], "factors": [1.0, 0.3], "warmup_epochs": 0.2},
        "train": {"epochs": 7, "batch_size": 4, "workers": 0, "out_dir": str(out), "seed": 0,
                  "log_every": 10, "progress": False},
    })
    result = Trainer(cfg).fit()
    assert result.status == "finished", result
    return result.last_checkpoint

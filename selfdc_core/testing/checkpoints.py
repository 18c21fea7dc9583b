"""Untrained SelfDC checkpoints in the real file format, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path


def untrained_checkpoint(path: str | Path, backbone: str = "resnet18", num_classes: int = 4,
                         prop_iterations: int = 2, seed: int = 0) -> Path:
    """Build a freshly initialised SelfDC (seeded) and save it as a checkpoint at `path`."""
    import torch

    from selfdc_core.model_io import save_checkpoint
    from selfdc_core.models import build_model

    torch.manual_seed(seed)
    model = build_model(
        {"backbone": backbone, "num_classes": num_classes, "prop_iterations": prop_iterations}
    )
    state = {"model_config": model.config, "model": model.state_dict(), "config": {}, "epoch": 0, "step": 0}
    return save_checkpoint(path, state)

"""Training library behind training/train.py: config, checkpoints, data loading, the trainer, DDP."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import DEFAULTS, load_config, save_config

__all__ = [
    "DEFAULTS",
    "CheckpointError",
    "Trainer",
    "load_checkpoint",
    "load_config",
    "save_checkpoint",
    "save_config",
]


def __getattr__(name):
    # The trainer pulls in models, losses and datasets; import it only when asked for.
    if name in ("Trainer", "FitResult", "TrainingDiverged"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

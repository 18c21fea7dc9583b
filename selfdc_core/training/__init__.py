"""Training library behind training/train.py: config, data loading, the trainer, DDP.

Checkpoint files are read and written by `selfdc_core.model_io`."""

from .config import DEFAULTS, load_config, save_config

__all__ = [
    "DEFAULTS",
    "Trainer",
    "load_config",
    "save_config",
]


def __getattr__(name):
    # The trainer pulls in models, losses and datasets; import it only when asked for.
    if name in ("Trainer", "FitResult", "TrainingDiverged"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

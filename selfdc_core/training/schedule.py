"""Optimiser and learning-rate schedule from the `optim` and `schedule` config sections.

Adam with betas (0.9, 0.999) and lr 1e-3 are the paper's. The paper gives no schedule, so the
defaults follow NLSPN (the refinement network SelfDC builds on): 20 epochs, lr x1.0 until epoch
10, x0.2 until 15, x0.04 after (NLSPN's `--decay 10,15,20 --gamma 1.0,0.2,0.04`), with a linear
warm-up over the first epoch as NLSPN does. The schedule advances every optimiser step, so a
resumed run continues mid-epoch on exactly the same lr.
"""

from __future__ import annotations

import bisect

import torch


def build_optimizer(model: torch.nn.Module, optim_cfg: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(
        params,
        lr=float(optim_cfg["lr"]),
        betas=tuple(float(b) for b in optim_cfg["betas"]),
        weight_decay=float(optim_cfg["weight_decay"]),
    )


def lr_factor(step: int, steps_per_epoch: int, sched_cfg: dict) -> float:
    """Multiplier of the base lr before optimiser step `step` (0-based)."""
    epoch = step / max(steps_per_epoch, 1)
    factor = float(sched_cfg["factors"][bisect.bisect_right(sched_cfg["milestones"], epoch)])
    warmup_steps = float(sched_cfg["warmup_epochs"]) * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor


def build_scheduler(optimizer, sched_cfg: dict, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR; its state (the step count) goes into checkpoints."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, sched_cfg)
    )

"""The learner copy of the model and one guarded optimiser step with the training objective.

The learner keeps the segmentation head that the loss needs (taken from the training checkpoint
when it has one, else freshly initialised, as fine-tuning does). A step whose loss or gradient is
not finite changes nothing; weights that turned non-finite are restored from the published ones.

Optional L2-SP (Li et al., 2018): `l2sp_weight / 2 * sum ||w - w_start||^2` over every weight the
inference model shares, where w_start are the weights adaptation started from. It limits how far
a long run drifts from what the model knew (forgetting), at the price of slower adaptation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from selfdc_core.devices import autocast_dtype
from selfdc_core.losses import SelfDCLoss
from selfdc_core.training.schedule import build_optimizer

SEG_PREFIX = "seg_decoder."


@dataclass
class StepResult:
    status: str  # ok | nonfinite_loss | nonfinite_grad | nonfinite_weights
    loss: float


def build_learner_model(inference_model: nn.Module, checkpoint_weights: dict | None, with_head: bool):
    """A trainable copy of `inference_model` (a SelfDC without its segmentation head), plus the head
    when `with_head`: from `checkpoint_weights` when they hold one, else freshly initialised."""
    from selfdc_core.models import build_model

    config = dict(inference_model.config)
    config.update(include_segmentation=with_head, pretrained=False)
    model = build_model(config)
    weights = {k: v for k, v in model.state_dict().items() if k.startswith(SEG_PREFIX)}
    if with_head and checkpoint_weights is not None:
        weights.update({k: v for k, v in checkpoint_weights.items() if k.startswith(SEG_PREFIX)})
    weights.update(inference_model.state_dict())
    model.load_state_dict(weights, strict=True)
    return model


class Learner:
    def __init__(self, model: nn.Module, loss_cfg: dict, optim_cfg: dict, l2sp_weight: float,
                 device: torch.device):
        self.model = model.to(device).train()
        self.device = device
        # bfloat16 autocast where the CPU runs it natively (about 2x faster steps, so the learner takes
        # less of the CPU from inference); float32 elsewhere, since float16 would need loss scaling.
        self.autocast = torch.bfloat16 if autocast_dtype("auto", device) == torch.bfloat16 else None
        self.loss_fn = SelfDCLoss(**loss_cfg)
        self.optim_cfg = dict(optim_cfg)
        self.optimizer = build_optimizer(self.model, self.optim_cfg)
        self.l2sp_weight = float(l2sp_weight)
        self.start = {k: v.detach().clone() for k, v in self._shared_parameters()} if l2sp_weight else {}
        self._head = self._head_state()  # the segmentation head as of the last published weights

    def _head_state(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k.startswith(SEG_PREFIX)}

    def accept(self) -> None:
        """The current weights were published: a later rollback returns here."""
        self._head = self._head_state()

    @staticmethod
    def needs_head(loss_cfg: dict) -> bool:
        """Whether the objective reads the segmentation logits (the cross-entropy term)."""
        loss = SelfDCLoss(**loss_cfg)
        return loss.config["w_seg"] > 0

    def _shared_parameters(self):
        return ((k, p) for k, p in self.model.named_parameters() if not k.startswith(SEG_PREFIX))

    def _penalty(self) -> torch.Tensor | None:
        if not self.start:
            return None
        total = sum((p - self.start[k]).pow(2).sum() for k, p in self._shared_parameters())
        return 0.5 * self.l2sp_weight * total

    def step(self, batch: dict) -> StepResult:
        """One optimiser step on `batch` (rgb, sparse, segments); returns what happened."""
        self.model.train()
        # Batch-norm statistics move in the forward pass: a dropped step must not keep them either.
        buffers = {k: v.detach().clone() for k, v in self.model.named_buffers()}
        with torch.autocast(self.device.type, dtype=self.autocast,
                            enabled=self.autocast is not None):
            outputs = self.model(batch["rgb"], batch["sparse"])
        total, _ = self.loss_fn({k: v.float() for k, v in outputs.items()}, batch)
        penalty = self._penalty()
        if penalty is not None:
            total = total + penalty
        value = float(total.detach())
        if not math.isfinite(value):
            self._drop_step(buffers)
            return StepResult("nonfinite_loss", value)
        total.backward()
        clip = self.optim_cfg["grad_clip"]
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        if not math.isfinite(float(norm)):
            self._drop_step(buffers)
            return StepResult("nonfinite_grad", value)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not self.weights_finite():
            return StepResult("nonfinite_weights", value)
        return StepResult("ok", value)

    def _drop_step(self, buffers: dict) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, value in self.model.named_buffers():
                value.copy_(buffers[name])

    def weights_finite(self) -> bool:
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def inference_state(self) -> dict:
        """CPU copies of the weights the inference model has (everything but the segmentation head)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                if not k.startswith(SEG_PREFIX)}

    def reset_to(self, inference_state: dict) -> None:
        """Return to published weights (after a rejected update); the optimiser starts afresh."""
        weights = {**self._head, **inference_state}
        with torch.no_grad():
            self.model.load_state_dict(weights, strict=True)
        self.optimizer = build_optimizer(self.model, self.optim_cfg)

"""What a training run optimises, and what that asks of the data.

An objective computes the loss from the model outputs and a batch, and says what it needs:
    reads_gt            the training split carries dense ground truth (`gt`); when False it
                        must carry none (self-supervised training never sees it);
    needs_segments      batches must carry segmentation pseudo-labels (`segments`);
    trains_seg_branch   the model's segmentation decoder receives a gradient.
The trainer and the data builders ask these; `train.mode` is read once, by `build_objective`.
"""

from __future__ import annotations

import torch

from selfdc_core.losses import SelfDCLoss, supervised_loss


def _as_float(outputs: dict) -> dict:
    # Losses run in float32 even under AMP: top-k selections and small gradients need it.
    return {k: v.float() for k, v in outputs.items()}


class SelfSupervisedObjective:
    """SelfDC's loss (L_dc, L_seg, L_gc, L_sms); reads no ground truth."""

    name = "self-supervised"
    reads_gt = False

    def __init__(self, loss_cfg: dict):
        self.loss = SelfDCLoss(**loss_cfg)
        # The one place that decides whether pseudo-labels are read (the model has its seg branch).
        self.needs_segments = bool(self.loss.needs_segments(has_logits=True))
        self.trains_seg_branch = self.loss.config["w_seg"] > 0

    @classmethod
    def from_config(cls, cfg: dict) -> SelfSupervisedObjective:
        return cls(cfg["loss"])

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.loss(_as_float(outputs), batch)

    def validation_loss(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict] | None:
        """The loss on a validation batch, when it carries what the loss reads."""
        if "segments" in batch or "gt" not in batch:
            return self(outputs, batch)
        return None


class SupervisedObjective:
    """The supervised baseline: L1 + L2 on dense ground truth."""

    name = "supervised"
    reads_gt = True
    needs_segments = False
    trains_seg_branch = False

    @classmethod
    def from_config(cls, cfg: dict) -> SupervisedObjective:
        return cls()

    def __call__(self, outputs: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        if "gt" not in batch:
            raise ValueError("train.mode is supervised but the batch has no 'gt' (dense ground truth)")
        total = supervised_loss(outputs["depth"].float(), batch["gt"])
        return total, {"supervised": total.detach()}

    def validation_loss(self, outputs: dict, batch: dict) -> None:
        return None  # validation scores the ground truth directly


OBJECTIVES = {"self_supervised": SelfSupervisedObjective, "supervised": SupervisedObjective}


def build_objective(cfg: dict) -> SelfSupervisedObjective | SupervisedObjective:
    """The objective named by `train.mode`, configured from the `loss` section."""
    return OBJECTIVES[cfg["train"]["mode"]].from_config(cfg)

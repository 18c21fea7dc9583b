"""Early warning for runs that cannot learn: modules without gradient, a loss that is exactly zero.

Both fail silently otherwise: a module whose parameters never receive a gradient stays at its
initialisation (e.g. a refinement that the loss never reaches), and a loss that is identically
zero trains nothing. The check watches the first `train.sanity_steps` optimiser steps, reads the
gradients only (the run's numbers are unchanged) and reports once.
"""

from __future__ import annotations

import torch


class GradientSanityCheck:
    """Collects, over the first `steps` steps, which top-level modules got a non-zero gradient."""

    def __init__(self, model: torch.nn.Module, steps: int, ignore: tuple[str, ...] = ()):
        self.steps = int(steps)
        self.modules = {
            name: [p for p in module.parameters() if p.requires_grad]
            for name, module in model.named_children()
            if name not in ignore
        }
        self.modules = {name: params for name, params in self.modules.items() if params}
        self.reached: set[str] = set()
        self.nonzero_loss = False
        self.seen = 0

    @property
    def active(self) -> bool:
        return self.seen < self.steps

    def observe(self, loss: torch.Tensor) -> list[str]:
        """Call after backward (gradients unscaled), before they are cleared; returns warnings once done."""
        if not self.active:
            return []
        self.seen += 1
        self.nonzero_loss |= bool(loss.detach() != 0)
        for name, params in self.modules.items():
            if name not in self.reached and any(
                p.grad is not None and bool(p.grad.detach().abs().sum() > 0) for p in params
            ):
                self.reached.add(name)
        return self.report() if self.seen == self.steps else []

    def report(self) -> list[str]:
        warnings = []
        if not self.nonzero_loss:
            warnings.append(f"the loss was exactly 0 in each of the first {self.seen} steps: nothing trains "
                            f"(check the loss weights in the `loss` section)")
        silent = [name for name in self.modules if name not in self.reached]
        if silent:
            warnings.append(
                f"no gradient reached {', '.join(silent)} in the first {self.seen} steps: these modules stay "
                f"at their initialisation (check which loss terms are on and what they are applied to)"
            )
        return warnings

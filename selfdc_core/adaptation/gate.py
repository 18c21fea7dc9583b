"""Inference before learning: while a frame is in flight, the learner pauses at its next yield point.

Yield points sit before every convolution of the learner's forward pass and on the gradients of
their outputs in the backward pass, so on a shared CPU a waiting frame is delayed by at most one
layer of the learner, not by a whole training step.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import torch
from torch import nn

_YIELD_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


class PriorityGate:
    def __init__(self):
        self._lock = threading.Lock()
        self._active = 0
        self._clear = threading.Event()
        self._clear.set()
        self.waited_s = 0.0  # learner time spent paused for inference

    @contextmanager
    def inference(self):
        """Held by the inference side for as long as a frame is being completed (re-entrant)."""
        with self._lock:
            self._active += 1
            self._clear.clear()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._clear.set()

    def busy(self) -> bool:
        return not self._clear.is_set()

    def wait_turn(self) -> None:
        """Called by the learner: return at once when no frame is in flight, else when it is done."""
        if self._clear.is_set():
            return
        start = time.perf_counter()
        self._clear.wait()
        self.waited_s += time.perf_counter() - start


def attach_yield_points(model: nn.Module, gate: PriorityGate) -> list:
    """Make `model` pause for inference before each layer and in the backward pass; returns the hooks."""

    def before(_module, _inputs):
        gate.wait_turn()

    def on_grad(_grad):
        gate.wait_turn()  # returns None: the gradient is unchanged

    def after(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(on_grad)

    handles = []
    for module in model.modules():
        if isinstance(module, _YIELD_MODULES):
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
    return handles

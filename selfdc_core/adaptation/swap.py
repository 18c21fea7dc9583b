"""Atomic weight swaps: inference runs on one of two model copies while the other is rewritten.

A forward pass picks the active copy once and uses it to the end. New weights are written into
the standby copy only when no forward pass is using it, then the active index flips: a frame
sees either the old weights or the new ones, never a mix.
"""

from __future__ import annotations

import copy
import threading

import torch
from torch import nn

from .gate import PriorityGate


class DoubleBufferedModel:
    """Callable like the model it wraps; `publish(state_dict)` swaps new weights in atomically."""

    def __init__(self, model: nn.Module, gate: PriorityGate | None = None):
        self._models = [model, copy.deepcopy(model)]
        self._users = [0, 0]
        self._active = 0
        self._cond = threading.Condition()
        self._publish_lock = threading.Lock()
        self.gate = gate or PriorityGate()
        self.version = 0  # number of swaps so far

    @property
    def active(self) -> nn.Module:
        return self._models[self._active]

    @property
    def config(self):
        return getattr(self.active, "config", None)

    def __call__(self, *args, **kwargs):
        with self._cond:
            index = self._active
            self._users[index] += 1
        try:
            with self.gate.inference():
                return self._models[index](*args, **kwargs)
        finally:
            with self._cond:
                self._users[index] -= 1
                self._cond.notify_all()

    def publish(self, state_dict: dict) -> None:
        """Load `state_dict` (strict) into the standby copy, then make it the active one."""
        with self._publish_lock:
            with self._cond:
                standby = 1 - self._active
                while self._users[standby]:  # a frame that started before the last swap
                    self._cond.wait()
            with torch.no_grad():
                self._models[standby].load_state_dict(state_dict, strict=True)
            with self._cond:
                self._active = standby
                self.version += 1

    def state_dict(self) -> dict:
        """A CPU copy of the active weights."""
        with self._cond:
            model = self._models[self._active]
            self._users[self._active] += 1
            index = self._active
        try:
            return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        finally:
            with self._cond:
                self._users[index] -= 1
                self._cond.notify_all()

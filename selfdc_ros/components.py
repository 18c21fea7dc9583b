"""Optional parts of the node (for example online adaptation), plugged in without touching it.

A component is a NodeComponent subclass listed in COMPONENTS. Its parameters are ordinary rows
of selfdc_ros.params.PARAMETERS (validated and declared with the others; `live=True` ones
reach `on_parameters`). The node calls the hooks at its lifecycle transitions, hands every
completed frame to `on_frame` from the inference worker thread (after the outputs are
published, so inference keeps priority), and adds `diagnostics()` to its /diagnostics.
A component that raises in a hook fails that transition with its message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COMPONENTS", "CompletedFrame", "NodeComponent"]


@dataclass
class CompletedFrame:
    stamp_ns: int
    rgb: np.ndarray  # (H,W,3) uint8
    sparse: np.ndarray  # (H,W) float32 m, 0 = no measurement
    depth: np.ndarray  # (H,W) float32 m as published (NaN invalid)
    K: np.ndarray  # 3x3 (or 3x4) intrinsics used for the projection


class NodeComponent:
    """No-op hooks; subclasses override what they need."""

    def configure(self, node, params: dict) -> None:
        """Build from the validated parameters; `node.completer` holds the loaded model."""

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def cleanup(self) -> None:
        """Free what configure built."""

    def on_parameters(self, changes: dict) -> None:
        """Live parameter changes (already validated), by name."""

    def on_frame(self, frame: CompletedFrame) -> None:
        pass

    def diagnostics(self) -> list:
        """diagnostic_msgs/DiagnosticStatus entries for the current window."""
        return []


# Component classes the node instantiates, in order.
COMPONENTS: list[type[NodeComponent]] = []

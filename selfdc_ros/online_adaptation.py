"""Online adaptation in completion_node: `adaptation.*` parameters, the learner, diagnostics, save service.

The node keeps doing what it does without adaptation; around each frame it calls
`frame()` (inference has priority over the learner while it is held) and, once the frame is
published, `observe()`. The learner itself is `selfdc_core.adaptation.OnlineAdapter`.
`adaptation.enabled` is live: false freezes the current weights, true (re)starts learning.
The other adaptation.* parameters are read at start-up; changing them at run time is refused.
Service `~/adaptation/save` (std_srvs/Trigger) writes the adapted weights to adaptation.save_path now.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager

from selfdc_core.adaptation import DEFAULTS, adaptation_config

PREFIX = "adaptation."
# ROS parameter (without the prefix) -> (adaptation setting, description). Defaults come from the core.
_SETTINGS = {
    "buffer_frames": "Replay buffer cap in frames; the oldest training frame is dropped first.",
    "buffer_mb": "Replay buffer memory cap in MB (images, sparse depth, pseudo-labels).",
    "min_gap_s": "Keep a frame for learning only this many seconds after the last kept one "
                 "(a standing robot does not fill the buffer with copies).",
    "min_sparse_points": "Frames with fewer sparse measurements are skipped (and counted).",
    "holdout_every": "Every n-th kept frame goes to the held-out slice that the drift guard scores.",
    "holdout_frames": "Size of the held-out slice (its newest frames).",
    "hide_fraction": "Share of a held-out frame's measurements hidden from the input and scored (m).",
    "guard_tolerance": "Swap new weights in only while their held-out error is at most (1 + this) x the "
                       "current one; otherwise roll back.",
    "swap_every": "Learner steps between guarded weight swaps.",
    "batch_size": "Frames per learner step.",
    "max_step_rate_hz": "Learner steps per second at most; 0 = as fast as the idle compute allows.",
    "l2sp_weight": "Pull toward the starting weights (L2-SP): weight/2 * ||w - w_start||^2; 0 = off.",
    "save_path": "Write the adapted weights (a checkpoint the node loads) here; '' = never.",
    "save_every_s": "Seconds between those writes; 0 = only on the save service and at shutdown.",
    "resume": "At start-up, continue from save_path when that file exists.",
    "generator": "Pseudo-label generator run on the robot (felzenszwalb or slic: fast, no weights).",
    "seed": "Seed of the learner's sampling and of the hidden held-out points.",
}
_OPTIM = {
    "optim.lr": "Learner learning rate (Adam, as training/train.py's optim.lr).",
    "optim.grad_clip": "Gradient norm clip of the learner; 0 = none (training/train.py's optim.grad_clip).",
    "optim.weight_decay": "Adam weight decay of the learner (training/train.py's optim.weight_decay).",
}
ENABLED_DESCRIPTION = ("Learn online from the completed frames, self-supervised (live: false freezes the "
                       "current weights, true continues).")


def parameter_table() -> list[tuple[str, object, str]]:
    """(full name, default, description) of every adaptation.* parameter, for the node's table."""
    rows = [(PREFIX + "enabled", False, ENABLED_DESCRIPTION)]
    rows += [(PREFIX + key, DEFAULTS[key], text) for key, text in _SETTINGS.items()]
    optim = DEFAULTS["optim"]
    rows += [(PREFIX + key, float(optim[key.split(".")[1]] or 0.0), text) for key, text in _OPTIM.items()]
    return rows


def settings_from_parameters(values: dict) -> dict:
    """The OnlineAdapter settings of the node's adaptation.* values (ValueError naming a bad one)."""
    settings = {key: values[PREFIX + key] for key in _SETTINGS}
    optim = {key.split(".")[1]: values[PREFIX + key] for key in _OPTIM}
    optim["grad_clip"] = optim["grad_clip"] or None
    settings["optim"] = optim
    if settings["generator"] != DEFAULTS["generator"]:
        settings["generator_kwargs"] = {}
    return adaptation_config(settings)


class NodeAdaptation:
    """The node's online learner: created when adaptation is first enabled, between two frames."""

    def __init__(self, node, completer, checkpoint: str, values: dict):
        self.node, self.completer, self.checkpoint = node, completer, checkpoint
        self.settings = settings_from_parameters(values)  # ValueError: the node refuses to start
        self.adapter = None
        self._wanted = bool(values[PREFIX + "enabled"])
        self._lock = threading.Lock()
        if self._wanted:
            self._apply()
        from std_srvs.srv import Trigger

        self.save_service = node.create_service(Trigger, "~/adaptation/save", self._on_save)

    def _create(self):
        from selfdc_core.adaptation import OnlineAdapter, loss_of_checkpoint
        from selfdc_core.training.checkpoint import load_checkpoint

        state = load_checkpoint(self.checkpoint, map_location="cpu")
        settings = {**self.settings, "loss": loss_of_checkpoint(state)}
        return OnlineAdapter(self.completer, settings, checkpoint_weights=state["model"])

    def _apply(self) -> None:
        """Bring the learner to the wanted state (called where no frame is in flight)."""
        with self._lock:
            wanted = self._wanted
            if wanted and self.adapter is None:
                self.adapter = self._create()
                if self.adapter.resumed_from is not None:
                    self.node.get_logger().info(f"adaptation: resumed from {self.adapter.resumed_from}")
            if self.adapter is not None and wanted != self.adapter.enabled:
                self.adapter.set_enabled(wanted)
                self.node.get_logger().info(f"adaptation {'on' if wanted else 'frozen'}")

    def set_enabled(self, enabled: bool) -> None:
        """Live switch; takes effect before the next frame (the learner is built then, the first time)."""
        with self._lock:
            self._wanted = bool(enabled)

    @contextmanager
    def frame(self):
        """Hold around a frame's processing: applies a pending switch, then gives inference priority."""
        self._apply()
        if self.adapter is None:
            yield
            return
        with self.adapter.priority():
            yield

    def observe(self, rgb, sparse, K, stamp_ns: int) -> None:
        if self.adapter is not None:
            self.adapter.observe(rgb, sparse, K, stamp_ns / 1e9)

    def diagnostics(self) -> list[tuple[str, str]]:
        """(key, value) pairs for the node's diagnostics status."""
        if self.adapter is None:
            return [("adaptation_enabled", str(self._wanted).lower())]
        stats = self.adapter.stats()
        keys = ("enabled", "learner_steps", "loss", "held_out_error_m", "swaps", "rollbacks", "buffer_frames",
                "buffer_fill", "compute_share", "frames_kept", "skipped_gap", "skipped_no_sparse",
                "skipped_degenerate_labels", "nonfinite_losses", "saves", "error")
        out = []
        for key in keys:
            value = stats[key]
            if isinstance(value, bool):
                text = str(value).lower()
            elif isinstance(value, float):
                text = "nan" if math.isnan(value) else f"{value:.4f}"
            else:
                text = str(value)
            out.append((f"adaptation_{key}", text))
        return out

    def failed(self) -> bool:
        return self.adapter is not None and bool(self.adapter.stats()["error"])

    def _on_save(self, request, response):
        if self.adapter is None or not self.settings["save_path"]:
            response.success = False
            response.message = ("adaptation.save_path is not set" if not self.settings["save_path"]
                                else "adaptation has not run yet: nothing to save")
            return response
        try:
            path = self.adapter.save()
        except Exception as exc:  # a full disk or a bad path must not take the node down
            response.success, response.message = False, f"{type(exc).__name__}: {exc}"
            return response
        response.success, response.message = True, f"saved {path}"
        return response

    def shutdown(self) -> None:
        if self.adapter is not None:
            self.adapter.stop(save=bool(self.settings["save_path"]))

"""Online adaptation in completion_node: `adaptation.*` parameters, the learner, diagnostics, save service.

A node component (selfdc_ros.components): the node hands it every published frame, and it
offers the frame to `selfdc_core.adaptation.OnlineAdapter`, which learns in its own thread and
swaps guarded weights into the node's completer. The completer's forward pass holds the
adapter's priority gate, so the learner pauses while a frame is being completed.
`adaptation.enabled` is live: false freezes the current weights, true (re)starts learning; the
learner is built before the first frame after it is first enabled. The other adaptation.*
parameters are read at configure. Service `~/adaptation/save` (std_srvs/Trigger) writes the
adapted weights to adaptation.save_path at once.
"""

from __future__ import annotations

import math
import threading

from selfdc_core.adaptation.config import DEFAULTS, adaptation_config
from selfdc_core.model_io import CheckpointError
from selfdc_ros.components import COMPONENTS, CompletedFrame, NodeComponent

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
    "hide_fraction": "Share of a held-out frame's measurements hidden from the input; the error there (m) "
                    "is the drift guard's estimate.",
    "guard_tolerance": "Swap new weights in while their held-out error is at most (1 + this) x the best "
                       "published one ...",
    "guard_significance": "... or while the rise, point by point, is within this many standard errors of its "
                          "mean (noise); otherwise roll back.",
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
ENABLED_DESCRIPTION = ("Learn online from the completed frames, self-supervised; false freezes the current "
                       "weights, true continues.")


_AT_LEAST_ONE = {"buffer_frames", "holdout_every", "holdout_frames", "swap_every", "batch_size",
                 "min_sparse_points"}


def parameter_rows() -> list[dict]:
    """Every adaptation.* parameter as keyword arguments of selfdc_ros.params.Param."""
    rows = [{"name": PREFIX + "enabled", "default": False, "description": ENABLED_DESCRIPTION, "live": True}]
    for key, text in _SETTINGS.items():
        default = DEFAULTS[key]
        row = {"name": PREFIX + key, "default": default, "description": text}
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            row["minimum"] = 1 if key in _AT_LEAST_ONE else 0.0
        rows.append(row)
    optim = DEFAULTS["optim"]
    for key, text in _OPTIM.items():
        rows.append({"name": PREFIX + key, "default": float(optim[key.split(".")[1]] or 0.0),
                     "description": text, "minimum": 0.0})
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




class OnlineAdaptation(NodeComponent):
    """The node's online learner: built when adaptation is first enabled, between two frames."""

    def __init__(self):
        self.node = self.adapter = self.save_service = None
        self.settings: dict = {}
        self.error = ""  # why the learner could not be built (adaptation then stays off)
        self._wanted = self._active = False
        self._lock = threading.Lock()

    def configure(self, node, params: dict) -> None:
        self.node = node
        self.settings = settings_from_parameters(params)  # a bad value fails configure, naming it
        self._wanted = bool(params[PREFIX + "enabled"])
        from std_srvs.srv import Trigger

        self.save_service = node.create_service(Trigger, "~/adaptation/save", self._on_save)

    def activate(self) -> None:
        self._active = True
        self._apply()  # no frame is in flight before activation

    def deactivate(self) -> None:
        self._active = False
        if self.adapter is not None:
            self.adapter.set_enabled(False)

    def cleanup(self) -> None:
        if self.adapter is not None:
            self.adapter.stop(save=bool(self.settings["save_path"]))
            self.adapter = None
        if self.save_service is not None:
            self.node.destroy_service(self.save_service)
            self.save_service = None

    def on_parameters(self, changes: dict) -> None:
        if PREFIX + "enabled" in changes:
            with self._lock:
                self._wanted = bool(changes[PREFIX + "enabled"])
            if self.adapter is not None:  # freezing and unfreezing are immediate
                self.adapter.set_enabled(self._wanted and self._active)
                self.node.get_logger().info(f"adaptation {'on' if self._wanted else 'frozen'}")

    def on_frame(self, frame: CompletedFrame) -> None:
        self._apply()  # the worker thread, between two frames: the completer is not in use
        if self.adapter is not None:
            self.adapter.observe(frame.rgb, frame.sparse, frame.K[:, :3], frame.stamp_ns / 1e9)

    def _apply(self) -> None:
        with self._lock:
            wanted = self._wanted and self._active
            if wanted and self.adapter is None:
                try:
                    self.adapter = self._create()
                except (CheckpointError, ValueError, OSError) as exc:  # one line, not an error per frame
                    self._wanted, self.error = False, str(exc)
                    self.node.get_logger().error(f"adaptation cannot start and stays off: {exc}")
                    return
                self.error = ""
            if self.adapter is not None and wanted != self.adapter.enabled:
                self.adapter.set_enabled(wanted)

    def _create(self):
        from pathlib import Path

        import torch

        from selfdc_core.adaptation import OnlineAdapter, loss_of_checkpoint
        from selfdc_core.inference import model_file_kind
        from selfdc_core.model_io import load_checkpoint

        if not isinstance(getattr(self.node.completer, "model", None), torch.nn.Module):
            raise ValueError("online adaptation trains the PyTorch model: run the node with backend torch "
                             "(a .pt or .safetensors checkpoint), not onnxruntime")
        path = Path(self.node.params["checkpoint"]).expanduser()
        # Slim weights carry no training config: the learner then uses the default loss, and a fresh
        # segmentation head when the loss needs one.
        state = {} if model_file_kind(path) == "weights" else load_checkpoint(path, map_location="cpu")
        settings = {**self.settings, "loss": loss_of_checkpoint(state)}
        adapter = OnlineAdapter(self.node.completer, settings, checkpoint_weights=state.get("model"))
        if adapter.resumed_from is not None:
            self.node.get_logger().info(f"adaptation: continuing from {adapter.resumed_from}")
        return adapter

    def diagnostics(self) -> list:
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        stats = self.adapter.stats() if self.adapter is not None else {"enabled": False, "error": self.error}
        error = stats.get("error", "")
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if error else DiagnosticStatus.OK,
            name=f"{self.node.get_fully_qualified_name()}: adaptation",
            message=f"learner failed, adaptation is off: {error}" if error else (
                "learning" if stats["enabled"] else "frozen" if self.adapter is not None else "off"),
            hardware_id=str(self.node.completer.device) if self.node.completer is not None else "",
        )
        status.values = [KeyValue(key=k, value=_text(v)) for k, v in stats.items() if k in DIAGNOSTIC_KEYS]
        return [status]

    def _on_save(self, request, response):
        response.success, response.message = False, ""
        if not self.settings.get("save_path"):
            response.message = "adaptation.save_path is not set"
        elif self.adapter is None:
            response.message = "adaptation has not been enabled yet: nothing to save"
        else:
            try:
                response.success, response.message = True, f"saved {self.adapter.save()}"
            except Exception as exc:  # a full disk or a bad path must not take the node down
                response.message = f"{type(exc).__name__}: {exc}"
        return response


DIAGNOSTIC_KEYS = ("enabled", "learner_steps", "loss", "held_out_error_m", "candidate_error_m", "swaps",
                   "rollbacks", "buffer_frames", "holdout_frames", "buffer_fill", "compute_share",
                   "frames_kept", "skipped_gap", "skipped_no_sparse", "skipped_degenerate_labels",
                   "nonfinite_losses", "saves", "error")


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


COMPONENTS.append(OnlineAdaptation)

"""OnlineAdapter: the model keeps learning, self-supervised, from the frames it completes.

    adapter = OnlineAdapter(completer, {"optim": {"lr": 1e-4}}, checkpoint_weights=state["model"])
    adapter.start()
    depth = completer.complete(rgb, sparse)          # inference, exactly as without adaptation
    adapter.observe(rgb, sparse, K, stamp_s)         # then offer the completed frame to the learner
    adapter.stats()                                  # counters for diagnostics
    adapter.stop()

A learner thread keeps a trainable copy of the model, a bounded replay buffer and a held-out
slice. It makes pseudo-labels with a fast generator, trains with the training objective, and
every `swap_every` steps asks the drift guard whether the new weights are at least as good on
the held-out slice; only then are they swapped into the completer (atomically). Inference has
priority: while a frame is in flight the learner pauses at its next layer. A learner failure
is recorded in `stats()["error"]` and turns adaptation off; inference goes on unchanged.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import deque
from pathlib import Path

import numpy as np

from selfdc_core.segmentation import resolve_generator

from .buffer import GapFilter, ReplayBuffer
from .config import adaptation_config
from .gate import PriorityGate, attach_yield_points
from .guard import DriftGuard
from .learner import Learner, build_learner_model
from .persistence import load_adapted, save_adapted
from .stats import AdaptationStats
from .steps import LearnerLoop
from .swap import DoubleBufferedModel

log = logging.getLogger("selfdc.adaptation")

__all__ = ["OnlineAdapter"]

INBOX_FRAMES = 8  # frames waiting for the learner; older ones are dropped (and counted) past this


class OnlineAdapter:
    def __init__(self, completer, config: dict | None = None, checkpoint_weights: dict | None = None):
        self.cfg = cfg = adaptation_config(config)
        self.completer = completer
        self.device = completer.device
        self.gate = PriorityGate()
        module = completer.model
        if isinstance(module, DoubleBufferedModel):
            raise ValueError("this DepthCompleter already has an OnlineAdapter attached")
        self.model_config = dict(module.config)
        self.reference = copy.deepcopy(module).eval()  # always holds the published weights
        self.resumed_from = self._resume(cfg) if cfg["resume"] and cfg["save_path"] else None
        if self.resumed_from is not None:
            module.load_state_dict(self.reference.state_dict(), strict=True)
        self.inference = DoubleBufferedModel(module, self.gate)
        completer.model = self.inference
        with_head = Learner.needs_head(cfg["loss"])
        learner_model = build_learner_model(self.reference, checkpoint_weights, with_head)
        self.learner = Learner(learner_model, cfg["loss"], cfg["optim"], cfg["l2sp_weight"], self.device)
        self._hooks = attach_yield_points(self.learner.model, self.gate)
        self._hooks += attach_yield_points(self.reference, self.gate)
        self.buffer = ReplayBuffer(cfg["buffer_frames"], cfg["buffer_mb"], cfg["holdout_every"],
                                   cfg["holdout_frames"])
        self.guard = DriftGuard(self.reference, cfg["guard_tolerance"], self.device,
                                completer.autocast_dtype, cfg["guard_significance"])
        self.gap = GapFilter(cfg["min_gap_s"], cfg["min_translation_m"], cfg["min_rotation_deg"])
        self.generator = resolve_generator({"name": cfg["generator"], **cfg["generator_kwargs"]})
        self.counters = AdaptationStats()
        self._inbox: deque = deque()
        self._cond = threading.Condition()
        self._enabled = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(cfg["seed"])

    def _resume(self, cfg: dict) -> Path | None:
        path = Path(cfg["save_path"])
        if not path.is_file():
            log.info("adaptation.resume: %s does not exist yet; starting from the checkpoint", path)
            return None
        load_adapted(path, self.reference)  # CheckpointError naming the file if it does not fit
        log.info("adaptation.resume: loaded adapted weights from %s", path)
        return path

    # ------------------------------------------------------------------ inference side
    def priority(self):
        """Context manager: hold it around a frame's whole processing; the learner pauses meanwhile."""
        return self.gate.inference()

    def observe(self, rgb: np.ndarray, sparse: np.ndarray, K: np.ndarray, stamp: float, pose=None) -> bool:
        """Offer a completed frame to the learner (cheap; never blocks). True when it was queued."""
        self.counters.add("frames_observed")
        with self._cond:
            if not self._enabled:
                return False
            if not self.gap.admit(float(stamp), pose):
                self.counters.add("skipped_gap")
                return False
            if len(self._inbox) >= INBOX_FRAMES:  # the learner is behind: keep the newest frames
                self._inbox.popleft()
                self.counters.add("skipped_busy")
            self._inbox.append((np.array(rgb, copy=True), np.array(sparse, dtype=np.float32, copy=True),
                                np.array(K, dtype=np.float32, copy=True), float(stamp)))
            self._cond.notify_all()
        return True

    # ------------------------------------------------------------------ control
    @property
    def enabled(self) -> bool:
        return self._enabled

    def start(self) -> None:
        """Start (or, after a failure or stop, restart) the learner thread and enable learning."""
        with self._cond:
            self._enabled, self._stop = True, False
            self.counters.update(enabled=True, error="")
            if self._thread is not None and self._thread.is_alive():
                self._cond.notify_all()
                return
            loop = LearnerLoop(self)
            self._thread = threading.Thread(target=loop.run, name="selfdc_learner", daemon=True)
            self._thread.start()

    def set_enabled(self, enabled: bool) -> None:
        """Freeze (False: the published weights stay, nothing is learned) or unfreeze (True)."""
        if enabled:
            self.start()
            return
        with self._cond:
            self._enabled = False
            self._inbox.clear()
            self.counters.update(enabled=False)
            self._cond.notify_all()

    def stop(self, timeout: float = 30.0, save: bool = True) -> None:
        """End the learner thread (after its current step) and write save_path when set."""
        with self._cond:
            self._stop, self._enabled = True, False
            self.counters.update(enabled=False)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if save and self.cfg["save_path"]:
            self.save()

    def save(self, path=None) -> Path:
        """Write the published (guard-accepted) weights atomically to `path` or adaptation.save_path."""
        path = path or self.cfg["save_path"]
        if not path:
            raise ValueError("no path to save to: set adaptation.save_path or pass one")
        written = save_adapted(path, self.model_config, self.inference.state_dict(),
                               self.cfg, self.counters.snapshot())
        self.counters.add("saves")
        return written

    def ready_to_train(self) -> bool:
        """Whether the buffer holds enough training frames for a step (or frames are waiting)."""
        return len(self.buffer.train) >= self.cfg["batch_size"] or bool(self._inbox)

    def stats(self) -> dict:
        return self.counters.snapshot()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            self._enabled = False
            self._inbox.clear()
            self.counters.update(enabled=False, error=f"{type(exc).__name__}: {exc}")

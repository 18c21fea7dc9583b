"""The learner thread's loop: take frames in, train, guard and swap, save; fail safely."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np

from .frames import LearnerFrame, degenerate_labels, frames_to_batch, to_model_size
from .holdout import choose_hidden

log = logging.getLogger("selfdc.adaptation")


class LearnerLoop:
    def __init__(self, adapter):
        self.a = adapter
        self.cfg = adapter.cfg
        self.started = time.perf_counter()
        self.busy_s = 0.0
        self.steps_since_check = 0
        self.last_step = -float("inf")
        self.last_save = time.monotonic()

    def run(self) -> None:
        try:
            while self._wait_for_work():
                with self._busy():
                    self._ingest()
                    if self._next_step_in() == 0.0:
                        self._train_once()
                self._maybe_save()
        except Exception as exc:  # reported; inference goes on with the published weights
            log.exception("the online learner failed; adaptation is now off")
            self.a._fail(exc)

    # ------------------------------------------------------------------ scheduling
    def _next_step_in(self) -> float | None:
        """Seconds until a training step may start; None while the buffer holds too few frames."""
        if len(self.a.buffer.train) < self.cfg["batch_size"]:
            return None
        rate = self.cfg["max_step_rate_hz"]
        if rate <= 0:
            return 0.0
        return max(0.0, self.last_step + 1.0 / rate - time.perf_counter())

    def _wait_for_work(self) -> bool:
        a = self.a
        with a._cond:
            while not a._stop:
                wait = 0.5
                if a._enabled:
                    if a._inbox:
                        return True
                    due = self._next_step_in()
                    if due == 0.0:
                        return True
                    if due is not None:
                        wait = min(wait, due)
                a._cond.wait(timeout=wait)
        return False

    @contextmanager
    def _busy(self):
        """Accumulate the learner's working time, minus the time it spent paused for inference."""
        start, waited = time.perf_counter(), self.a.gate.waited_s
        try:
            yield
        finally:
            now = time.perf_counter()
            self.busy_s += (now - start) - (self.a.gate.waited_s - waited)
            buf = self.a.buffer
            self.a.counters.update(
                compute_share=self.busy_s / max(now - self.started, 1e-9), buffer_frames=len(buf.train),
                holdout_frames=len(buf.holdout), buffer_fill=buf.fill(), buffer_mb=buf.nbytes / 2**20,
            )

    # ------------------------------------------------------------------ frames in
    def _ingest(self) -> None:
        with self.a._cond:
            items = list(self.a._inbox)
            self.a._inbox.clear()
        for rgb, sparse, K, stamp in items:
            self.a.gate.wait_turn()
            frame = self._prepare(rgb, sparse, K, stamp)
            if frame is not None:
                self.a.buffer.add(frame)
                self.a.counters.add("frames_kept")

    def _prepare(self, rgb, sparse, K, stamp) -> LearnerFrame | None:
        """Model-size frame with pseudo-labels (and hidden points when it is held out); None to skip."""
        rgb, sparse, K = to_model_size(rgb, sparse, K, self.a.completer.input_size)
        if int(np.count_nonzero(sparse > 0)) < self.cfg["min_sparse_points"]:
            self.a.counters.add("skipped_no_sparse")
            return None
        segments = np.asarray(self.a.generator(rgb), dtype=np.int32)
        if segments.shape != sparse.shape or degenerate_labels(segments) is not None:
            self.a.counters.add("skipped_degenerate_labels")
            return None
        frame = LearnerFrame(rgb, sparse, K, segments, stamp)
        if self.a.buffer.wants_holdout():
            frame.hidden = choose_hidden(sparse, self.cfg["hide_fraction"], self.a._rng)
        return frame

    # ------------------------------------------------------------------ learning
    def _train_once(self) -> None:
        a, counters = self.a, self.a.counters
        frames = a.buffer.sample(self.cfg["batch_size"], a._rng)
        self.last_step = time.perf_counter()
        result = a.learner.step(frames_to_batch(frames, a.device))
        if not a.enabled:  # frozen while this step ran: it is dropped, nothing more is learned
            a.learner.reset_to(a.guard.published_state())
            return
        if result.status == "nonfinite_weights":
            counters.add("nonfinite_weights")
            a.learner.reset_to(a.guard.published_state())
            return
        if result.status != "ok":
            counters.add("nonfinite_losses")
            return
        counters.add("learner_steps")
        counters.update(loss=result.loss)
        self.steps_since_check += 1
        if self.steps_since_check >= self.cfg["swap_every"] and a.buffer.holdout:
            self._guarded_swap()

    def _guarded_swap(self) -> None:
        a = self.a
        accept, error = a.guard.judge(a.learner.model, list(a.buffer.holdout), a.buffer.holdout_version)
        if accept:
            state = a.learner.inference_state()
            a.inference.publish(state)
            a.guard.accept(state)
            a.learner.accept()
            a.counters.add("swaps")
        else:
            a.learner.reset_to(a.guard.published_state())
            a.counters.add("rollbacks")
        a.counters.update(held_out_error_m=a.guard.reference_error, candidate_error_m=error)
        self.steps_since_check = 0

    def _maybe_save(self) -> None:
        period = self.cfg["save_every_s"]
        if self.cfg["save_path"] and period > 0 and time.monotonic() - self.last_save >= period:
            self.a.save()
            self.last_save = time.monotonic()

"""A single inference thread that always works on the newest job.

Callbacks call `submit()`; if the worker is still busy, the job waiting for it (if any) is
replaced and counted as dropped. At most one job waits, so latency never builds up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestOnlyWorker:
    def __init__(
        self, process: Callable[[Any], None], on_error: Callable[[Any, BaseException], None], name="worker"
    ):
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._stopping = False
        self._busy = False
        self.dropped = 0
        self.processed = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Any) -> None:
        with self._cond:
            if self._has_pending:
                self.dropped += 1  # superseded before the worker got to it
            self._pending, self._has_pending = job, True
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._busy and not self._has_pending

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job, self._pending, self._has_pending = self._pending, None, False
                self._busy = True
            try:
                self._process(job)
            except Exception as exc:  # one bad frame must never end the worker
                self._on_error(job, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self.processed += 1

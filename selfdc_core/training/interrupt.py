"""SIGINT/SIGTERM turn into a flag the training loop polls, so it can save and exit cleanly."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager installing SIGINT/SIGTERM handlers that record the signal.

    A second SIGINT while the first is being handled restores Python's default behaviour
    (KeyboardInterrupt), so an impatient user can still abort a hanging save.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False

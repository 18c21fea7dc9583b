"""Receive rate and stamp gaps of one input stream (no ROS imports).

Messages lost before they reach the node (best-effort queues, a saturated link, a driver that
skips frames) appear in no queue counter. Their stamps still tell: a gap of about k periods
between consecutive stamps means k - 1 messages never arrived. The period is the expected
rate when one is configured, otherwise the median of recent stamp intervals. A gap of more
than PAUSE_PERIODS periods is a pause (driver restart, bag loop, sensor switched off) rather
than a run of lost messages, and is counted as such.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

__all__ = ["InputMonitor", "InputWindow"]

GAP_FACTOR = 1.5  # a stamp interval this many periods long counts as a gap (tolerates jitter)
PAUSE_PERIODS = 10  # longer gaps are pauses, not losses
RATE_CHANGE_GAPS = 10  # this many gaps in a row mean a new rate, not losses


@dataclass
class InputWindow:
    """What one input did since the previous window."""

    received: int
    seconds: float
    missed: int  # messages inferred lost from stamp gaps
    missed_total: int
    stamp_rate_hz: float  # the sender's rate, from the stamps (0 = unknown yet)

    @property
    def receive_rate_hz(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


class InputMonitor:
    def __init__(self, intervals: int = 31):
        self._last_stamp: int | None = None
        self._intervals: deque[float] = deque(maxlen=intervals)
        self.expected_rate_hz = 0.0  # 0 = estimate the period from the stamps
        self.received_total = 0
        self.missed_total = 0
        self.pauses = 0
        self._gaps_in_a_row = 0
        self._window_received = 0
        self._window_missed = 0
        self._window_start: float | None = None

    def period_ns(self) -> float:
        """The expected stamp interval (ns), or 0 while it is unknown."""
        if self.expected_rate_hz > 0:
            return 1e9 / self.expected_rate_hz
        return float(statistics.median(self._intervals)) if len(self._intervals) >= 3 else 0.0

    def record(self, stamp_ns: int, now_s: float) -> int:
        """Count one received message; return how many the gap before it reveals as lost."""
        if self._window_start is None:
            self._window_start = now_s
        self.received_total += 1
        self._window_received += 1
        last, self._last_stamp = self._last_stamp, stamp_ns
        if last is None or stamp_ns <= last:  # first message, repeat, or a time jump back: no gap
            if last is not None and stamp_ns < last:
                self._intervals.clear()
            return 0
        interval = stamp_ns - last
        period = self.period_ns()
        missed = 0
        if period > 0 and interval > PAUSE_PERIODS * period:
            self.pauses += 1
            return 0  # nor does the pause enter the period estimate
        if period > 0 and interval > GAP_FACTOR * period:
            missed = max(0, round(interval / period) - 1)
            self.missed_total += missed
            self._window_missed += missed
            self._gaps_in_a_row += 1
            if self._gaps_in_a_row >= RATE_CHANGE_GAPS and self.expected_rate_hz <= 0:
                self._intervals.clear()  # the sender's rate changed: estimate it again
                self._gaps_in_a_row = 0
        else:
            self._gaps_in_a_row = 0
        # A gap enters the estimate as the interval it implies, so losses do not bias the period.
        self._intervals.append(interval / (missed + 1))
        return missed

    def take_window(self, now_s: float) -> InputWindow:
        """The counts since the previous call, which starts a new window."""
        start = self._window_start if self._window_start is not None else now_s
        period = self.period_ns()
        window = InputWindow(
            received=self._window_received,
            seconds=max(now_s - start, 0.0),
            missed=self._window_missed,
            missed_total=self.missed_total,
            stamp_rate_hz=1e9 / period if period > 0 else 0.0,
        )
        self._window_received = self._window_missed = 0
        self._window_start = now_s
        return window

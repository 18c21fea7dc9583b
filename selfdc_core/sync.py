"""Approximate time synchronisation of N message streams, without ROS.

This is the policy of message_filters' ApproximateTimeSynchronizer (the C++
`ApproximateTime` policy), written in plain Python: message_filters is optional at run
time, and bags are read without ROS. It is shared by the ROS node and the rosbag dataset,
so that recorded and live data are paired the same way.

How a set is chosen: once every input has a queued message, the input whose oldest
queued message is the latest is the *pivot*; its oldest message must be in the next set.
Among all sets containing the pivot message, the one with the smallest time spread
(latest stamp - earliest stamp) is emitted, as soon as later messages can no longer
produce a smaller spread (a new message is never older than the previous one on its
input). Messages older than the emitted ones are dropped. A set is only started when its
spread is within `slop`; otherwise the oldest message is discarded. Ties go to the
earlier set, so the output is a deterministic function of the per-input streams.

Beyond message_filters:
- out-of-order arrival: a message older than the newest queued one on its input is
  inserted in stamp order and the current set search restarts; a message not newer than
  the last one emitted on its input can no longer be used and is dropped (`stale`);
- a repeated stamp on one input is dropped (`duplicate`), so sets never share a stamp;
- time jumps (`jump_threshold` seconds): a message more than that older than the last set
  on its input means the clock went back (a bag loop, a simulation reset): the
  synchroniser restarts, like ROS's time-jump handling, instead of calling every later
  message `stale`. A message more than that older than the newest one queued on its own
  input shows that the newer ones were stamped in the future: they are evicted
  (`future_outlier`). While the front of one input is more than `jump_threshold` ahead of
  everything another input has sent, the others are not dropped on its account: they
  wait (bounded by `queue_size`) until that input comes back or the others catch up;
- every dropped message is counted per input and per reason (`stats`), and per input the
  stamp gaps that reveal lost messages are counted (`stats.gaps`, `stats.input_rates`);
- events worth a warning (a restart, an eviction) are queued as (kind, text) for the caller
  to log (`pop_notices`), and `describe_stall` names why no set is being completed.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApproximateTimeSynchronizer", "StampGaps", "SyncStats", "synchronize"]

Message = tuple[int, Any]  # (stamp_ns, payload)


class StampGaps:
    """Lost messages of one input, seen as gaps in its stamps.

    The nominal period is the lower quartile of the last `window` positive stamp steps (a
    quartile, not the median, so it holds while up to half the steps lose messages); a step of
    more than `factor` periods counts round(step / period) - 1 missed messages. Steps that
    are not positive (out of order) or longer than `jump_ns` (a time jump) are not gaps.
    """

    def __init__(self, jump_ns: int, window: int = 32, factor: float = 1.5, min_steps: int = 8):
        self.jump_ns, self.factor, self.min_steps = jump_ns, factor, min_steps
        self._steps: deque[int] = deque(maxlen=window)
        self._last: int | None = None
        self.gaps = 0  # steps that lost at least one message
        self.missed = 0  # estimated messages lost in those gaps

    @property
    def period_ns(self) -> int | None:
        if len(self._steps) < self.min_steps:
            return None
        return sorted(self._steps)[len(self._steps) // 4]

    def add(self, stamp_ns: int) -> int:
        """Record a received stamp; return the messages it shows were missed before it."""
        last = self._last
        if last is None or stamp_ns > last or last - stamp_ns > self.jump_ns:  # newer, or a jump back
            self._last = stamp_ns
        if last is None or not 0 < stamp_ns - last <= self.jump_ns:
            return 0
        step, period = stamp_ns - last, self.period_ns
        self._steps.append(step)
        if period is None or step <= self.factor * period:
            return 0
        missed = max(1, round(step / period) - 1)
        self.gaps += 1
        self.missed += missed
        return missed


@dataclass
class SyncStats:
    """Counts of what happened to the messages given to the synchroniser."""

    received: list[int]
    emitted_sets: int = 0
    # Per input: messages that left the queues without being part of a set, by reason.
    dropped: dict[str, list[int]] = field(default_factory=dict)
    time_jumps: int = 0  # restarts after the stamps went back
    gaps: list[StampGaps] = field(default_factory=list)

    def drop(self, reason: str, index: int, count: int = 1) -> None:
        self.dropped.setdefault(reason, [0] * len(self.received))[index] += count

    def total_dropped(self, reason: str | None = None) -> int:
        if reason is not None:
            return sum(self.dropped.get(reason, ()))
        return sum(sum(v) for v in self.dropped.values())

    def input_rates(self, names) -> dict[str, dict]:
        """Per input: messages received, stamp gaps, estimated messages missed, nominal rate (Hz)
        from the stamp period (None until enough messages), and the fraction that arrived."""
        out = {}
        for name, received, g in zip(names, self.received, self.gaps, strict=True):
            period = g.period_ns
            out[name] = {
                "received": received,
                "stamp_gaps": g.gaps,
                "missed": g.missed,
                "expected_hz": None if period is None else 1e9 / period,
                "received_fraction": received / (received + g.missed) if received else None,
            }
        return out


class ApproximateTimeSynchronizer:
    """Pairs messages of `num_inputs` streams by approximate stamp (see module docstring).

    `add(index, stamp_ns, payload)` returns the list of sets completed by this message
    (usually zero or one); a set is a tuple of (stamp_ns, payload), one per input.
    `queue_size` bounds the messages held per input, `slop` (seconds) the spread of a set,
    `jump_threshold` (seconds, default max(1, 2 x slop)) the stamp step taken as a time jump.
    """

    def __init__(self, num_inputs: int, queue_size: int = 10, slop: float = 0.1, jump_threshold=None):
        if int(num_inputs) < 2:
            raise ValueError(f"num_inputs must be >= 2, got {num_inputs}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0 <= slop < float("inf"):
            raise ValueError(f"slop must be a finite non-negative number of seconds, got {slop}")
        jump = max(1.0, 2.0 * slop) if jump_threshold is None else jump_threshold
        if not slop < jump < float("inf"):
            raise ValueError(f"jump_threshold must be finite seconds above slop={slop}, got {jump}")
        self.num_inputs = int(num_inputs)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self.jump_ns = int(round(float(jump) * 1e9))
        self.reset()

    def reset(self) -> None:
        """Forget every message and every count."""
        self.stats = SyncStats(received=[0] * self.num_inputs)
        self.stats.gaps = [StampGaps(self.jump_ns) for _ in range(self.num_inputs)]
        self.latest: list[int | None] = [None] * self.num_inputs  # newest stamp received per input
        self._notices: list[tuple[str, str]] = []
        self._stall_seen = 0
        self._restart()

    def _restart(self, reason: str | None = None) -> None:
        """Empty the queues (counting what they held as dropped for `reason`); keep the counts."""
        n = self.num_inputs
        if reason is not None:
            for i, count in enumerate(self.pending()):
                if count:
                    self.stats.drop(reason, i, count)
        self._queues: list[list[Message]] = [[] for _ in range(n)]  # sorted by stamp, oldest first
        self._past: list[list[Message]] = [[] for _ in range(n)]  # moved aside during the search
        self._last_emitted: list[int | None] = [None] * n
        self._overflowed = [False] * n
        self._pivot: int | None = None
        self._pivot_time = 0
        self._candidate: tuple[Message, ...] | None = None
        self._cand_start = 0
        self._cand_end = 0

    # ------------------------------------------------------------------ input
    def add(self, index: int, stamp_ns: int, payload: Any = None) -> list[tuple[Message, ...]]:
        if not 0 <= index < self.num_inputs:
            raise ValueError(f"input index {index} out of range for {self.num_inputs} inputs")
        stamp_ns = int(stamp_ns)
        self.stats.received[index] += 1
        self.stats.gaps[index].add(stamp_ns)
        self.latest[index] = stamp_ns
        last = self._last_emitted[index]
        if last is not None and last - stamp_ns > self.jump_ns:
            self._restart("time_jump")
            self.stats.time_jumps += 1
            self._notices.append(("time_jump", (
                f"input {index} stamp went back {(last - stamp_ns) / 1e9:.3f} s behind the last set "
                f"(more than jump_threshold={self.jump_ns / 1e9:g} s): synchroniser restarted")))
        elif last is not None and stamp_ns <= last:
            self.stats.drop("duplicate" if stamp_ns == last else "stale", index)
            return []
        held = self._queues[index] + self._past[index]
        if any(m[0] == stamp_ns for m in held):
            self.stats.drop("duplicate", index)
            return []

        newest = max((m[0] for m in held), default=None)
        if newest is not None and newest - stamp_ns > self.jump_ns:
            self._evict_future(index, stamp_ns)
        elif newest is not None and stamp_ns < newest:
            # Out of order: the search so far assumed nothing older would come; restart it.
            self._cancel_search()
        bisect.insort(self._queues[index], (stamp_ns, payload), key=lambda m: m[0])
        if len(self._queues[index]) + len(self._past[index]) > self.queue_size:
            self._cancel_search()
            self._queues[index].pop(0)
            self.stats.drop("queue_overflow", index)
            self._overflowed[index] = True
        emitted: list[tuple[Message, ...]] = []
        self._process(emitted)
        return emitted

    def _evict_future(self, index: int, stamp_ns: int) -> None:
        """Drop the messages of `index` stamped more than jump_threshold after `stamp_ns`."""
        self._cancel_search()
        queue = self._queues[index]
        keep = [m for m in queue if m[0] - stamp_ns <= self.jump_ns]
        evicted = len(queue) - len(keep)
        self._queues[index] = keep
        self.stats.drop("future_outlier", index, evicted)
        self._notices.append(("future_outlier", (
            f"input {index}: {evicted} message(s) stamped more than jump_threshold={self.jump_ns / 1e9:g} s "
            f"after the newest one ({stamp_ns / 1e9:.3f} s) were evicted as future stamps")))

    def pending(self) -> list[int]:
        """Messages currently held per input."""
        return [len(q) + len(p) for q, p in zip(self._queues, self._past, strict=True)]

    def pop_notices(self) -> list[tuple[str, str]]:
        """(kind, text) of the restarts and evictions since the last call, for the caller to log."""
        notices, self._notices = self._notices, []
        return notices

    def describe_stall(self, names) -> str:
        """Why no set is being completed, in words naming the inputs (for a throttled warning)."""
        latest = [t for t in self.latest if t is not None]
        if len(latest) < self.num_inputs:
            missing = [n for n, t in zip(names, self.latest, strict=True) if t is None]
            return f"nothing received yet on {', '.join(missing)}"
        lead = max(range(self.num_inputs), key=lambda i: self.latest[i])
        lag = min(range(self.num_inputs), key=lambda i: self.latest[i])
        ahead = self.latest[lead] - self.latest[lag]
        stale = self.stats.total_dropped("stale")
        stale_new, self._stall_seen = stale - self._stall_seen, stale
        if ahead > self.jump_ns:
            return (f"{names[lead]} is {ahead / 1e9:.3f} s ahead of {names[lag]} (a future stamp or a clock "
                    f"jump on one sensor, beyond jump_threshold={self.jump_ns / 1e9:g} s): its messages wait "
                    f"until {names[lag]} catches up or its own stamps come back")
        if stale_new:
            return (f"{stale_new} message(s) were older than the last set (stale): a clock went back by "
                    f"less than jump_threshold={self.jump_ns / 1e9:g} s")
        detail = ", ".join(f"{n} {t / 1e9:.3f}" for n, t in zip(names, self.latest, strict=True))
        return (f"no set within slop={self.slop_ns / 1e9:g} s; latest stamps {detail} "
                f"(spread {ahead / 1e9:.3f} s)")

    # ------------------------------------------------------------ internals
    def _cancel_search(self) -> None:
        for q, p in zip(self._queues, self._past, strict=True):
            q[:0] = p
            p.clear()
        self._pivot = None
        self._candidate = None

    def _newest(self, i: int) -> int:
        queued = self._queues[i][-1][0] if self._queues[i] else 0
        return max(queued, self._past[i][-1][0] if self._past[i] else 0)

    def _all_non_empty(self) -> bool:
        return all(self._queues)

    def _bounds(self) -> tuple[int, int, int, int]:
        """(start_index, start_time, end_index, end_time) over the queue fronts.

        An empty queue (only during the virtual search, with a pivot) stands for its next
        message, bounded below by the last message moved aside and by the pivot time.
        """
        times = []
        for q, p in zip(self._queues, self._past, strict=True):
            times.append(q[0][0] if q else max(p[-1][0], self._pivot_time))
        start_i = min(range(len(times)), key=lambda i: (times[i], i))  # first of the earliest
        end_i = max(range(len(times)), key=lambda i: (times[i], i))  # last of the latest
        return start_i, times[start_i], end_i, times[end_i]

    def _move_front_to_past(self, i: int) -> None:
        self._past[i].append(self._queues[i].pop(0))

    def _drop_front(self, i: int, reason: str) -> None:
        self._queues[i].pop(0)
        self.stats.drop(reason, i)

    def _make_candidate(self, start: int, end: int) -> None:
        self._candidate = tuple(q[0] for q in self._queues)
        self._cand_start, self._cand_end = start, end
        for i, p in enumerate(self._past):
            for _ in p:
                self.stats.drop("unmatched", i)
            p.clear()

    def _publish(self, emitted: list) -> None:
        emitted.append(self._candidate)
        self.stats.emitted_sets += 1
        for i, (q, p) in enumerate(zip(self._queues, self._past, strict=True)):
            q[:0] = p
            p.clear()
            q.pop(0)  # the candidate's message: everything older was already dropped
            self._last_emitted[i] = self._candidate[i][0]
        self._candidate = None
        self._pivot = None

    def _process(self, emitted: list) -> None:
        while self._all_non_empty():
            start_i, start_t, end_i, end_t = self._bounds()
            for i in range(self.num_inputs):
                if i != end_i:
                    self._overflowed[i] = False
            if self._pivot is None:
                if end_t - self._newest(start_i) > self.jump_ns:
                    # The end message is far ahead of all that start's input has sent: a
                    # future outlier (evicted when its input comes back) or the first of a
                    # jump. Dropping the others on its account would lose good sets: wait.
                    return
                if end_t - start_t > self.slop_ns or self._overflowed[end_i]:
                    # No set containing this start message can be within slop (or the end
                    # input lost messages, so its front may not be the true pivot).
                    self._drop_front(start_i, "unmatched")
                    continue
                self._make_candidate(start_t, end_t)
                self._pivot, self._pivot_time = end_i, end_t
                self._move_front_to_past(start_i)
            else:
                if end_t - self._cand_end < start_t - self._cand_start:
                    self._make_candidate(start_t, end_t)
                self._move_front_to_past(start_i)

            if start_i == self._pivot:
                self._publish(emitted)  # every set containing the pivot message was seen
            elif end_t - self._cand_end >= self._pivot_time - self._cand_start:
                self._publish(emitted)  # any later set has a larger spread
            elif not self._all_non_empty():
                self._virtual_search(emitted)

    def _virtual_search(self, emitted: list) -> None:
        """With an input exhausted, decide whether waiting could still give a better set."""
        moved: list[int] = []
        while True:
            start_i, start_t, end_i, end_t = self._bounds()
            if end_t - self._cand_end >= self._pivot_time - self._cand_start:
                self._publish(emitted)
                return
            if end_t - self._cand_end < start_t - self._cand_start:
                # A better set may still come: undo the virtual moves and wait for input.
                for i in reversed(moved):
                    self._queues[i].insert(0, self._past[i].pop())
                return
            # start_t < pivot time here, so start_i is a real (non-empty) queue.
            self._move_front_to_past(start_i)
            moved.append(start_i)


def synchronize(
    messages: Iterable[tuple[int, int, Any]],
    num_inputs: int,
    queue_size: int = 10,
    slop: float = 0.1,
    jump_threshold: float | None = None,
) -> Iterator[tuple[Message, ...]]:
    """Run the policy over (input_index, stamp_ns, payload) in arrival order; yield the sets."""
    sync = ApproximateTimeSynchronizer(num_inputs, queue_size, slop, jump_threshold)
    for index, stamp, payload in messages:
        yield from sync.add(index, stamp, payload)

"""Approximate time synchronisation of N message streams, without ROS.

This is the policy of message_filters' ApproximateTimeSynchronizer (the C++
`ApproximateTime` policy): message_filters is optional at run time and bags are read without
ROS. It is shared by the ROS node
and the rosbag dataset, so that recorded and live data are paired the same way.

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
- every dropped message is counted per input and per reason (`stats`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApproximateTimeSynchronizer", "SyncStats", "synchronize"]

Message = tuple[int, Any]  # (stamp_ns, payload)


@dataclass
class SyncStats:
    """Counts of what happened to the messages given to the synchroniser."""

    received: list[int]
    emitted_sets: int = 0
    # Per input: messages that left the queues without being part of a set, by reason.
    dropped: dict[str, list[int]] = field(default_factory=dict)

    def drop(self, reason: str, index: int) -> None:
        self.dropped.setdefault(reason, [0] * len(self.received))[index] += 1

    def total_dropped(self, reason: str | None = None) -> int:
        if reason is not None:
            return sum(self.dropped.get(reason, ()))
        return sum(sum(v) for v in self.dropped.values())


class ApproximateTimeSynchronizer:
    """Pairs messages of `num_inputs` streams by approximate stamp (see module docstring).

    `add(index, stamp_ns, payload)` returns the list of sets completed by this message
    (usually zero or one); a set is a tuple of (stamp_ns, payload), one per input.
    `queue_size` bounds the messages held per input, `slop` (seconds) the spread of a set.
    """

    def __init__(self, num_inputs: int, queue_size: int = 10, slop: float = 0.1):
        if int(num_inputs) < 2:
            raise ValueError(f"num_inputs must be >= 2, got {num_inputs}")
        if int(queue_size) < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop >= 0:
            raise ValueError(f"slop must be a non-negative number of seconds, got {slop}")
        self.num_inputs = int(num_inputs)
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self.reset()

    def reset(self) -> None:
        n = self.num_inputs
        self._queues: list[list[Message]] = [[] for _ in range(n)]  # sorted by stamp, oldest first
        self._past: list[list[Message]] = [[] for _ in range(n)]  # moved aside during the search
        self._last_emitted: list[int | None] = [None] * n
        self._overflowed = [False] * n
        self._pivot: int | None = None
        self._pivot_time = 0
        self._candidate: tuple[Message, ...] | None = None
        self._cand_start = 0
        self._cand_end = 0
        self.stats = SyncStats(received=[0] * n)

    # ------------------------------------------------------------------ input
    def add(self, index: int, stamp_ns: int, payload: Any = None) -> list[tuple[Message, ...]]:
        if not 0 <= index < self.num_inputs:
            raise ValueError(f"input index {index} out of range for {self.num_inputs} inputs")
        stamp_ns = int(stamp_ns)
        self.stats.received[index] += 1
        last = self._last_emitted[index]
        if last is not None and stamp_ns <= last:
            self.stats.drop("duplicate" if stamp_ns == last else "stale", index)
            return []
        held = self._queues[index] + self._past[index]
        if any(m[0] == stamp_ns for m in held):
            self.stats.drop("duplicate", index)
            return []

        emitted: list[tuple[Message, ...]] = []
        newest = max((m[0] for m in held), default=None)
        if newest is not None and stamp_ns < newest:
            # Out of order: the search so far assumed nothing older would come; restart it.
            self._cancel_search()
            bisect.insort(self._queues[index], (stamp_ns, payload), key=lambda m: m[0])
        else:
            self._queues[index].append((stamp_ns, payload))
        if len(self._queues[index]) + len(self._past[index]) > self.queue_size:
            self._cancel_search()
            self._queues[index].pop(0)
            self.stats.drop("queue_overflow", index)
            self._overflowed[index] = True
        self._process(emitted)
        return emitted

    def pending(self) -> list[int]:
        """Messages currently held per input."""
        return [len(q) + len(p) for q, p in zip(self._queues, self._past, strict=True)]

    # ------------------------------------------------------------ internals
    def _cancel_search(self) -> None:
        for q, p in zip(self._queues, self._past, strict=True):
            q[:0] = p
            p.clear()
        self._pivot = None
        self._candidate = None

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
    messages: Iterable[tuple[int, int, Any]], num_inputs: int, queue_size: int = 10, slop: float = 0.1
) -> Iterator[tuple[Message, ...]]:
    """Run the policy over (input_index, stamp_ns, payload) in arrival order; yield the sets."""
    sync = ApproximateTimeSynchronizer(num_inputs, queue_size=queue_size, slop=slop)
    for index, stamp, payload in messages:
        yield from sync.add(index, stamp, payload)

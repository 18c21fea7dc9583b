"""The ROS-free ApproximateTime policy: hand-made cases and random streams vs brute force."""

import itertools
import random

import pytest

from selfdc_core.sync import ApproximateTimeSynchronizer, synchronize

MS = 1_000_000


def stamps_of(sets):
    return [tuple(m[0] for m in s) for s in sets]


def run(messages, n, queue_size=100, slop=1.0):
    return stamps_of(synchronize(messages, n, queue_size=queue_size, slop=slop))


def brute_force_reference(streams, slop_ns):
    """Offline definition of the policy for in-order streams and unbounded queues.

    While every stream has messages: if the heads span more than slop, drop the earliest
    head; otherwise the latest head is the pivot, and the emitted set is, among all sets
    containing the pivot head and later-or-equal messages of the other streams, the one with
    the smallest spread (then the earliest); every stream then restarts after its message.
    """
    heads = [0] * len(streams)
    out = []
    while all(h < len(s) for h, s in zip(heads, streams, strict=True)):
        fronts = [s[h] for h, s in zip(heads, streams, strict=True)]
        start_i = min(range(len(fronts)), key=lambda i: (fronts[i], i))
        end_i = max(range(len(fronts)), key=lambda i: (fronts[i], i))
        if fronts[end_i] - fronts[start_i] > slop_ns:
            heads[start_i] += 1
            continue
        choices = [
            [(streams[i][heads[i]], heads[i])]
            if i == end_i
            else [(t, k) for k, t in enumerate(streams[i]) if k >= heads[i]]
            for i in range(len(streams))
        ]
        best = min(
            itertools.product(*choices),
            key=lambda c: (
                max(t for t, _ in c) - min(t for t, _ in c),
                min(t for t, _ in c),
                [k for _, k in c],
            ),
        )
        out.append(tuple(t for t, _ in best))
        heads = [k + 1 for _, k in best]
    return out


def test_pairs_nearest_messages_two_inputs():
    msgs = [
        (0, 100 * MS, "a0"),
        (1, 103 * MS, "b0"),
        (0, 200 * MS, "a1"),
        (1, 198 * MS, "b1"),
        (0, 300 * MS, "a2"),
        (1, 250 * MS, "b2"),
    ]  # b2 proves that no later cloud pairs better with a1
    sets = list(synchronize(msgs, 2, queue_size=10, slop=0.01))
    assert [tuple(p for _, p in s) for s in sets] == [("a0", "b0"), ("a1", "b1")]


def test_picks_minimal_spread_not_first_arrival():
    # Camera at 10 Hz, lidar at 30 Hz: each image must pair with the closest cloud.
    msgs = [(0, 100 * MS, "img")] + [(1, t * MS, f"pc{t}") for t in (80, 97, 110, 140)]
    sets = list(synchronize(msgs, 2, slop=0.05))
    assert [tuple(p for _, p in s) for s in sets] == [("img", "pc97")]


def test_slop_rejects_sets_and_counts_unmatched():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.01)
    assert sync.add(0, 100 * MS) == []
    assert sync.add(1, 150 * MS) == []  # 50 ms apart > 10 ms slop
    assert sync.stats.total_dropped("unmatched") == 1  # the old image can never be used
    assert sync.pending() == [0, 1]
    assert sync.add(0, 155 * MS) == []  # a cloud at 152..158 ms would pair better: wait
    assert stamps_of(sync.add(1, 170 * MS)) == [(155 * MS, 150 * MS)]


def test_inputs_that_never_synchronise_stay_bounded():
    sync = ApproximateTimeSynchronizer(3, queue_size=5, slop=0.01)
    for k in range(200):
        sync.add(0, (k * 100) * MS)
        sync.add(1, (k * 100 + 40) * MS)  # always 40 ms away from input 0
        sync.add(2, (k * 100 + 80) * MS)
    assert sync.stats.emitted_sets == 0
    assert max(sync.pending()) <= 5
    assert sync.stats.total_dropped() == sum(sync.stats.received) - sum(sync.pending())


def test_missing_input_emits_nothing_then_recovers():
    sync = ApproximateTimeSynchronizer(3, queue_size=4, slop=0.02)
    for k in range(10):  # input 2 is silent
        assert sync.add(0, k * 100 * MS) == []
        assert sync.add(1, k * 100 * MS + 1) == []
    assert sync.pending()[:2] == [4, 4]
    assert sync.stats.total_dropped("queue_overflow") == 12
    sync.add(0, 1000 * MS)
    sync.add(1, 1000 * MS)
    out = sync.add(2, 1000 * MS)  # equal stamps: provably optimal at once
    assert stamps_of(out) == [(1000 * MS, 1000 * MS, 1000 * MS)]


def test_duplicate_stamps_are_dropped_and_counted():
    sync = ApproximateTimeSynchronizer(2, slop=0.01)
    sync.add(0, 100 * MS, "a")
    sync.add(0, 100 * MS, "a-again")
    out = sync.add(1, 100 * MS, "b")
    assert [tuple(p for _, p in s) for s in out] == [("a", "b")]
    assert sync.add(1, 100 * MS, "b-again") == []  # same stamp as an emitted message
    assert sync.stats.total_dropped("duplicate") == 2


def test_out_of_order_is_reordered_and_stale_is_dropped():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.05)
    sync.add(0, 300 * MS, "a300")
    sync.add(0, 100 * MS, "a100")  # late but still usable
    out = sync.add(1, 102 * MS, "b102")
    assert [tuple(p for _, p in s) for s in out] == [("a100", "b102")]
    assert sync.add(0, 50 * MS, "a50") == []  # older than what was emitted on input 0
    assert sync.stats.total_dropped("stale") == 1
    assert sync.add(1, 299 * MS, "b299") == []  # a cloud in 299..301 ms could still come
    out = sync.add(1, 320 * MS, "b320")
    assert [tuple(p for _, p in s) for s in out] == [("a300", "b299")]


def test_waits_until_a_better_partner_is_impossible():
    sync = ApproximateTimeSynchronizer(2, slop=1.0)
    sync.add(0, 100 * MS)
    assert sync.add(1, 90 * MS) == []  # a cloud at 95..110 ms would be better: wait
    out = sync.add(1, 104 * MS)  # 104 beats 90, and any later cloud is farther from 100
    assert stamps_of(out) == [(100 * MS, 104 * MS)]
    assert sync.stats.total_dropped("unmatched") == 1


def test_deterministic_for_equal_streams():
    rng = random.Random(3)
    msgs = [(rng.randrange(3), rng.randrange(10**9), None) for _ in range(300)]
    assert run(msgs, 3, queue_size=5, slop=0.05) == run(msgs, 3, queue_size=5, slop=0.05)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_inputs"):
        ApproximateTimeSynchronizer(1)
    with pytest.raises(ValueError, match="queue_size"):
        ApproximateTimeSynchronizer(2, queue_size=0)
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSynchronizer(2, slop=-1)
    with pytest.raises(ValueError, match="index"):
        ApproximateTimeSynchronizer(2).add(2, 0)


@pytest.mark.parametrize("seed", range(40))
def test_random_in_order_streams_match_brute_force(seed):
    rng = random.Random(seed)
    n = rng.choice([2, 3, 4])
    streams = []
    for _ in range(n):
        period = rng.randint(20, 120)
        t, stream = rng.randint(0, 100), []
        for _ in range(rng.randint(3, 12)):
            t += rng.randint(1, 2 * period)
            stream.append(t * MS + rng.randrange(MS))  # sub-ms jitter: ties practically impossible
        streams.append(stream)
    # A final message far in the future on every input settles every earlier set.
    end = max(s[-1] for s in streams) + 10**12
    for k, s in enumerate(streams):
        s.append(end + k)
    slop = rng.choice([0.01, 0.05, 0.2, 10.0])
    # Random interleaving across inputs, in order within each input.
    cursors, msgs = [0] * n, []
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        i = rng.choice([k for k in range(n) if cursors[k] < len(streams[k])])
        msgs.append((i, streams[i][cursors[i]], None))
        cursors[i] += 1
    got = run(msgs, n, queue_size=1000, slop=slop)
    expected = [s for s in brute_force_reference(streams, int(slop * 1e9)) if max(s) < end]
    assert got == expected
    assert sum(len(s) for s in streams) > 3 * n  # not a trivial case


@pytest.mark.parametrize("seed", range(20))
def test_random_shuffled_arrival_keeps_invariants(seed):
    rng = random.Random(100 + seed)
    n, slop = 3, 0.03
    msgs = [(rng.randrange(n), rng.randrange(2000) * MS + rng.randrange(MS), None) for _ in range(120)]
    sync = ApproximateTimeSynchronizer(n, queue_size=6, slop=slop)
    sets = []
    for i, t, p in msgs:
        sets.extend(sync.add(i, t, p))
    st = stamps_of(sets)
    for s in st:
        assert max(s) - min(s) <= slop * 1e9
    for a, b in zip(st[:-1], st[1:], strict=True):
        assert all(x < y for x, y in zip(a, b, strict=True))  # sets never cross or reuse
    assert max(sync.pending()) <= 6
    assert sum(sync.stats.received) == n * len(sets) + sync.stats.total_dropped() + sum(sync.pending())

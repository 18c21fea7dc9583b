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
    # Arrival order spans the whole 2 s: a threshold above it keeps this about reordering only.
    sync = ApproximateTimeSynchronizer(n, queue_size=6, slop=slop, jump_threshold=5.0)
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


DAY = 24 * 3600 * 10**9


def _feed_sets(sync, stamps, order=(1, 2, 0)):
    """One message per input at each stamp, in `order` (camera_info, cloud, then image, as drivers)."""
    out = []
    for t in stamps:
        for i in order:
            out.extend(sync.add(i, t, (i, t)))
    return stamps_of(out)


def test_whole_set_in_the_future_then_normal_time_restarts():
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.05)
    normal = [k * 100 * MS for k in range(1, 6)]
    assert len(_feed_sets(sync, normal)) == 5  # equal stamps: each set is optimal at once
    assert _feed_sets(sync, [normal[-1] + DAY]) == [(normal[-1] + DAY,) * 3]
    later = [normal[-1] + k * 100 * MS for k in range(1, 500)]
    assert _feed_sets(sync, later) == [(t,) * 3 for t in later]  # the very next set, and all after
    assert sync.stats.time_jumps == 1
    assert [kind for kind, _ in sync.pop_notices()] == ["time_jump"]
    assert sync.stats.total_dropped("stale") == 0


def test_single_future_image_is_evicted_and_the_next_set_completes():
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.05)
    assert _feed_sets(sync, [100 * MS]) == [(100 * MS,) * 3]
    sync.add(1, 200 * MS)
    sync.add(2, 200 * MS)
    sync.add(0, 200 * MS + DAY)  # the image of this set is stamped a day ahead
    later = [k * 100 * MS for k in range(3, 503)]
    got = _feed_sets(sync, later)
    # The set whose image was a day ahead is lost (its image never came); the next one is not.
    assert got == [(t,) * 3 for t in later]
    assert sync.stats.dropped["future_outlier"] == [1, 0, 0]
    assert [kind for kind, _ in sync.pop_notices()] == ["future_outlier"]


def test_bag_loop_goes_back_in_time_and_keeps_pairing():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.01)
    loop = [10**9 + k * 100 * MS for k in range(50)]
    got = []
    for _ in range(3):
        got += _feed_sets(sync, loop, order=(1, 0))
    assert got == [(t, t) for t in loop] * 3
    assert sync.stats.time_jumps == 2


def test_forward_jump_of_every_input_resumes_after_it():
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.05)
    before = [k * 100 * MS for k in range(1, 20)]
    after = [t + 3600 * 10**9 for t in before]
    assert _feed_sets(sync, before + after) == [(t,) * 3 for t in before + after]
    # One input jumping first: the others are not dropped because of it.
    sync.add(0, after[-1] + 3600 * 10**9)
    for i in (1, 2):
        sync.add(i, after[-1] + 100 * MS)
    assert sync.stats.total_dropped() == 0
    jumped = after[-1] + 3600 * 10**9 + 100 * MS  # then all inputs are past the jump: sets resume
    assert _feed_sets(sync, [jumped], order=(0, 1, 2)) == [(jumped,) * 3]
    assert sync.stats.time_jumps == 0


def test_stall_names_the_input_that_is_ahead():
    sync = ApproximateTimeSynchronizer(3, queue_size=5, slop=0.05)
    names = ("image", "camera_info", "sparse")
    sync.add(0, 10 * 10**9 + DAY)
    assert "nothing received yet on camera_info, sparse" in sync.describe_stall(names)
    for k in range(20):
        sync.add(1, 10 * 10**9 + k * 100 * MS)
        sync.add(2, 10 * 10**9 + k * 100 * MS)
    assert max(sync.pending()) <= 5  # the others wait, bounded, instead of being called unmatched
    assert sync.stats.total_dropped("unmatched") == 0
    text = sync.describe_stall(names)
    assert text.startswith("image is 86398.100 s ahead") and "ahead of camera_info" in text
    sync2 = ApproximateTimeSynchronizer(2, slop=0.01)
    _feed_sets(sync2, [5 * 10**9, 6 * 10**9], order=(1, 0))
    sync2.add(0, 5 * 10**9 + 500 * MS)  # back, but by less than the threshold
    assert "stale" in sync2.describe_stall(names[:2])


def test_stamp_gaps_count_lost_messages_per_input():
    sync = ApproximateTimeSynchronizer(2, queue_size=10, slop=0.01)
    period = 33_333_333  # 30 Hz
    for k in range(301):  # the last message is received: a loss shows only when one comes after it
        t = 10**9 + k * period
        sync.add(0, t)
        # After a second, input 1 loses every 3rd message, and a burst of 10.
        if k < 30 or (k % 3 != 2 and not 100 <= k < 110):
            sync.add(1, t)
    rates = sync.stats.input_rates(("image", "cloud"))
    assert rates["image"]["missed"] == 0 and rates["image"]["stamp_gaps"] == 0
    assert rates["image"]["expected_hz"] == pytest.approx(30.0, rel=1e-3)
    lost = 301 - rates["cloud"]["received"]
    # Half the steps of input 1 lose a message, yet its period is known: every loss is seen.
    assert rates["cloud"]["missed"] == lost
    assert rates["cloud"]["received_fraction"] == pytest.approx(rates["cloud"]["received"] / 301)


def test_time_jumps_are_not_gaps_and_thresholds_are_checked():
    sync = ApproximateTimeSynchronizer(2, slop=0.01)
    for k in range(20):
        sync.add(0, 10**9 + k * 100 * MS)
    sync.add(0, 10**9 + DAY)
    assert sync.stats.gaps[0].missed == 0
    for k in range(20, 40):  # back from the jump: counting goes on
        if k != 30:
            sync.add(0, 10**9 + k * 100 * MS)
    assert (sync.stats.gaps[0].gaps, sync.stats.gaps[0].missed) == (1, 1)
    with pytest.raises(ValueError, match="slop"):
        ApproximateTimeSynchronizer(2, slop=float("nan"))
    with pytest.raises(ValueError, match="jump_threshold"):
        ApproximateTimeSynchronizer(2, slop=0.5, jump_threshold=0.2)

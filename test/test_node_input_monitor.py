"""Stamp-gap loss counting and receive rates of one input (no ROS needed)."""

from __future__ import annotations

import numpy as np
from ros_helpers import image_msg

from selfdc_ros.input_monitor import InputMonitor

PERIOD = 100_000_000  # 10 Hz in ns


def feed(monitor, stamps, start_s=0.0):
    return [monitor.record(int(s), start_s + k * 0.1) for k, s in enumerate(stamps)]


def test_gaps_in_the_stamps_count_the_lost_messages():
    m = InputMonitor()
    kept = [k for k in range(60) if k % 3 != 2]  # every third message never arrives
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(kept)) * PERIOD
    missed = feed(m, np.array(kept) * PERIOD + jitter)
    # 20 lost; the last is never followed by a message, the first comes before the period is known
    assert m.missed_total == sum(missed) == 18
    assert abs(1e9 / m.period_ns() - 10.0) < 0.5


def test_steady_stream_with_jitter_loses_nothing():
    m = InputMonitor()
    jitter = np.random.default_rng(1).uniform(-0.2, 0.2, 100) * PERIOD  # intervals within ±40%
    stamps = np.arange(100) * PERIOD + jitter
    feed(m, stamps)
    assert m.missed_total == 0 and m.pauses == 0


def test_expected_rate_reveals_a_stream_that_always_drops_half():
    m = InputMonitor()
    m.expected_rate_hz = 10.0
    feed(m, np.arange(20) * 2 * PERIOD)  # 5 Hz arriving where 10 Hz is expected
    assert m.missed_total == 19


def test_a_lasting_change_of_rate_is_learnt_rather_than_counted_as_losses():
    m = InputMonitor()
    feed(m, np.arange(20) * PERIOD)
    feed(m, 19 * PERIOD + np.arange(1, 60) * 3 * PERIOD, 2.0)  # the sender drops to 3.3 Hz
    assert m.missed_total == 20  # two per interval until ten gaps in a row reset the estimate
    assert abs(1e9 / m.period_ns() - 10 / 3) < 0.1


def test_pauses_and_backward_jumps_are_not_losses():
    m = InputMonitor()
    feed(m, np.arange(10) * PERIOD)
    m.record(10 * PERIOD + 60 * 10**9, 2.0)  # a minute later: a pause (bag loop, restart)
    m.record(5 * PERIOD, 2.1)  # time jumps back
    feed(m, 5 * PERIOD + np.arange(1, 10) * PERIOD, 2.2)
    assert m.missed_total == 0 and m.pauses == 1


def test_window_reports_receive_and_stamp_rates_then_restarts():
    m = InputMonitor()
    feed(m, np.arange(0, 40, 2) * PERIOD // 2)  # 20 messages at 10 Hz over 2 s of wall time
    window = m.take_window(2.0)
    assert window.received == 20 and abs(window.receive_rate_hz - 10.0) < 0.6
    assert abs(window.stamp_rate_hz - 10.0) < 1e-6 and window.missed == 0
    empty = m.take_window(3.0)
    assert empty.received == 0 and empty.receive_rate_hz == 0.0 and empty.seconds == 1.0


def test_image_msg_step_is_one_row_of_pixels_even_for_a_one_row_slice():
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    for arr, encoding in ((rgb[2:3], "rgb8"), (rgb[:, :4][1:2], "rgb8"), (rgb[..., 0][3:4], "mono8")):
        msg = image_msg(arr, encoding, 1)
        channels = 3 if encoding == "rgb8" else 1
        assert msg.step == arr.shape[1] * channels and len(msg.data) == msg.step * msg.height
        decoded = np.frombuffer(bytes(msg.data), np.uint8).reshape(arr.shape)
        assert np.array_equal(decoded, arr)
    depth = np.ones((1, 9), np.float32)[:, :6]
    assert image_msg(depth, "32FC1", 1).step == 24

"""The node's /diagnostics: one DiagnosticStatus per stage, over the last window (~1 s).

Every figure is about the window since the previous message, so a stage's level returns to
OK as soon as a window is clean. Totals since activation are reported beside them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from selfdc_ros.input_monitor import InputWindow

__all__ = ["WindowCounter", "input_status", "inference_status", "output_status", "synchroniser_status"]

OK, WARN = DiagnosticStatus.OK, DiagnosticStatus.WARN


class WindowCounter:
    """Turns running totals into per-window increments."""

    def __init__(self):
        self._previous: Counter = Counter()

    def delta(self, totals: dict) -> Counter:
        current = Counter({k: v for k, v in totals.items() if v})
        out = Counter({k: v - self._previous.get(k, 0) for k, v in current.items()})
        self._previous = current
        return +out  # drops zeros


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _status(name: str, hardware_id: str, problems: list[str], ok_message: str, values: dict):
    return DiagnosticStatus(
        level=WARN if problems else OK,
        name=name,
        message="; ".join(problems) if problems else ok_message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_fmt(v)) for k, v in values.items()],
    )


def input_status(name: str, topic: str, w: InputWindow, expected_hz: float, bad: int, tolerance: float):
    """One input: receive rate against the expected rate, stamp gaps, bad messages."""
    expected = expected_hz if expected_hz > 0 else w.stamp_rate_hz
    rate = w.receive_rate_hz
    problems = []
    if w.received == 0:
        problems.append("no messages in the last window")
    elif expected > 0 and rate < (1.0 - tolerance) * expected:
        problems.append(f"receiving {rate:.1f} Hz, expected {expected:.1f} Hz")
    if w.missed:
        problems.append(f"{w.missed} messages lost (stamp gaps)")
    if bad:
        problems.append(f"{bad} bad messages skipped")
    values = {
        "received": w.received,
        "receive_rate_hz": rate,
        "expected_rate_hz": expected,
        "expected_rate_from": "parameter" if expected_hz > 0 else "stamps",
        "stamp_rate_hz": w.stamp_rate_hz,
        "lost_from_stamp_gaps": w.missed,
        "lost_from_stamp_gaps_total": w.missed_total,
        "bad_messages": bad,
    }
    return _status(name, topic, problems, f"{rate:.1f} Hz", values)


def synchroniser_status(name: str, sets: int, drops: Counter, inputs_alive: bool, warnings: Counter):
    """Sets formed in the window and messages dropped by reason (unmatched is normal across rates)."""
    problems = []
    if inputs_alive and sets == 0:
        problems.append("every input arrives but no set synchronised")
    problems += [f"{n} x {kind}" for kind, n in sorted(warnings.items())]
    values = {"sets": sets, **{f"dropped_{k}": v for k, v in sorted(drops.items())}}
    return _status(name, "", problems, f"{sets} sets", values)


def _percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {}
    p50, p95 = np.percentile(latencies, [50, 95])
    return {
        "latency_p50_ms": float(p50),
        "latency_p95_ms": float(p95),
        "latency_max_ms": float(max(latencies)),
    }


def inference_status(name: str, device: str, frames: list[dict], window: Counter, lazy_idle: bool):
    """Frames completed, latency percentiles, mean stage times, drops and errors in the window."""
    values: dict = {"frames_completed": len(frames)}
    values.update(_percentiles([f["latency"] for f in frames if "latency" in f]))
    stages = sorted({k for f in frames for k in f} - {"latency"})
    values.update({f"{k}_mean_ms": float(np.mean([f[k] for f in frames if k in f])) for k in stages})
    values["sets_dropped_busy"] = window["sets_dropped_busy"]
    values["sets_skipped_no_subscriber"] = window["sets_skipped_no_subscriber"]
    values["processing_errors"] = window["processing_errors"]
    problems = [f"{window['processing_errors']} frames failed"] if window["processing_errors"] else []
    if lazy_idle and not frames:
        ok = "idle: no subscriber on any output"
    else:
        ok = f"{len(frames)} frames" + (f", latency p95 {values['latency_p95_ms']:.0f} ms" if frames else "")
    return _status(name, device, problems, ok, values)


def output_status(name: str, published: Counter):
    values = {f"published_{k}": v for k, v in sorted(published.items())}
    return _status(name, "", [], f"{published['depth']} depth images", values)

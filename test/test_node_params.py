"""The node's parameter table: coercion as users write YAML, and the checks shared by start-up
and live changes (no ROS needed; the same checks over DDS are in test_node_lifecycle.py)."""

from __future__ import annotations

import array

import pytest

from selfdc_ros.params import PARAMETERS, ParameterError, coerce, coerce_values, problems, validate

DEFAULTS = {p.name: p.default for p in PARAMETERS}
BY_NAME = {p.name: p for p in PARAMETERS}


def test_defaults_are_valid_and_every_parameter_is_live_or_read_only():
    assert validate(DEFAULTS) == DEFAULTS
    live = {p.name for p in PARAMETERS if p.live}
    assert {
        "max_depth",
        "colorize.min_depth",
        "colorize.max_depth",
        "cloud_stride",
        "keep_measurements",
    } <= live
    assert {"output.depth_colorized", "output.points", "output.confidence"} <= live
    assert {"checkpoint", "device", "sync.slop", "sparse_source", "extrinsic.source"}.isdisjoint(live)


def test_ints_are_accepted_for_doubles_and_lists_of_doubles():
    assert coerce(BY_NAME["max_depth"], 10) == 10.0 and isinstance(coerce(BY_NAME["max_depth"], 10), float)
    assert coerce(BY_NAME["extrinsic.translation"], [0, 0, 1]) == [0.0, 0.0, 1.0]
    assert coerce(BY_NAME["extrinsic.translation"], array.array("q", [1, 2, 3])) == [1.0, 2.0, 3.0]
    assert coerce(BY_NAME["cloud_stride"], 2.0) == 2.0  # never the other way: 2.0 is not an integer
    values = validate({**DEFAULTS, "max_depth": 10, "extrinsic.rotation": [0, 0, 0, 1], "sync.slop": 1})
    assert values["max_depth"] == 10.0 and values["sync.slop"] == 1.0
    assert all(isinstance(v, float) for v in values["extrinsic.rotation"])
    assert coerce_values({"not_a_parameter": 3})["not_a_parameter"] == 3


@pytest.mark.parametrize(
    "changes, names, message",
    [
        ({"sync.slop": float("nan")}, ("sync.slop",), "expected a finite number"),
        ({"cloud_stride": 2.0}, ("cloud_stride",), "expected an integer"),
        ({"warmup": 1}, ("warmup",), "expected a boolean"),
        ({"max_depth": True}, ("max_depth",), "expected a number"),
        ({"extrinsic.matrix": [1.0, 0.0]}, ("extrinsic.matrix",), "needs 16 values"),
        ({"extrinsic.translation": [0.0, float("inf"), 0.0]}, ("extrinsic.translation",), "non-finite"),
        ({"input_width": 320}, ("input_height", "input_width"), "must both be > 0"),
        ({"diagnostics.rate_tolerance": 1.5}, ("diagnostics.rate_tolerance",), "expected <= 1.0"),
    ],
)
def test_problems_name_the_parameter_and_what_was_expected(changes, names, message):
    with pytest.raises(ParameterError, match=message) as info:
        validate({**DEFAULTS, **changes})
    assert info.value.names == names
    assert all(f"'{n}'" in str(info.value) or n in str(info.value) for n in names)


def test_problems_lists_every_unusable_parameter():
    found = problems({**DEFAULTS, "cloud_stride": 0, "sparse_source": "radar"})
    assert {e.names for e in found} == {("cloud_stride",), ("sparse_source",)}

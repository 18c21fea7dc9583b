"""Checkpoints: atomic, safe to load, exact RNG capture, clear errors naming the file."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from selfdc_core.model_io import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_model_config,
    content_hash,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from selfdc_core.training.rng import capture_rng_state, restore_rng_state


def _state(model: torch.nn.Module) -> dict:
    return {"model_config": {"width": 4}, "model": model.state_dict(), "config": {"train": {"seed": 0}},
            "epoch": 1, "step": 7, "rng": capture_rng_state()}


def test_roundtrip_is_exact_and_leaves_no_temp_file(tmp_path):
    model = torch.nn.Linear(3, 4)
    path = save_checkpoint(tmp_path / "ck" / "last.pt", _state(model))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]
    state = load_checkpoint(path)
    assert state["format"] == CHECKPOINT_FORMAT and state["step"] == 7
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v)


def test_overwrite_replaces_atomically(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {**_state(torch.nn.Linear(2, 2)), "step": 1})
    save_checkpoint(path, {**_state(torch.nn.Linear(2, 2)), "step": 2})
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rng_state_restores_every_generator():
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])  # noqa: NPY002
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_rng_state_survives_a_weights_only_file(tmp_path):
    np.random.normal()  # noqa: NPY002 - leaves a cached gaussian in the legacy state
    save_checkpoint(tmp_path / "r.pt", {**_state(torch.nn.Linear(1, 1))})
    expected = (torch.rand(2), np.random.normal(size=2), random.random())  # noqa: NPY002
    restore_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(2), np.random.normal(size=2), random.random())  # noqa: NPY002
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_checkpoint_cannot_run_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": _Payload()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)


def test_missing_corrupt_and_foreign_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    good = save_checkpoint(tmp_path / "good.pt", _state(torch.nn.Linear(8, 8)))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt.*not a SelfDC checkpoint"):
        load_checkpoint(foreign)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}}, incomplete)
    with pytest.raises(CheckpointError, match="incomplete.pt.*model_config"):
        load_checkpoint(incomplete)


def test_weight_mismatch_lists_the_offending_keys():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match=r"run\.pt.*shape mismatches.*0\.weight"):
        load_model_weights(model, other.state_dict(), "run.pt")
    partial = {k: v for k, v in model.state_dict().items() if not k.startswith("1.")}
    with pytest.raises(CheckpointError, match=r"missing.*1\.weight"):
        load_model_weights(model, partial, "run.pt")
    before = model[0].weight.clone()
    with pytest.raises(CheckpointError):
        load_model_weights(model, other.state_dict(), "run.pt")
    assert torch.equal(model[0].weight, before)  # nothing half-loaded


def test_a_flipped_bit_in_the_weights_is_detected(tmp_path):
    model = torch.nn.Linear(16, 16)
    with torch.no_grad():
        model.weight.copy_(torch.arange(256, dtype=torch.float32).reshape(16, 16) / 7.0)
    path = save_checkpoint(tmp_path / "flip.pt", _state(model))
    raw = bytearray(path.read_bytes())
    at = raw.find(model.weight.detach().numpy().tobytes())
    assert at >= 0  # tensor bytes are stored uncompressed
    raw[at + 517] ^= 0x04  # one mantissa bit of one weight
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="flip.pt.*corrupt.*SHA-256"):
        load_checkpoint(path)


def test_the_hash_covers_plain_values_and_is_rewritten_on_save(tmp_path):
    state = load_checkpoint(save_checkpoint(tmp_path / "a.pt", _state(torch.nn.Linear(2, 2))))
    assert state["sha256"] == content_hash(state) and len(state["sha256"]) == 64
    assert content_hash({**state, "step": 8}) != state["sha256"]
    # A loaded state saved again (with a changed value) gets a fresh, valid hash.
    assert load_checkpoint(save_checkpoint(tmp_path / "b.pt", {**state, "step": 8}))["step"] == 8


def test_a_checkpoint_without_hash_loads_with_a_warning(tmp_path):
    legacy = {"format": "selfdc-checkpoint-v1", **_state(torch.nn.Linear(2, 2))}
    torch.save(legacy, tmp_path / "old.pt")
    with pytest.warns(UserWarning, match="old.pt.*no content hash"):
        assert load_checkpoint(tmp_path / "old.pt")["step"] == 7


@pytest.mark.parametrize("key, value, match", [
    ("prop_iterations", 10**9, r"prop_iterations=1000000000 is outside \[0, 256\]"),
    ("num_classes", 2_000_000, r"num_classes=2000000 is outside \[1, 4096\]"),
    ("num_classes", 3.5, "num_classes must be an int"),
    ("decoder_channels", 10**6, r"decoder_channels=1000000 is outside \[1, 4096\]"),
    ("depth_scale", float("nan"), "depth_scale is nan"),
])
def test_absurd_model_config_values_are_refused_before_building(tmp_path, key, value, match):
    """Values that would hang (propagation steps) or allocate gigabytes (classes) never reach the model."""
    state = {**_state(torch.nn.Linear(2, 2)), "model_config": {key: value}}
    path = save_checkpoint(tmp_path / "absurd.pt", state)
    with pytest.raises(CheckpointError, match="absurd.pt.*" + match):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="absurd.pt"):
        check_model_config({key: value}, path)
    assert check_model_config({"prop_iterations": 18, "num_classes": 32}, path)["num_classes"] == 32

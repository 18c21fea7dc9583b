"""OnlineAdapter end to end on a tiny model: learns and swaps, freezes live, the guard rejects a harmful
update, bad frames are skipped and counted, a failing learner turns itself off, weights persist."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from selfdc_core.adaptation import OnlineAdapter
from selfdc_core.inference import CheckpointError, DepthCompleter
from selfdc_core.models import build_model

FAST = {"min_gap_s": 0.0, "batch_size": 2, "swap_every": 2, "holdout_every": 3, "save_every_s": 0.0,
        "generator_kwargs": {"scale": 50.0, "min_area_fraction": 0.01}}


@pytest.fixture(scope="module")
def frames():
    from selfdc_core.data import SyntheticScenes

    scenes = SyntheticScenes(6, seed=5, height=32, width=48, environment="room", lidar_beams=16)
    return [(f.rgb, scenes.sparse_depth(i, f), f.K) for i, f in enumerate(map(scenes.frame, range(6)))]


_RUNNING: list[OnlineAdapter] = []


@pytest.fixture(autouse=True)
def stop_adapters():
    yield
    while _RUNNING:  # a failed test must not leave a learner thread running
        _RUNNING.pop().stop(timeout=60.0, save=False)


def make_adapter(config=None, seed=0, checkpoint=None):
    """(completer, adapter): an untrained tiny model, or the model of `checkpoint`."""
    if checkpoint is not None:
        from selfdc_core.model_io import load_checkpoint

        completer = DepthCompleter.from_checkpoint(checkpoint, device="cpu")
        weights = load_checkpoint(checkpoint)["model"]
    else:
        torch.manual_seed(seed)
        model = build_model({"backbone": "resnet18", "num_classes": 4, "prop_iterations": 1})
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        completer = DepthCompleter(model, device="cpu")
    adapter = OnlineAdapter(completer, {**FAST, **(config or {})}, checkpoint_weights=weights)
    _RUNNING.append(adapter)
    return completer, adapter


def feed(adapter, frames, rounds=1, start=0.0):
    for r in range(rounds):
        for i, (rgb, sparse, K) in enumerate(frames):
            adapter.observe(rgb, sparse, K, stamp=start + r * len(frames) + i)


def wait_for(adapter, predicate, timeout=240.0, frames=None):
    end = time.monotonic() + timeout
    stamp = 1000.0
    while time.monotonic() < end:
        stats = adapter.stats()
        if predicate(stats):
            return stats
        if frames is not None:  # keep the stream going, as a node would
            feed(adapter, frames[:2], start=stamp)
            stamp += 10.0
        time.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout} s; stats: {adapter.stats()}")


def test_adapter_learns_swaps_and_freezes_live(frames):
    completer, adapter = make_adapter({"guard_tolerance": 1e6})
    rgb, sparse, _ = frames[0]
    before = completer.complete(rgb, sparse)
    adapter.start()
    feed(adapter, frames)
    stats = wait_for(adapter, lambda s: s["swaps"] >= 2, frames=frames)
    after = completer.complete(rgb, sparse)
    assert not np.array_equal(before, after) and np.isfinite(after).all()
    assert stats["learner_steps"] >= 4 and np.isfinite(stats["loss"])
    assert np.isfinite(stats["held_out_error_m"])
    assert stats["holdout_frames"] >= 1 and stats["buffer_frames"] >= 2 and 0 < stats["buffer_fill"] <= 1
    assert 0 < stats["compute_share"] <= 1 and stats["error"] == ""
    adapter.set_enabled(False)  # freeze: the published weights stay, nothing more is learned
    time.sleep(1.0)
    frozen_steps = adapter.stats()["learner_steps"]
    frozen = completer.complete(rgb, sparse)
    feed(adapter, frames, start=500.0)
    time.sleep(2.0)
    assert adapter.stats()["learner_steps"] == frozen_steps and not adapter.enabled
    assert np.array_equal(frozen, completer.complete(rgb, sparse))
    adapter.set_enabled(True)  # unfreeze
    wait_for(adapter, lambda s: s["learner_steps"] > frozen_steps, frames=frames)
    adapter.stop(save=False)


def test_guard_rejects_a_harmful_update_and_inference_keeps_its_weights(synthetic_checkpoint):
    from conftest import synthetic_test_scenes

    scenes = synthetic_test_scenes("lidar")
    frames = [(f.rgb, scenes.sparse_depth(i, f), f.K) for i, f in enumerate(map(scenes.frame, range(3)))]
    completer, adapter = make_adapter({"optim": {"lr": 1.0e3}, "guard_tolerance": 0.02, "holdout_every": 2},
                                      checkpoint=synthetic_checkpoint)
    rgb, sparse, _ = frames[0]
    before = completer.complete(rgb, sparse)
    adapter.start()
    feed(adapter, frames, rounds=2)
    stats = wait_for(adapter, lambda s: s["rollbacks"] >= 2)
    assert stats["swaps"] == 0
    assert stats["candidate_error_m"] > stats["held_out_error_m"] * 1.02 or not np.isfinite(
        stats["candidate_error_m"])
    assert np.array_equal(before, completer.complete(rgb, sparse))  # published depth unchanged
    adapter.stop(save=False)


def test_bad_frames_are_skipped_and_counted(frames):
    completer, adapter = make_adapter()
    rgb, sparse, K = frames[0]
    adapter.start()
    adapter.observe(rgb, np.zeros_like(sparse), K, stamp=0.0)  # no measurement at all
    adapter.observe(np.full_like(rgb, 128), sparse, K, stamp=1.0)  # a blank image: one region
    stats = wait_for(adapter, lambda s: s["skipped_no_sparse"] == 1 and s["skipped_degenerate_labels"] == 1)
    assert stats["frames_kept"] == 0 and stats["learner_steps"] == 0
    real_loss = adapter.learner.loss_fn
    adapter.learner.loss_fn = lambda out, batch: (real_loss(out, batch)[0] * float("nan"), {})
    before = completer.complete(rgb, sparse)
    feed(adapter, frames, start=10.0)
    stats = wait_for(adapter, lambda s: s["nonfinite_losses"] >= 2, frames=frames)
    assert stats["learner_steps"] == 0 and stats["swaps"] == 0
    assert np.array_equal(before, completer.complete(rgb, sparse))
    adapter.stop(save=False)


def test_a_failing_learner_turns_adaptation_off_and_inference_goes_on(frames):
    completer, adapter = make_adapter()
    rgb, sparse, K = frames[0]
    real_generator = adapter.generator

    def broken(_rgb):
        raise RuntimeError("pseudo-label generator crashed")

    adapter.generator = broken
    adapter.start()
    adapter.observe(rgb, sparse, K, stamp=0.0)
    stats = wait_for(adapter, lambda s: s["error"] != "")
    assert "pseudo-label generator crashed" in stats["error"] and not stats["enabled"] and not adapter.enabled
    assert np.isfinite(completer.complete(rgb, sparse)).all()  # inference goes on
    assert not adapter.observe(rgb, sparse, K, stamp=5.0)  # adaptation is off: frames are not taken
    adapter.generator = real_generator
    adapter.set_enabled(True)  # a restart after the cause is fixed
    feed(adapter, frames, start=10.0)
    stats = wait_for(adapter, lambda s: s["frames_kept"] >= 2)
    assert stats["error"] == "" and stats["enabled"]
    adapter.stop(save=False)


@pytest.mark.parametrize("name", ["adapted.pt", "adapted.safetensors"])
def test_save_resume_and_periodic_writes(frames, tmp_path, name):
    path = tmp_path / name
    completer, adapter = make_adapter({"guard_tolerance": 1e6, "save_path": str(path), "save_every_s": 0.2})
    rgb, sparse, _ = frames[0]
    adapter.start()
    feed(adapter, frames)
    wait_for(adapter, lambda s: s["swaps"] >= 1 and s["saves"] >= 1, frames=frames)
    adapter.stop()  # writes save_path once more, with the final published weights
    adapted = completer.complete(rgb, sparse)
    assert np.array_equal(DepthCompleter.from_checkpoint(path, device="cpu").complete(rgb, sparse), adapted)
    fresh, resumed = make_adapter({"save_path": str(path), "resume": True})
    assert resumed.resumed_from == path
    assert np.array_equal(fresh.complete(rgb, sparse), adapted)
    torch.save({"not": "a checkpoint"}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="bad.pt"):
        make_adapter({"save_path": str(tmp_path / "bad.pt"), "resume": True})
    missing, started_fresh = make_adapter({"save_path": str(tmp_path / "none.pt"), "resume": True})
    assert started_fresh.resumed_from is None


def test_step_rate_limit(frames):
    _, adapter = make_adapter({"max_step_rate_hz": 1.0, "swap_every": 1000})
    adapter.start()
    feed(adapter, frames)
    wait_for(adapter, lambda s: s["learner_steps"] >= 1)
    start, steps = time.monotonic(), adapter.stats()["learner_steps"]
    time.sleep(3.0)
    elapsed = time.monotonic() - start
    assert adapter.stats()["learner_steps"] - steps <= elapsed * 1.0 + 1
    adapter.stop(save=False)

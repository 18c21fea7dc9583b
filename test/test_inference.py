"""DepthCompleter: checkpoint -> dense metres at the input size; bad inputs and files are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SYNTHETIC_CKPT_SIZE, synthetic_test_scenes

from selfdc_core.baselines import nearest_fill
from selfdc_core.devices import native_bfloat16_cpu
from selfdc_core.inference import CheckpointError, DepthCompleter
from selfdc_core.model_io import load_checkpoint, save_checkpoint
from selfdc_core.models import build_model
from selfdc_core.testing.checkpoints import untrained_checkpoint

TINY_MODEL = {"backbone": "resnet18", "num_classes": 4, "prop_iterations": 1}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return untrained_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny.pt", **TINY_MODEL)


def _frame(h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    sparse = np.zeros((h, w), np.float32)
    idx = rng.choice(h * w, 80, replace=False)
    sparse.flat[idx] = rng.uniform(0.5, 6.0, 80).astype(np.float32)
    return rgb, sparse


def test_complete_returns_dense_metres_at_input_size(tiny_checkpoint):
    completer = DepthCompleter.from_checkpoint(tiny_checkpoint, device="cpu")
    assert completer.model.seg_decoder is None and not completer.model.training  # inference-only
    rgb, sparse = _frame()
    depth = completer.complete(rgb, sparse)
    assert depth.shape == (48, 64) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth >= 0).all()
    depth2, conf = completer.complete(rgb, sparse, return_confidence=True)
    assert np.array_equal(depth, depth2)
    assert conf.shape == (48, 64) and conf.min() >= 0 and conf.max() <= 1


def test_input_size_resizes_in_and_out(tiny_checkpoint):
    completer = DepthCompleter.from_checkpoint(tiny_checkpoint, device="cpu", input_size=(32, 40))
    seen = {}
    real_predict = completer.predict

    def spy(rgb, sparse):
        seen["rgb"], seen["sparse"] = rgb.shape, sparse.clone()
        return real_predict(rgb, sparse)

    completer.predict = spy
    rgb, sparse = _frame(50, 70)
    depth = completer.complete(rgb, sparse)
    assert depth.shape == (50, 70)
    assert seen["rgb"] == (1, 3, 32, 40)
    kept = seen["sparse"][seen["sparse"] > 0]
    assert 0 < kept.numel() <= 80 and set(kept.tolist()) <= set(sparse[sparse > 0].tolist())  # no blending
    completer.warmup(iterations=1)


@pytest.mark.parametrize(
    "rgb, sparse, match",
    [
        (np.zeros((48, 64, 3), np.float32), np.zeros((48, 64), np.float32), "rgb must be a uint8"),
        (np.zeros((48, 64), np.uint8), np.zeros((48, 64), np.float32), "rgb must be a uint8"),
        (np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64), np.uint16), "sparse must be a float"),
        (np.zeros((48, 64, 3), np.uint8), np.zeros((48, 60), np.float32), "must match"),
        (np.zeros((48, 64, 3), np.uint8), np.full((48, 64), np.nan, np.float32), "NaN"),
        (np.zeros((48, 64, 3), np.uint8), np.full((48, 64), -1.0, np.float32), "negative"),
    ],
)
def test_bad_inputs_are_value_errors(tiny_checkpoint, rgb, sparse, match):
    completer = DepthCompleter.from_checkpoint(tiny_checkpoint, device="cpu")
    with pytest.raises(ValueError, match=match):
        completer.complete(rgb, sparse)


def test_bad_arguments():
    model = build_model(TINY_MODEL)
    with pytest.raises(ValueError, match="input_size"):
        DepthCompleter(model, device="cpu", input_size=(0, 10))
    with pytest.raises(ValueError, match="'float16' needs a CUDA device"):
        DepthCompleter(model, device="cpu", precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        DepthCompleter(model, device="cpu", precision="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            DepthCompleter(model, device="cuda")


def test_broken_checkpoints_name_the_file(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="missing.pt"):
        DepthCompleter.from_checkpoint(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        DepthCompleter.from_checkpoint(truncated)
    state = load_checkpoint(tiny_checkpoint)
    state["model_config"] = {**state["model_config"], "backbone": "resnet34"}  # weights are resnet18
    wrong = tmp_path / "incompatible.pt"
    save_checkpoint(wrong, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="incompatible.pt"):
        DepthCompleter.from_checkpoint(wrong)
    state["model_config"] = {**state["model_config"], "backbone": "vgg"}
    unbuildable = tmp_path / "unbuildable.pt"
    save_checkpoint(unbuildable, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(CheckpointError, match="unbuildable.pt.*backbone"):
        DepthCompleter.from_checkpoint(unbuildable)


@pytest.mark.parametrize("sensor", ["lidar", "tof"])
def test_trained_checkpoint_beats_nearest_neighbour_fill(synthetic_checkpoint, sensor):
    completer = DepthCompleter.from_checkpoint(synthetic_checkpoint, device="cpu")
    scenes = synthetic_test_scenes(sensor)  # the frames it was trained on, without their GT
    errors = {"model": [], "nearest": []}
    for i in range(len(scenes)):
        frame = scenes.frame(i)
        sparse = scenes.sparse_depth(i, frame)
        assert frame.rgb.shape[:2] == SYNTHETIC_CKPT_SIZE
        valid = frame.depth > 0
        predictions = {"model": completer.complete(frame.rgb, sparse), "nearest": nearest_fill(sparse)}
        for name, pred in predictions.items():
            errors[name].append(np.sqrt(np.mean((pred[valid] - frame.depth[valid]) ** 2)))
    model_rmse, nearest_rmse = float(np.mean(errors["model"])), float(np.mean(errors["nearest"]))
    print(f"synthetic_checkpoint {sensor} RMSE {model_rmse:.4f} m vs nearest fill {nearest_rmse:.4f} m")
    assert model_rmse < nearest_rmse


def test_bfloat16_on_cpu_stays_close_to_float32(synthetic_checkpoint):
    # bfloat16 convolutions round the network's features to 8 bits of mantissa; the propagation stays
    # float32, so the completed depth moves by far less than the rounding of a bfloat16 depth (0.4 %).
    exact = DepthCompleter.from_checkpoint(synthetic_checkpoint, device="cpu", precision="float32")
    fast = DepthCompleter.from_checkpoint(synthetic_checkpoint, device="cpu", precision="bfloat16")
    assert fast.autocast_dtype == torch.bfloat16 and exact.autocast_dtype is None
    auto = DepthCompleter.from_checkpoint(synthetic_checkpoint, device="cpu")
    assert auto.autocast_dtype == (torch.bfloat16 if native_bfloat16_cpu() else None)
    scenes = synthetic_test_scenes("lidar")
    frame = scenes.frame(0)
    sparse = scenes.sparse_depth(0, frame)
    a, b = exact.complete(frame.rgb, sparse), fast.complete(frame.rgb, sparse)
    assert b.dtype == np.float32 and np.isfinite(b).all()
    assert not np.array_equal(a, b)  # bfloat16 really ran
    print(f"bfloat16 vs float32: mean |diff| {np.abs(a - b).mean():.5f} m, max {np.abs(a - b).max():.4f} m, "
          f"mean depth {a.mean():.3f} m")
    assert np.abs(a - b).mean() < 0.002 * a.mean()

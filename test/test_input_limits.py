"""DepthCompleter's input guards: the network's largest input, and the sparse depth range."""

import numpy as np
import pytest
import torch

from selfdc_core.inference import DepthCompleter
from selfdc_core.inference_limits import InferenceLimits
from selfdc_core.models import build_model

H, W = 48, 64


@pytest.fixture(scope="module")
def completer():
    torch.manual_seed(0)
    return DepthCompleter(build_model({"backbone": "resnet18", "num_classes": 4, "prop_iterations": 2}),
                          device="cpu")


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    sparse = np.zeros((H, W), np.float32)
    sparse[::6, ::7] = rng.uniform(1.0, 8.0, sparse[::6, ::7].shape)
    return rgb, sparse


def test_an_absurd_depth_is_dropped_before_the_network_and_counted(completer):
    rgb, sparse = _inputs()
    clean = completer.complete(rgb, sparse)
    poisoned = sparse.copy()
    poisoned[20, 30] = 1e9  # one LiDAR return at a billion metres
    before = completer.sparse_dropped
    np.testing.assert_array_equal(completer.complete(rgb, poisoned), clean)
    assert completer.sparse_dropped == before + 1
    unguarded = DepthCompleter(completer.model, device="cpu")
    unguarded.limits = InferenceLimits(max_depth=np.inf)
    assert np.abs(unguarded.complete(rgb, poisoned) - clean).max() > 0.5  # what the guard prevents


def test_millimetres_are_named_in_the_warning(completer, caplog):
    rgb, sparse = _inputs(1)
    with caplog.at_level("WARNING", logger="selfdc_core.inference"):
        completer.complete(rgb, sparse * 1000.0)
    assert "outside [0, 300] m" in caplog.text and "looks like millimetres read as metres" in caplog.text


def test_large_frames_run_downscaled_and_come_back_full_size(completer, caplog):
    seen = []
    hook = completer.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    completer.limits = InferenceLimits(max_pixels=1200)
    try:
        rgb, sparse = _inputs()
        with caplog.at_level("WARNING", logger="selfdc_core.inference"):
            out = completer.complete(rgb, sparse)
            completer.complete(rgb, sparse)
    finally:
        completer.limits = InferenceLimits()
        hook.remove()
    assert out.shape == (H, W) and np.isfinite(out).all()
    h, w = seen[-1][-2:]
    assert h * w <= 1200 and abs(w / h - W / H) < 0.1
    assert caplog.text.count("64x48 frames exceed max_pixels=1200: the model runs at") == 1  # said once
    assert InferenceLimits(max_pixels=1200).network_size(H, W, (30, 40)) == (30, 40)  # explicit size wins


@pytest.mark.parametrize("bad", [(32.5, 40), (32, 0), (32,), (32, 40, 3), (-8, 8)])
def test_input_size_must_be_two_positive_integers(completer, bad):
    with pytest.raises(ValueError, match="positive integers"):
        DepthCompleter(completer.model, device="cpu", input_size=bad)
    assert DepthCompleter(completer.model, device="cpu", input_size=(32.0, 40)).input_size == (32, 40)

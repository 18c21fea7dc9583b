"""SelfDC network: shapes, outputs, train/eval behaviour, gradients, config, bad input, pretrained."""

import pytest
import torch

from selfdc_core.models import SelfDC, build_model, imagenet_weights_path
from selfdc_core.models.encoder_decoder import ENCODER_STRIDE
from selfdc_core.models.inputs import pad_to_multiple

torch.manual_seed(0)


def make_inputs(batch, height, width, density=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, height, width, generator=gen)
    measured = torch.rand(batch, 1, height, width, generator=gen) < density
    sparse = torch.where(measured, torch.rand(batch, 1, height, width, generator=gen) * 8 + 0.5, 0.0)
    return rgb, sparse


def small_model(**kwargs):
    cfg = {"backbone": "resnet18", "num_classes": 5, "prop_iterations": 2} | kwargs
    return SelfDC(**cfg)


@pytest.fixture(scope="module")
def eval_model():
    return small_model().eval()


def randomise_propagation(model, scale=0.3):
    """The propagation conv starts at zero (identity); give it weights so offsets/affinities matter."""
    gen = torch.Generator().manual_seed(7)
    conv = model.propagation.offset_affinity
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * scale)
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen) * scale)


# 228x304 and 97x131 need padding; 48x160 (like KITTI's 352x1216 and 240x1216) is a multiple of 16.
@pytest.mark.parametrize("size", [(228, 304), (97, 131), (48, 160), (5, 7)])
def test_eval_output_shapes_any_size(eval_model, size):
    rgb, sparse = make_inputs(1, *size)
    with torch.no_grad():
        out = eval_model(rgb, sparse)
    assert set(out) == {"depth", "depth_init", "confidence"}
    for value in out.values():
        assert value.shape == (1, 1, *size)
        assert torch.isfinite(value).all()
    assert ((out["confidence"] > 0) & (out["confidence"] < 1)).all()


@pytest.mark.parametrize("size", [(228, 304), (352, 1216), (240, 1216), (97, 131)])
def test_padding_reaches_encoder_stride_and_keeps_content(size):
    x = torch.rand(1, 3, *size)
    padded = pad_to_multiple(x, ENCODER_STRIDE, "replicate")
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    assert padded.shape[-2] - size[0] < 16 and padded.shape[-1] - size[1] < 16
    torch.testing.assert_close(padded[..., : size[0], : size[1]], x)


def test_segmentation_logits_only_in_training_mode():
    model = small_model(num_classes=6)
    calls = []
    model.seg_decoder.register_forward_hook(lambda *args: calls.append(1))
    rgb, sparse = make_inputs(2, 17, 23)
    out = model.train()(rgb, sparse)
    assert set(out) == {"depth", "depth_init", "confidence", "seg_logits"}
    assert out["seg_logits"].shape == (2, 6, 17, 23)
    assert out["depth"].shape == (2, 1, 17, 23)
    assert calls == [1]
    with torch.no_grad():
        assert "seg_logits" not in model.eval()(rgb, sparse)
    assert calls == [1]  # eval never runs the segmentation decoder


def test_depth_is_non_negative_even_with_strong_negative_affinities():
    model = small_model(prop_iterations=6).eval()
    randomise_propagation(model, scale=3.0)
    with torch.no_grad():
        model.propagation.affinity_scale.fill_(0.1)  # large |affinities|, many negative
    rgb, sparse = make_inputs(2, 40, 52, density=0.3)
    with torch.no_grad():
        out = model(rgb, sparse)
    assert (out["depth"] >= 0).all()
    assert (out["depth_init"] > 0).all()


def test_preserve_input_keeps_measurements_at_initialisation(eval_model):
    # A fresh model's propagation has zero neighbour affinity, so preserved pixels stay exactly measured.
    rgb, sparse = make_inputs(2, 30, 41, density=0.1)
    valid = sparse > 0
    with torch.no_grad():
        out = eval_model(rgb, sparse)
        eval_model.propagation.preserve_input = eval_model.output_keeps_measurements = False
        try:
            free = eval_model(rgb, sparse)
        finally:
            eval_model.propagation.preserve_input = eval_model.output_keeps_measurements = True
    torch.testing.assert_close(out["depth"][valid], sparse[valid])
    torch.testing.assert_close(out["depth"][~valid], out["depth_init"][~valid])
    torch.testing.assert_close(free["depth"], free["depth_init"])
    assert not torch.allclose(free["depth"][valid], sparse[valid])


def test_output_keeps_measurements_in_inference_only():
    # With trained-like propagation weights, NLSPN's last step blends measured pixels with neighbours;
    # the option resets them once more in inference and leaves every other pixel as it was.
    model = small_model(prop_iterations=3)
    randomise_propagation(model)
    rgb, sparse = make_inputs(2, 30, 41, density=0.1)
    valid = sparse > 0
    with torch.no_grad():
        kept = model.eval()(rgb, sparse)["depth"]
        model.output_keeps_measurements = False
        blended = model(rgb, sparse)["depth"]
        model.output_keeps_measurements = True
        trained = model.train()(rgb, sparse)["depth"]
    assert torch.equal(kept[valid], sparse[valid])
    assert (blended[valid] - sparse[valid]).abs().max() > 1e-3
    torch.testing.assert_close(kept[~valid], blended[~valid])
    assert (trained[valid] - sparse[valid]).abs().max() > 1e-3  # L_dc scores the blended depth
    assert small_model(output_keeps_measurements=False).config["output_keeps_measurements"] is False


def test_gradients_reach_every_parameter():
    model = small_model(num_classes=4).train()
    randomise_propagation(model)
    rgb, sparse = make_inputs(2, 16, 20, density=0.2)
    out = model(rgb, sparse)
    gen = torch.Generator().manual_seed(3)
    loss = sum((value * torch.randn(value.shape, generator=gen)).sum() for value in out.values())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_resnet34_backbone_builds_and_runs():
    model = SelfDC(backbone="resnet34", num_classes=3, prop_iterations=1).eval()
    assert [len(layer) for layer in (model.encoder.layer1, model.encoder.layer2,
                                     model.encoder.layer3, model.encoder.layer4)] == [3, 4, 6, 3]
    rgb, sparse = make_inputs(1, 17, 23)
    with torch.no_grad():
        assert model(rgb, sparse)["depth"].shape == (1, 1, 17, 23)


def test_float64_inputs_run_in_model_dtype(eval_model):
    rgb, sparse = make_inputs(1, 16, 16)
    with torch.no_grad():
        out = eval_model(rgb.double(), sparse.double())
    assert out["depth"].dtype == torch.float32


def test_config_round_trip_and_build_model():
    model = small_model(num_classes=7, preserve_input=False, depth_scale=80.0)
    cfg = model.config
    assert cfg["num_classes"] == 7 and cfg["depth_scale"] == 80.0 and cfg["backbone"] == "resnet18"
    rebuilt = build_model(cfg)
    assert rebuilt.config == cfg
    rebuilt.load_state_dict(model.state_dict())  # same architecture, strict load
    cfg["num_classes"] = 99
    assert model.config["num_classes"] == 7  # config is a copy


def test_build_model_rejects_unknown_keys():
    with pytest.raises(ValueError, match="prop_iters"):
        build_model({"backbone": "resnet18", "prop_iters": 3})


@pytest.mark.parametrize("kwargs, name", [
    ({"backbone": "resnet50"}, "backbone"),
    ({"num_classes": 0}, "num_classes"),
    ({"prop_iterations": -1}, "prop_iterations"),
    ({"prop_iterations": 2.5}, "prop_iterations"),
    ({"depth_scale": 0.0}, "depth_scale"),
    ({"preserve_input": "yes"}, "preserve_input"),
    ({"output_keeps_measurements": 1}, "output_keeps_measurements"),
    ({"half_resolution_heads": ["guidance", "segmentation"]}, "half_resolution_heads"),
    ({"half_resolution_heads": ["depth", "depth"]}, "half_resolution_heads"),
    ({"half_resolution_heads": "guidance"}, "half_resolution_heads"),
    ({"half_resolution_heads": [["depth"]]}, "half_resolution_heads"),
])
def test_invalid_constructor_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        small_model(**kwargs)


@pytest.mark.parametrize("size", [(30, 41), (48, 160)])
def test_half_resolution_heads_share_weights_and_cost_less(size):
    from torch.utils.flop_counter import FlopCounterMode

    full = small_model().eval()
    half = small_model(half_resolution_heads=["confidence", "guidance"]).eval()
    assert half.config["half_resolution_heads"] == ["guidance", "confidence"]  # canonical order
    half.load_state_dict(full.state_dict())  # the same weights, so a checkpoint loads either way
    rgb, sparse = make_inputs(1, *size)

    def run(model):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(rgb, sparse)
        return out, counter.get_total_flops()

    (out_full, flops_full), (out_half, flops_half) = run(full), run(half)
    for key in ("depth", "confidence"):
        assert out_half[key].shape == out_full[key].shape == (1, 1, *size)
        assert torch.isfinite(out_half[key]).all()
    torch.testing.assert_close(out_half["depth_init"], out_full["depth_init"])  # the depth head is full
    assert not torch.allclose(out_half["confidence"], out_full["confidence"])
    with torch.no_grad():  # the same encoder and decoder weights feed both models' heads
        feats = full.encoder(*(pad_to_multiple(t, ENCODER_STRIDE, "constant") for t in (rgb, sparse)))
        x = full.decoder(feats)

    def guidance_flops(model):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.guidance_head(x, feats)
        return counter.get_total_flops()

    assert guidance_flops(half) < 0.3 * guidance_flops(full)
    assert flops_half < flops_full


def test_drop_segmentation_loads_training_weights():
    trained = small_model()
    deployed = build_model(trained.config)
    deployed.drop_segmentation()
    assert deployed.seg_decoder is None and deployed.config["include_segmentation"] is False
    deployed.load_state_dict(trained.state_dict())
    assert not any(k.startswith("seg_decoder.") for k in deployed.state_dict())
    rgb, sparse = make_inputs(1, 20, 20)
    trained.eval()
    deployed.eval()
    with torch.no_grad():
        torch.testing.assert_close(deployed(rgb, sparse)["depth"], trained(rgb, sparse)["depth"])
    assert "seg_logits" not in deployed.train()(rgb, sparse)
    assert build_model(deployed.config).seg_decoder is None


def _bad(rgb, sparse, which, value):
    return (value, sparse) if which == "rgb" else (rgb, value)


@pytest.mark.parametrize("which, make_bad, message", [
    ("rgb", lambda r, s: r[0], "rgb"),  # 3-D
    ("rgb", lambda r, s: r[:, :1], "rgb"),  # 1 channel
    ("sparse", lambda r, s: s.repeat(1, 2, 1, 1), "sparse"),
    ("rgb", lambda r, s: (r * 255).to(torch.uint8), "rgb"),
    ("sparse", lambda r, s: s.to(torch.int32), "sparse"),
    ("sparse", lambda r, s: s[..., :-1], "sparse"),  # size mismatch
    ("sparse", lambda r, s: s[:1], "sparse"),  # batch mismatch
    ("sparse", lambda r, s: torch.where(s > 0, float("nan"), s), "sparse"),
    ("sparse", lambda r, s: torch.where(s > 0, float("inf"), s), "sparse"),
    ("sparse", lambda r, s: -s, "sparse"),
    ("rgb", lambda r, s: r * 255, "rgb"),  # 0..255 instead of [0, 1]
    ("rgb", lambda r, s: r.numpy(), "rgb"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(eval_model, which, make_bad, message):
    rgb, sparse = make_inputs(2, 12, 14, density=0.3)
    bad_rgb, bad_sparse = _bad(rgb, sparse, which, make_bad(rgb, sparse))
    with pytest.raises(ValueError, match=message):
        eval_model(bad_rgb, bad_sparse)


def test_empty_sparse_map_gives_finite_depth(eval_model):
    rgb, _ = make_inputs(1, 20, 20)
    with torch.no_grad():
        out = eval_model(rgb, torch.zeros(1, 1, 20, 20))
    assert torch.isfinite(out["depth"]).all()


def test_pretrained_without_cached_weights_says_what_to_download(tmp_path, monkeypatch):
    # An empty torch hub cache: the loader must not try the network, just explain.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected_path = imagenet_weights_path("resnet34")
    assert str(expected_path).startswith(str(tmp_path))
    with pytest.raises(RuntimeError) as err:
        SelfDC(backbone="resnet34", pretrained=True)
    message = str(err.value)
    assert "download https://download.pytorch.org/models/resnet34-" in message
    assert str(expected_path) in message


def test_pretrained_loads_weights_from_the_hub_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = small_model(pretrained=True)
    torch.testing.assert_close(model.encoder.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    torch.testing.assert_close(model.encoder.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert model.config["pretrained"] is False  # rebuilding from a checkpoint never needs the file

    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="could not load ImageNet weights"):
        small_model(pretrained=True)

"""Deployment formats: export.py to safetensors and ONNX, loading each back, and bad files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from selfdc_core.deploy.onnx_export import INPUT_NAMES, export_onnx
from selfdc_core.deploy.onnx_runtime import OnnxSession
from selfdc_core.inference import CheckpointError, DepthCompleter
from selfdc_core.model_io import save_checkpoint
from selfdc_core.models import build_model
from training import export as export_cli

HEIGHT, WIDTH = 44, 60  # not multiples of 16: the graph pads and crops


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small SelfDC whose propagation is not the identity (random offsets and affinities)."""
    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18", "num_classes": 4, "prop_iterations": 5})
    with torch.no_grad():
        model.propagation.offset_affinity.weight.normal_(0, 0.05)
        model.propagation.offset_affinity.bias.normal_(0, 0.8)
    path = tmp_path_factory.mktemp("deploy") / "model.pt"
    state = {"model_config": model.config, "model": model.state_dict(), "config": {}, "epoch": 0, "step": 0}
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    code = export_cli.main([str(checkpoint), "--format", "onnx", "--output", str(out),
                            "--height", str(HEIGHT), "--width", str(WIDTH)])
    assert code == 0
    return out


def frame(seed=0, height=HEIGHT, width=WIDTH):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    sparse = np.where(rng.random((height, width)) < 0.05, rng.uniform(1, 8, (height, width)), 0)
    return rgb, sparse.astype(np.float32)


def test_safetensors_export_is_smaller_and_completes_identically(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.safetensors"
    assert export_cli.main([str(checkpoint), "--format", "safetensors", "--output", str(out)]) == 0
    assert "MiB" in capsys.readouterr().out
    assert out.stat().st_size < checkpoint.stat().st_size
    rgb, sparse = frame()
    reference = DepthCompleter.from_checkpoint(checkpoint, device="cpu", precision="float32")
    reference = reference.complete(rgb, sparse)
    slim = DepthCompleter.from_checkpoint(out, device="cpu", precision="float32")
    assert slim.model.seg_decoder is None
    np.testing.assert_array_equal(slim.complete(rgb, sparse), reference)

    half = tmp_path / "model16.safetensors"
    assert export_cli.main([str(checkpoint), "--format", "safetensors", "--output", str(half), "--fp16"]) == 0
    assert half.stat().st_size < 0.6 * out.stat().st_size
    halved = DepthCompleter.from_checkpoint(half, device="cpu", precision="float32")
    np.testing.assert_allclose(halved.complete(rgb, sparse), reference, atol=0.05)


def test_onnx_export_uses_standard_ops_and_matches_pytorch(onnx_file, checkpoint, capsys):
    graph = onnx.load(str(onnx_file))
    ops = {(node.domain, node.op_type) for node in graph.graph.node}
    assert all(domain in ("", "ai.onnx") for domain, _ in ops)
    assert not any(op in ("DeformConv", "MaxUnpool") for _, op in ops)
    assert [i.name for i in graph.graph.input] == list(INPUT_NAMES)

    rgb, sparse = frame(1)
    torch_completer = DepthCompleter.from_checkpoint(checkpoint, device="cpu", precision="float32")
    torch_depth = torch_completer.complete(rgb, sparse)
    onnx_completer = DepthCompleter.from_checkpoint(onnx_file, device="cpu")
    assert onnx_completer.model is None and onnx_completer.input_size == (HEIGHT, WIDTH)
    np.testing.assert_allclose(onnx_completer.complete(rgb, sparse), torch_depth, atol=1e-4, rtol=0)


def test_half_resolution_heads_export_and_keep_measurements(tmp_path):
    torch.manual_seed(1)
    model = build_model({"backbone": "resnet18", "num_classes": 4, "prop_iterations": 3,
                         "half_resolution_heads": ["guidance", "confidence"]})
    with torch.no_grad():
        model.propagation.offset_affinity.bias.normal_(0, 0.8)
    state = {"model_config": model.config, "model": model.state_dict(), "config": {}, "epoch": 0, "step": 0}
    checkpoint = save_checkpoint(tmp_path / "half.pt", state)
    out = tmp_path / "half.onnx"
    assert export_cli.main([str(checkpoint), "--format", "onnx", "--output", str(out),
                            "--height", str(HEIGHT), "--width", str(WIDTH)]) == 0
    rgb, sparse = frame(2)
    torch_depth = DepthCompleter.from_checkpoint(checkpoint, device="cpu", precision="float32").complete(
        rgb, sparse)
    onnx_depth = DepthCompleter.from_checkpoint(out, device="cpu").complete(rgb, sparse)
    np.testing.assert_allclose(onnx_depth, torch_depth, atol=1e-4, rtol=0)
    measured = sparse > 0
    for depth in (torch_depth, onnx_depth):  # the published depth is the sensor where it measured
        np.testing.assert_array_equal(depth[measured], sparse[measured])


def test_onnx_batch_is_dynamic(onnx_file):
    session = OnnxSession(onnx_file, device="cpu")
    rng = np.random.default_rng(2)
    rgb = rng.random((3, 3, HEIGHT, WIDTH), dtype=np.float32)
    sparse = np.where(rng.random((3, 1, HEIGHT, WIDTH)) < 0.05, 4.0, 0.0).astype(np.float32)
    depth, confidence = session.run(rgb, sparse)
    assert depth.shape == confidence.shape == (3, 1, HEIGHT, WIDTH)
    single, _ = session.run(rgb[1:2], sparse[1:2])
    np.testing.assert_allclose(depth[1:2], single, atol=1e-5)


def test_onnx_completer_resizes_camera_images_and_rejects_other_sizes(onnx_file):
    rgb, sparse = frame(3, height=2 * HEIGHT, width=2 * WIDTH)
    depth = DepthCompleter.from_checkpoint(onnx_file, device="cpu").complete(rgb, sparse)
    assert depth.shape == (2 * HEIGHT, 2 * WIDTH) and np.isfinite(depth).all()
    with pytest.raises(ValueError, match=f"exported for {HEIGHT}x{WIDTH}"):
        DepthCompleter.from_checkpoint(onnx_file, device="cpu", input_size=(32, 32))


def test_backend_and_file_must_agree(onnx_file, checkpoint):
    with pytest.raises(ValueError, match="onnxruntime runs .onnx"):
        DepthCompleter.from_checkpoint(onnx_file, backend="torch")
    with pytest.raises(ValueError, match="onnxruntime runs .onnx"):
        DepthCompleter.from_checkpoint(checkpoint, backend="onnxruntime")
    with pytest.raises(ValueError, match="backend must be one of"):
        DepthCompleter.from_checkpoint(checkpoint, backend="tensorrt")


def test_unknown_and_corrupt_files_name_the_file(tmp_path, checkpoint):
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match=r"model\.bin: unknown model file format '\.bin'"):
        DepthCompleter.from_checkpoint(unknown)
    bad_onnx = tmp_path / "broken.onnx"
    bad_onnx.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(CheckpointError, match="broken.onnx cannot be loaded by onnxruntime"):
        DepthCompleter.from_checkpoint(bad_onnx, device="cpu")
    bad_weights = tmp_path / "broken.safetensors"
    bad_weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="broken.safetensors is not a readable safetensors"):
        DepthCompleter.from_checkpoint(bad_weights)


def test_bit_flipped_weights_fail_their_hash(tmp_path, checkpoint):
    out = tmp_path / "model.safetensors"
    assert export_cli.main([str(checkpoint), "--format", "safetensors", "--output", str(out)]) == 0
    data = bytearray(out.read_bytes())
    data[-100] ^= 0x40  # inside the last tensor's bytes
    out.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its content hash"):
        DepthCompleter.from_checkpoint(out)


def test_onnx_with_other_inputs_says_what_is_expected(tmp_path):
    class Other(torch.nn.Module):
        def forward(self, image):
            return image * 2

    path = tmp_path / "other.onnx"
    torch.onnx.export(Other(), (torch.rand(1, 3, 8, 8),), str(path), input_names=["image"],
                      output_names=["depth"], dynamo=False)
    with pytest.raises(CheckpointError, match=r"expected \['rgb', 'sparse'\]"):
        OnnxSession(path, device="cpu")


def test_fp16_onnx_needs_cuda_for_its_check(checkpoint, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: fp16 export is allowed")
    out = tmp_path / "m.onnx"
    code = export_cli.main([str(checkpoint), "--format", "onnx", "--output", str(out), "--fp16"])
    assert code == 2
    assert "--fp16 ONNX needs CUDA" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_export_of_a_graph_with_a_custom_op_is_refused(tmp_path):
    model = build_model({"backbone": "resnet18", "num_classes": 4, "prop_iterations": 1,
                         "propagation": "deform_conv"})
    with pytest.raises(Exception, match="DeformConv|deform_conv2d|non-standard"):
        export_onnx(model, tmp_path / "deform.onnx", 32, 32)

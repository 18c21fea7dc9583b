"""The gather/CSR propagation equals the deform_conv2d reference: values, gradients, export path."""

import pytest
import torch

from selfdc_core.models import SelfDC
from selfdc_core.models.gather_propagation import propagate, sample_taps
from selfdc_core.models.nlspn import NonLocalPropagation, sample_at_neighbors

TOLERANCE = {torch.float32: (1e-5, 1e-4), torch.float64: (1e-10, 1e-9)}


def twin_propagations(dtype, preserve_input, iterations=4, offset_scale=1.5, seed=0):
    """A gather and a deform_conv propagation with the same random (non-identity) weights."""
    gen = torch.Generator().manual_seed(seed)
    # The reset also in training mode, so that its gradients are compared too.
    fast = NonLocalPropagation(iterations=iterations, preserve_input=preserve_input, mode="gather",
                               preserve_input_in_training=True).to(dtype)
    with torch.no_grad():
        fast.offset_affinity.weight.copy_(torch.randn(fast.offset_affinity.weight.shape, generator=gen) * 0.3)
        bias = torch.randn(fast.offset_affinity.bias.shape, generator=gen)
        bias[:16] *= offset_scale  # offsets of a few pixels: many samples fall outside the image
        fast.offset_affinity.bias.copy_(bias)
    reference = NonLocalPropagation(iterations=iterations, preserve_input=preserve_input, mode="deform_conv",
                                    preserve_input_in_training=True)
    reference = reference.to(dtype)
    reference.load_state_dict(fast.state_dict())
    return fast, reference


def run_with_grads(prop, inputs):
    prop.zero_grad()
    leaves = [t.detach().clone().requires_grad_() for t in inputs[:3]]
    out = prop(*leaves, inputs[3])
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    grads = [t.grad for t in leaves]
    grads += [prop.offset_affinity.weight.grad, prop.offset_affinity.bias.grad, prop.affinity_scale.grad]
    return out.detach(), grads


def random_inputs(dtype, batch, height, width, seed=1):
    gen = torch.Generator().manual_seed(seed)
    depth = torch.rand(batch, 1, height, width, generator=gen, dtype=dtype) * 8
    guidance = torch.randn(batch, 8, height, width, generator=gen, dtype=dtype)
    confidence = torch.rand(batch, 1, height, width, generator=gen, dtype=dtype)
    measured = torch.rand(batch, 1, height, width, generator=gen) < 0.2
    sparse = torch.where(measured, torch.rand(batch, 1, height, width, generator=gen, dtype=dtype) * 8, 0)
    return depth, guidance, confidence, sparse


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("preserve_input", [True, False])
@pytest.mark.parametrize("size", [(7, 9), (13, 5)])
def test_gather_equals_deform_conv_values_and_gradients(dtype, preserve_input, size):
    fast, reference = twin_propagations(dtype, preserve_input)
    inputs = random_inputs(dtype, 2, *size)
    out_fast, grads_fast = run_with_grads(fast, inputs)
    out_ref, grads_ref = run_with_grads(reference, inputs)
    value_tol, grad_tol = TOLERANCE[dtype]
    assert relative_error(out_fast, out_ref) <= value_tol
    names = ["depth_init", "guidance", "confidence", "conv weight", "conv bias", "affinity scale"]
    for name, g_fast, g_ref in zip(names, grads_fast, grads_ref, strict=True):
        assert g_ref.abs().max() > 0, f"reference gradient of {name} is zero: the test would prove nothing"
        assert relative_error(g_fast, g_ref) <= grad_tol, name


def test_offsets_far_outside_the_image_sample_zero():
    # Every tap displaced 50 px up: all samples are outside, so both implementations read zeros.
    offsets = torch.zeros(1, 18, 6, 8, dtype=torch.float64)
    offsets[:, 0::2] = -50.0
    values = torch.rand(1, 1, 6, 8, dtype=torch.float64) + 1
    assert sample_taps(values, offsets).abs().max() == 0
    assert sample_at_neighbors(values, offsets).abs().max() == 0
    # Half a pixel to the left: at column 0 the centre tap reads half of the border pixel, the left taps
    # (1.5 px outside) read nothing; everywhere it equals deform_conv2d's zero padding.
    offsets = torch.zeros(1, 18, 6, 8, dtype=torch.float64)
    offsets[:, 1::2] = -0.5
    sampled = sample_taps(values, offsets)
    torch.testing.assert_close(sampled[0, 4, :, 0], 0.5 * values[0, 0, :, 0])
    assert sampled[0, [0, 3, 6], :, 0].abs().max() == 0
    reference = sample_at_neighbors(values, offsets)
    torch.testing.assert_close(torch.cat((sampled[:, :4], sampled[:, 5:]), 1), reference)


def test_traced_dense_path_equals_eager_sparse_path():
    fast, _ = twin_propagations(torch.float32, preserve_input=True, iterations=5)
    depth, guidance, confidence, sparse = random_inputs(torch.float32, 2, 9, 11)
    with torch.no_grad():
        eager = fast(depth, guidance, confidence, sparse)
        traced = torch.jit.trace(fast, (depth, guidance, confidence, sparse), check_trace=False)
        again = traced(depth, guidance, confidence, sparse)
    torch.testing.assert_close(again, eager, atol=1e-5, rtol=1e-5)
    graph = str(traced.inlined_graph)
    assert "aten::gather" in graph
    assert not any(op in graph for op in ("sparse_csr", "aten::mv", "deform_conv2d"))


def test_model_checkpoint_loads_in_either_propagation():
    torch.manual_seed(0)
    model = SelfDC(backbone="resnet18", prop_iterations=3, include_segmentation=False).eval()
    with torch.no_grad():
        model.propagation.offset_affinity.weight.normal_(0, 0.1)
        model.propagation.offset_affinity.bias.normal_(0, 0.5)
    config = dict(model.config, propagation="deform_conv")
    reference = SelfDC(**config).eval()
    reference.load_state_dict(model.state_dict())
    rgb = torch.rand(1, 3, 20, 28)
    sparse = torch.where(torch.rand(1, 1, 20, 28) < 0.1, 4.0, 0.0)
    with torch.no_grad():
        torch.testing.assert_close(model(rgb, sparse)["depth"], reference(rgb, sparse)["depth"],
                                   atol=1e-5, rtol=1e-5)
    assert model.config["propagation"] == "gather" and reference.config["propagation"] == "deform_conv"


def test_unknown_propagation_is_rejected():
    with pytest.raises(ValueError, match="propagation"):
        SelfDC(backbone="resnet18", propagation="convolution")


def test_non_finite_offsets_give_nan_not_a_crash():
    # A diverged model (e.g. an online update with a huge learning rate) must not crash the gather.
    offsets = torch.zeros(1, 18, 5, 6)
    offsets[0, 0, 2, 3] = float("nan")
    offsets[0, 1, 1, 1] = float("inf")
    affinity = torch.full((1, 9, 5, 6), 1 / 9)
    out = propagate(torch.ones(1, 1, 5, 6), offsets, affinity, steps=2)
    assert out.shape == (1, 1, 5, 6) and torch.isnan(out).any()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_propagation_runs_in_float32(dtype):
    # Under autocast the propagation keeps float32: half-precision positions would lose the columns of
    # a wide image (bfloat16 has 8 mantissa bits) and overflow flat indices (float16 stops at 65504).
    if dtype == torch.float16 and not torch.cuda.is_available():
        dtype = torch.bfloat16  # CPU autocast runs bfloat16 only
    fast, _ = twin_propagations(torch.float32, preserve_input=True, iterations=3)
    inputs = random_inputs(torch.float32, 1, 5, 300)
    with torch.no_grad():
        exact = fast(*inputs)
        with torch.autocast("cpu", dtype=dtype):
            mixed = fast(*inputs)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, atol=0, rtol=0)


def test_plan_indices_are_exact_at_kitti_width():
    # The flat corner index is integer arithmetic: exact for the last pixel of a 352x1216 image.
    from selfdc_core.models.bilinear_plan import CornerFactors

    offsets = torch.zeros(1, 18, 352, 1216)
    factors = CornerFactors.from_offsets(offsets)
    assert factors.top_left.dtype == torch.int32
    # The centre tap (4) of the last pixel has its top-left corner at bordered (352, 1216).
    assert int(factors.top_left[0, -1, 4]) == 352 * 1218 + 1216

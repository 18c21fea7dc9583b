"""NLSPN propagation: one step against a direct loop, affinity normalisation, input preservation."""

import math

import pytest
import torch

from selfdc_core.models.nlspn import (
    NonLocalPropagation,
    normalize_affinity,
    propagate_once,
    sample_at_neighbors,
)


def bilinear_zero_padded(img, y, x):
    """Bilinear sample of a (H,W) tensor at real (y, x); pixels outside the image count as 0."""
    h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    value = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                value += wy * wx * float(img[yy, xx])
    return value


def loop_propagate_once(depth, offsets, affinity):
    """D'(p) = sum_k a_k(p) D(p + p_k + dp_k) over the 3x3 kernel, written pixel by pixel."""
    b_n, _, h, w = depth.shape
    out = torch.zeros_like(depth)
    for b in range(b_n):
        for y in range(h):
            for x in range(w):
                total = 0.0
                for k in range(9):
                    ky, kx = divmod(k, 3)
                    sy = y + ky - 1 + float(offsets[b, 2 * k, y, x])
                    sx = x + kx - 1 + float(offsets[b, 2 * k + 1, y, x])
                    total += float(affinity[b, k, y, x]) * bilinear_zero_padded(depth[b, 0], sy, sx)
                out[b, 0, y, x] = total
    return out


def random_offsets(b, h, w, gen):
    # Up to 2.5 px: some samples fall between pixels, some outside the image.
    offsets = (torch.rand(b, 18, h, w, generator=gen, dtype=torch.float64) - 0.5) * 5
    offsets[:, 8:10] = 0.0  # centre: NLSPN keeps it at the pixel itself
    return offsets


def test_one_step_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 5, 7, generator=gen, dtype=torch.float64) * 10
    offsets = random_offsets(2, 5, 7, gen)
    affinity = torch.randn(2, 9, 5, 7, generator=gen, dtype=torch.float64)
    fast = propagate_once(depth, offsets, affinity)
    slow = loop_propagate_once(depth, offsets, affinity)
    assert fast.shape == (2, 1, 5, 7)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_neighbor_confidence_sampling_matches_loop():
    gen = torch.Generator().manual_seed(1)
    conf = torch.rand(1, 1, 4, 6, generator=gen, dtype=torch.float64)
    offsets = random_offsets(1, 4, 6, gen)
    sampled = sample_at_neighbors(conf, offsets)
    assert sampled.shape == (1, 8, 4, 6)
    for n, k in enumerate([0, 1, 2, 3, 5, 6, 7, 8]):  # neighbours skip the centre (k = 4)
        ky, kx = divmod(k, 3)
        for y in range(4):
            for x in range(6):
                expected = bilinear_zero_padded(conf[0, 0], y + ky - 1 + float(offsets[0, 2 * k, y, x]),
                                                x + kx - 1 + float(offsets[0, 2 * k + 1, y, x]))
                assert abs(float(sampled[0, n, y, x]) - expected) < 1e-10


def test_affinity_normalisation_bounds_and_centre():
    gen = torch.Generator().manual_seed(2)
    raw = torch.randn(3, 8, 6, 5, generator=gen, dtype=torch.float64) * 4
    scale = torch.tensor(0.5, dtype=torch.float64)  # small gamma: sums well above 1 get rescaled
    aff = normalize_affinity(raw, scale)
    neighbours = torch.cat((aff[:, :4], aff[:, 5:]), dim=1)
    assert aff.shape == (3, 9, 6, 5)
    assert (neighbours.abs().sum(1) <= 1 + 1e-12).all()
    torch.testing.assert_close(aff[:, 4], 1 - neighbours.sum(1))
    torch.testing.assert_close(aff.sum(1), torch.ones(3, 6, 5, dtype=torch.float64))
    # Small affinities (sum |a| < 1) are left as tanh(raw) / scale.
    small = normalize_affinity(raw * 0.01, torch.tensor(4.0, dtype=torch.float64))
    expected = torch.tanh(raw * 0.01) / 4.0
    torch.testing.assert_close(torch.cat((small[:, :4], small[:, 5:]), 1), expected, atol=1e-7, rtol=0)


def test_zero_confidence_gives_identity_weights():
    raw = torch.randn(1, 8, 4, 4)
    aff = normalize_affinity(raw, torch.tensor(4.0), torch.zeros(1, 8, 4, 4))
    expected = torch.zeros(1, 9, 4, 4)
    expected[:, 4] = 1.0
    torch.testing.assert_close(aff, expected)


def randomised_propagation(iterations, preserve_input, seed=3):
    # The reset also in training mode, so that its gradients are checked too.
    prop = NonLocalPropagation(iterations=iterations, preserve_input=preserve_input,
                               preserve_input_in_training=True).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        prop.offset_affinity.weight.copy_(torch.randn(prop.offset_affinity.weight.shape, generator=gen) * 0.3)
        prop.offset_affinity.bias.copy_(torch.randn(prop.offset_affinity.bias.shape, generator=gen) * 0.3)
    return prop


def test_fresh_propagation_is_identity():
    prop = NonLocalPropagation(iterations=5, preserve_input=False)
    depth = torch.rand(2, 1, 9, 11) * 5
    out = prop(depth, torch.randn(2, 8, 9, 11), torch.rand(2, 1, 9, 11))
    torch.testing.assert_close(out, depth)


def test_preserve_input_resets_measured_pixels_before_every_step():
    gen = torch.Generator().manual_seed(4)
    depth = torch.rand(1, 1, 8, 9, generator=gen, dtype=torch.float64) * 5
    sparse = torch.where(torch.rand(1, 1, 8, 9, generator=gen) < 0.3, 7.0, 0.0).double()
    guidance = torch.randn(1, 8, 8, 9, generator=gen, dtype=torch.float64)
    conf = torch.rand(1, 1, 8, 9, generator=gen, dtype=torch.float64)

    prop = randomised_propagation(iterations=3, preserve_input=True)
    offsets, affinity = prop.offsets_and_affinity(guidance, conf)
    expected = depth
    for _ in range(3):
        expected = propagate_once(torch.where(sparse > 0, sparse, expected), offsets, affinity)
    torch.testing.assert_close(prop(depth, guidance, conf, sparse), expected)

    free = randomised_propagation(iterations=3, preserve_input=False)
    assert not torch.allclose(free(depth, guidance, conf, sparse), expected)


def test_constant_depth_is_a_fixed_point_away_from_borders():
    # Border pixels sample zeros outside; with |offset| < 1 that reaches 2 px further per iteration.
    prop = randomised_propagation(iterations=2, preserve_input=False, seed=5)
    with torch.no_grad():  # keep |offset| < 1 so interior samples stay inside the image
        prop.offset_affinity.weight.mul_(0.05)
        prop.offset_affinity.bias.mul_(0.05)
    guidance = torch.randn(1, 8, 12, 12, dtype=torch.float64)
    offsets, _ = prop.offsets_and_affinity(guidance, None)
    assert offsets.abs().max() < 1
    out = prop(torch.full((1, 1, 12, 12), 3.0, dtype=torch.float64), guidance)
    torch.testing.assert_close(out[..., 4:-4, 4:-4], torch.full((1, 1, 4, 4), 3.0, dtype=torch.float64))
    assert not torch.allclose(out[..., 0, :], torch.full((1, 1, 12), 3.0, dtype=torch.float64))


@pytest.mark.parametrize("iterations", [0, 1])
def test_iteration_count(iterations):
    prop = randomised_propagation(iterations=iterations, preserve_input=False)
    depth = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    guidance = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    out = prop(depth, guidance)
    if iterations == 0:
        torch.testing.assert_close(out, depth)
    else:
        offsets, affinity = prop.offsets_and_affinity(guidance, None)
        torch.testing.assert_close(out, propagate_once(depth, offsets, affinity))


def test_reset_is_skipped_in_training_unless_asked():
    prop = randomised_propagation(iterations=3, preserve_input=True)
    prop.preserve_input_in_training = False
    gen = torch.Generator().manual_seed(1)
    depth = torch.rand(1, 1, 9, 11, generator=gen, dtype=torch.float64) + 1
    guidance = torch.randn(1, 8, 9, 11, generator=gen, dtype=torch.float64)
    sparse = torch.where(torch.rand(1, 1, 9, 11, generator=gen) < 0.3, 5.0, 0.0).double()
    trained = prop.train()(depth, guidance, None, sparse)
    free = prop(depth, guidance, None, None)
    torch.testing.assert_close(trained, free)
    anchored = prop.eval()(depth, guidance, None, sparse)
    assert not torch.allclose(anchored, free)

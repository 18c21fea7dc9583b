"""SelfDC losses against the loop references (selfdc_core.testing.loss_reference), plus hand-made cases."""

import math

import pytest
import torch

from selfdc_core.losses import (
    IGNORE_INDEX,
    SelfDCLoss,
    depth_consistency_loss,
    edge_aware_smoothness_loss,
    grid_gradient,
    local_gradient_constraint_loss,
    mask_aware_smoothness_loss,
    mask_based_smoothness_loss,
    segment_boundaries,
    segmentation_loss,
    segments_to_classes,
    selective_mask_aware_smoothness_loss,
    supervised_loss,
)
from selfdc_core.testing.loss_reference import dc_loop, edge_aware_loop, gc_loop, mask_based_loop, sms_loop

DTYPES = [torch.float32, torch.float64]


def voronoi_segments(b, h, w, n_regions, seed, empty_sample=None):
    """Contiguous random regions 0..n_regions-1 (0 = unlabeled present); one sample may be all 0."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = []
    for i in range(b):
        centres = torch.stack([torch.randint(0, h, (n_regions,), generator=g),
                               torch.randint(0, w, (n_regions,), generator=g)], 1).float()
        dist = (ys[None] - centres[:, 0, None, None]) ** 2 + (xs[None] - centres[:, 1, None, None]) ** 2
        seg = dist.argmin(0)
        out.append(torch.zeros_like(seg) if i == empty_sample else seg)
    return torch.stack(out).long()


def random_inputs(dtype, b=3, h=13, w=17, n_regions=6, seed=0, empty_sample=None):
    g = torch.Generator().manual_seed(seed)
    depth = (torch.rand(b, 1, h, w, generator=g, dtype=torch.float64) * 5).to(dtype).requires_grad_(True)
    image = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64).to(dtype)
    segments = voronoi_segments(b, h, w, n_regions, seed, empty_sample)
    return depth, image, segments


def assert_same_value_and_grad(fast_fn, loop_fn, depth, dtype):
    fast = fast_fn(depth)
    (fast_grad,) = torch.autograd.grad(fast, depth)
    ref = loop_fn(depth)
    (ref_grad,) = torch.autograd.grad(ref, depth)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert fast.dtype == dtype
    torch.testing.assert_close(fast, ref, rtol=tol, atol=tol)
    # same gradient => exactly the same pixels were selected
    torch.testing.assert_close(fast_grad, ref_grad, rtol=tol, atol=tol)


# ---------------------------------------------------------------- grid quantities, by hand
def test_grid_gradient_and_boundaries_by_hand():
    # D = [[0, 1, 3],      G(0,0) = |1-0| + |2-0| = 3   G(0,1) = |3-1| + |5-1| = 6
    #      [2, 5, 4],      G(1,0) = |5-2| + |0-2| = 5   G(1,1) = |4-5| + |1-5| = 5
    #      [0, 1, 2]]
    d = torch.tensor([[0.0, 1, 3], [2, 5, 4], [0, 1, 2]]).view(1, 1, 3, 3)
    assert grid_gradient(d).tolist() == [[[3.0, 6.0], [5.0, 5.0]]]
    # seg = [[1,1,2],[1,1,2],[3,3,3]]: (0,0) interior; (0,1) right differs; (1,0) below differs.
    seg = torch.tensor([[[1, 1, 2], [1, 1, 2], [3, 3, 3]]])
    assert segment_boundaries(seg).tolist() == [[[False, True], [True, True]]]


def test_gc_by_hand_partial_windows():
    # 1x4 grid (D is 2x5), G = [1, 4, 2, 8] when D row0 = [0,1,5,7,15] and row1 = row0.
    d = torch.tensor([[0.0, 1, 5, 7, 15], [0, 1, 5, 7, 15]]).view(1, 1, 2, 5)
    # window 3: tiles {1,4,2} (n=3) and partial {8} (n=1); top_ratio 0.5 -> N=2 and N=1.
    # tile means: (4+2)/2 = 3 and 8 -> loss (3+8)/2 = 5.5
    loss = local_gradient_constraint_loss(d, window=3, top_ratio=0.5, basis="none")
    assert loss.item() == pytest.approx(5.5)


def test_sms_by_hand():
    # D row0 = [0, 1, 3, 10], row1 = [0, 1, 3, 10] -> grid 1x3, horizontal diffs [1, 2, 7], vertical 0.
    # seg row0 = [1, 1, 1, 2]: segment 1 covers grid pixels 0,1,2 but pixel 2's right neighbour is
    # segment 2 -> G_1 = [1, 2, 0]; top ceil(0.4*3)=2 -> (2+1)/2 = 1.5. Segment 2 has no grid pixel.
    d = torch.tensor([[0.0, 1, 3, 10], [0, 1, 3, 10]]).view(1, 1, 2, 4)
    seg = torch.tensor([[[1, 1, 1, 2], [1, 1, 1, 2]]])
    assert selective_mask_aware_smoothness_loss(d, seg).item() == pytest.approx(1.5)
    # top_ratio 1: (1+2+0)/3 = 1
    assert mask_aware_smoothness_loss(d, seg).item() == pytest.approx(1.0)


# ---------------------------------------------------------------- against the loop references
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", [4, 8, "full"])
@pytest.mark.parametrize("basis", ["mask", "image", "none"])
def test_gc_matches_loop(dtype, window, basis):
    depth, image, seg = random_inputs(dtype, seed=3, empty_sample=1)
    for ratio in (0.02, 0.3):
        assert_same_value_and_grad(
            lambda d, r=ratio: local_gradient_constraint_loss(d, seg, image, window, r, basis),
            lambda d, r=ratio: gc_loop(d, seg, image, window, r, basis), depth, dtype)


def test_gc_drops_windows_without_eligible_pixels():
    # a checkerboard makes every grid pixel a boundary except in the bottom-right 8x8 block
    d, _, _ = random_inputs(torch.float64, b=1, h=17, w=17)
    seg = ((torch.arange(17)[:, None] + torch.arange(17)[None, :]) % 2 + 1).view(1, 17, 17)
    seg[:, 8:, 8:] = 5
    fast = local_gradient_constraint_loss(d, seg, window=8, top_ratio=0.1)
    assert torch.isclose(fast, gc_loop(d, seg, window=8, top_ratio=0.1))
    all_boundary = ((torch.arange(17)[:, None] + torch.arange(17)[None, :]) % 2).view(1, 17, 17)
    zero = local_gradient_constraint_loss(d, all_boundary, window=8)
    assert zero.item() == 0 and zero.requires_grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ratio", [0.4, 1.0, 0.07])
def test_sms_matches_loop(dtype, ratio):
    depth, _, seg = random_inputs(dtype, b=4, seed=5, n_regions=9, empty_sample=2)
    assert_same_value_and_grad(lambda d: selective_mask_aware_smoothness_loss(d, seg, ratio),
                               lambda d: sms_loop(d, seg, ratio), depth, dtype)


def test_sms_large_sparse_ids_and_ties():
    depth, _, seg = random_inputs(torch.float32, b=2, seed=7)
    seg = seg * 9000  # ids up to 45000 (16-bit PNG range), 0 stays 0
    assert_same_value_and_grad(lambda d: selective_mask_aware_smoothness_loss(d, seg),
                               lambda d: sms_loop(d, seg), depth, torch.float32)
    flat = torch.ones(1, 1, 6, 7, requires_grad=True)  # all G equal to 0: every value ties
    seg1 = torch.ones(1, 6, 7, dtype=torch.long)
    assert selective_mask_aware_smoothness_loss(flat, seg1).item() == 0


def test_sms_without_any_segment_is_zero():
    depth, _, _ = random_inputs(torch.float32, b=2)
    loss = selective_mask_aware_smoothness_loss(depth, torch.zeros(2, 13, 17, dtype=torch.long))
    assert loss.item() == 0 and loss.requires_grad


@pytest.mark.parametrize("dtype", DTYPES)
def test_smoothness_variants_match_loops(dtype):
    depth, image, seg = random_inputs(dtype, b=2, h=7, w=9, seed=11)
    assert_same_value_and_grad(lambda d: edge_aware_smoothness_loss(d, image),
                               lambda d: edge_aware_loop(d, image), depth, dtype)
    assert_same_value_and_grad(lambda d: mask_based_smoothness_loss(d, seg),
                               lambda d: mask_based_loop(d, seg), depth, dtype)
    assert_same_value_and_grad(lambda d: mask_aware_smoothness_loss(d, seg),
                               lambda d: sms_loop(d, seg, 1.0), depth, dtype)


def test_gradient_reaches_only_selected_pixels():
    # One tile (basis none, full window, N = 1): only the largest G gets gradient, i.e. only
    # the three depth pixels that define it.
    d = torch.zeros(1, 1, 5, 6, dtype=torch.float64)
    d[0, 0, 2, 3] = 1.0  # G = 1 at grid (2,2) and (1,3), G = 2 at grid (2,3)
    d[0, 0, 4, 0] = 0.1  # G = 0.1 at grid (3,0)
    d.requires_grad_(True)
    loss = local_gradient_constraint_loss(d, window="full", top_ratio=1 / 20, basis="none")
    (grad,) = torch.autograd.grad(loss, d)
    # grid (2,3): |D(2,4)-D(2,3)| + |D(3,3)-D(2,3)| = 2, the unique maximum
    assert loss.item() == pytest.approx(2.0)
    nonzero = {tuple(ix) for ix in torch.nonzero(grad[0, 0]).tolist()}
    assert nonzero == {(2, 3), (2, 4), (3, 3)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_consistency_matches_loop_and_empty_sparse(dtype):
    depth, _, _ = random_inputs(dtype)
    g = torch.Generator().manual_seed(1)
    sparse = torch.where(torch.rand(depth.shape, generator=g) < 0.1,
                         torch.rand(depth.shape, generator=g) * 5, torch.zeros(depth.shape)).to(dtype)
    sparse[1] = 0  # a sample without measurements counts as 0
    assert_same_value_and_grad(lambda d: depth_consistency_loss(d, sparse), lambda d: dc_loop(d, sparse),
                               depth, dtype)
    empty = depth_consistency_loss(depth, torch.zeros_like(sparse))
    assert empty.item() == 0 and not torch.isnan(empty)


def test_supervised_loss_by_hand():
    # valid pixels: errors 1 and -3 -> L1 = 2, L2 = (1 + 9)/2 = 5 -> 7; gt 0 ignored
    pred = torch.tensor([2.0, 1.0, 9.0]).view(1, 1, 1, 3)
    gt = torch.tensor([1.0, 4.0, 0.0]).view(1, 1, 1, 3)
    assert supervised_loss(pred, gt).item() == pytest.approx(7.0)
    assert supervised_loss(pred, torch.zeros_like(gt)).item() == 0


def test_segments_to_classes_and_segmentation_loss():
    seg = torch.tensor([[[0, 1, 2, 3, 7]]])
    assert segments_to_classes(seg, 3).tolist() == [[[IGNORE_INDEX, 0, 1, 2, 2]]]
    logits = torch.zeros(1, 3, 1, 5)
    logits[0, 0, 0, 1] = 2.0
    # uniform logits -> log 3 on three pixels; pixel 1: -log(e^2/(e^2+2)); ignored pixel 0
    expected = (3 * math.log(3) - math.log(math.exp(2) / (math.exp(2) + 2))) / 4
    loss = segmentation_loss(logits, segments_to_classes(seg, 3))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    none = segmentation_loss(logits, torch.full((1, 1, 5), IGNORE_INDEX))
    assert none.item() == 0
    with pytest.raises(ValueError, match="labels"):
        segmentation_loss(logits, torch.full((1, 1, 5), 3))


# ---------------------------------------------------------------- bad input
def test_bad_inputs_name_the_argument():
    depth, image, seg = random_inputs(torch.float32)
    sparse = torch.zeros_like(depth)
    with pytest.raises(ValueError, match="depth"):
        depth_consistency_loss(depth[:, 0], sparse)
    with pytest.raises(ValueError, match="sparse"):
        depth_consistency_loss(depth, sparse[..., :-1])
    bad = sparse.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="sparse.*NaN"):
        depth_consistency_loss(depth, bad)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="sparse"):
        depth_consistency_loss(depth, bad)
    with pytest.raises(ValueError, match="segments.*integer"):
        selective_mask_aware_smoothness_loss(depth, seg.float())
    with pytest.raises(ValueError, match="segments.*shape"):
        local_gradient_constraint_loss(depth, seg[:, :-1])
    with pytest.raises(ValueError, match="image"):
        edge_aware_smoothness_loss(depth, image[:, :, 1:])
    with pytest.raises(ValueError, match="image.*\\[0,1\\]"):
        edge_aware_smoothness_loss(depth, image * 255)
    with pytest.raises(ValueError, match="segments are required"):
        local_gradient_constraint_loss(depth, basis="mask")
    with pytest.raises(ValueError, match="window"):
        local_gradient_constraint_loss(depth, seg, window=0)
    with pytest.raises(ValueError, match="top_ratio"):
        selective_mask_aware_smoothness_loss(depth, seg, top_ratio=0)


# ---------------------------------------------------------------- the total loss
def make_batch(with_segments=True, b=2, h=13, w=17, c=4):
    depth, image, seg = random_inputs(torch.float32, b=b, h=h, w=w)
    sparse = torch.where(torch.rand(depth.shape) < 0.2, torch.rand(depth.shape) * 5, torch.zeros(depth.shape))
    outputs = {"depth": depth, "seg_logits": torch.randn(b, c, h, w, requires_grad=True)}
    batch = {"rgb": image, "sparse": sparse, "segments": seg if with_segments else None}
    return outputs, batch


def test_selfdc_loss_default_is_eq7():
    outputs, batch = make_batch()
    total, parts = SelfDCLoss()(outputs, batch)
    d, seg = outputs["depth"], batch["segments"]
    expected = (depth_consistency_loss(d, batch["sparse"])
                + 0.1 * segmentation_loss(outputs["seg_logits"], segments_to_classes(seg, 4))
                + local_gradient_constraint_loss(d, seg, window=8, top_ratio=0.02)
                + selective_mask_aware_smoothness_loss(d, seg, 0.4))
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"dc", "seg", "gc", "smooth"}
    assert all(not p.requires_grad and p.ndim == 0 for p in parts.values())
    total.backward()
    assert outputs["depth"].grad is not None and outputs["seg_logits"].grad is not None


def test_selfdc_loss_weights_and_switches():
    outputs, batch = make_batch()
    _, parts = SelfDCLoss()(outputs, batch)
    total, p = SelfDCLoss(w_dc=2.0, w_seg=0.5, w_gc=0.0, w_sms=3.0)(outputs, batch)
    assert "gc" not in p
    torch.testing.assert_close(total, 2 * parts["dc"] + 0.5 * parts["seg"] + 3 * parts["smooth"])
    _, p = SelfDCLoss(smoothness="none", gc_window="full", gc_basis="none")(outputs, batch)
    assert "smooth" not in p
    torch.testing.assert_close(p["gc"], local_gradient_constraint_loss(outputs["depth"], window="full",
                                                                       basis="none").detach())
    depth, seg, rgb = outputs["depth"], batch["segments"], batch["rgb"]
    for variant, fn in (("mask_based", lambda: mask_based_smoothness_loss(depth, seg)),
                        ("edge_aware", lambda: edge_aware_smoothness_loss(depth, rgb))):
        _, p = SelfDCLoss(smoothness=variant)(outputs, batch)
        torch.testing.assert_close(p["smooth"], fn().detach())
    # eval mode: no seg_logits -> no seg term
    _, p = SelfDCLoss()({"depth": outputs["depth"]}, batch)
    assert "seg" not in p


def test_selfdc_loss_image_aux_needs_no_segments():
    outputs, batch = make_batch(with_segments=False)
    total, p = SelfDCLoss(aux="image")(outputs, batch)
    expected_seg = (torch.sigmoid(outputs["seg_logits"][:, :3]) - batch["rgb"]).abs().mean()
    torch.testing.assert_close(p["seg"], expected_seg.detach())
    torch.testing.assert_close(p["gc"], local_gradient_constraint_loss(
        outputs["depth"], image=batch["rgb"], basis="image").detach())
    smooth = edge_aware_smoothness_loss(outputs["depth"], batch["rgb"])
    torch.testing.assert_close(p["smooth"], smooth.detach())
    assert torch.isfinite(total)


def test_selfdc_loss_errors():
    with pytest.raises(ValueError, match="bogus"):
        SelfDCLoss(bogus=1, w_dc=1)
    with pytest.raises(ValueError, match="smoothness"):
        SelfDCLoss(smoothness="fancy")
    outputs, batch = make_batch(with_segments=False)
    with pytest.raises(ValueError, match="segments.*gc.*w_gc=0"):
        SelfDCLoss()(outputs, batch)
    with pytest.raises(ValueError, match="num_classes"):
        SelfDCLoss(num_classes=7)(*make_batch())
    outputs, batch = make_batch()
    batch["segments"] = batch["segments"][:, 1:]
    with pytest.raises(ValueError, match="segments"):
        SelfDCLoss()(outputs, batch)


def test_selfdc_loss_anchors_depth_init_to_the_measurements():
    outputs, batch = make_batch()
    sparse = batch["sparse"]
    # The final depth honours the measurements exactly (as NLSPN's preserve_input makes it),
    # so only the depth_init term can pull the initial prediction towards them.
    outputs["depth"] = torch.where(sparse > 0, sparse, outputs["depth"])
    outputs["depth_init"] = (sparse + 1.0).requires_grad_()
    total, parts = SelfDCLoss()(outputs, batch)
    assert parts["dc"] == 0
    torch.testing.assert_close(parts["dc_init"], torch.tensor(1.0, dtype=parts["dc_init"].dtype))
    total.backward()
    assert outputs["depth_init"].grad[sparse > 0].abs().min() > 0
    _, parts = SelfDCLoss(w_dc_init=0.0)(outputs, batch)
    assert "dc_init" not in parts

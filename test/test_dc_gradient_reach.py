"""L_dc under preserve_input: in training it reaches every depth module, and eq. 7 alone trains."""

import torch

from selfdc_core.losses import SelfDCLoss
from selfdc_core.models import SelfDC

DC_ONLY = {"w_seg": 0.0, "w_gc": 0.0, "w_sms": 0.0}


def blocky_batch(seed=0, batch=2, height=24, width=32, density=0.1):
    """Piecewise-planar depth on 4 rectangular segments, sparsely measured; RGB follows the segments."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.arange(height)[:, None] >= height // 2
    cols = torch.arange(width)[None, :] >= width // 2
    segments = (1 + rows.long() * 2 + cols.long()).expand(batch, height, width).contiguous()
    level = torch.rand(batch, 5, generator=gen) * 6 + 1
    depth = level.gather(1, segments.flatten(1)).view(batch, 1, height, width)
    depth = depth + torch.linspace(0, 0.5, width).view(1, 1, 1, width)
    rgb = (segments.unsqueeze(1).float() / 4).expand(batch, 3, height, width).contiguous()
    measured = torch.rand(batch, 1, height, width, generator=gen) < density
    return {"rgb": rgb, "sparse": torch.where(measured, depth, 0.0), "segments": segments}


def small_model(**kwargs):
    torch.manual_seed(0)
    return SelfDC(backbone="resnet18", num_classes=5, prop_iterations=3, **kwargs).train()


def grads_over_first_steps(model, loss_fn, steps=3):
    """Sum of |grad| per parameter over the first Adam steps."""
    batch = blocky_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen = {n: 0.0 for n, _ in model.named_parameters()}
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = loss_fn(model(batch["rgb"], batch["sparse"]), batch)
        loss.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                seen[n] += float(p.grad.abs().sum())
        opt.step()
    return seen


def test_dc_alone_reaches_every_module_but_segmentation():
    for w_dc_init in (0.0, 1.0):
        model = small_model(preserve_input_in_training=False)
        seen = grads_over_first_steps(model, SelfDCLoss(w_dc_init=w_dc_init, **DC_ONLY))
        missing = [n for n, g in seen.items() if g == 0 and not n.startswith("seg_decoder.")]
        assert missing == [], f"w_dc_init={w_dc_init}: no gradient for {missing}"
        assert all(g == 0 for n, g in seen.items() if n.startswith("seg_decoder."))


def test_reset_in_training_starves_the_refinement():
    # NLSPN's behaviour (the default): with the reset on in training, L_dc alone leaves the
    # propagation, guidance and confidence heads without gradient.
    seen = grads_over_first_steps(small_model(preserve_input_in_training=True), SelfDCLoss(**DC_ONLY))
    for prefix in ("propagation.", "guidance_head.", "confidence_head."):
        assert all(g == 0 for n, g in seen.items() if n.startswith(prefix)), prefix


def test_paper_exact_loss_decreases_on_a_tiny_fit():
    model, batch = small_model(preserve_input_in_training=False), blocky_batch(seed=1)
    loss_fn = SelfDCLoss(w_dc_init=0.0)  # eq. 7 exactly
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(20):
        opt.zero_grad()
        loss, parts = loss_fn(model(batch["rgb"], batch["sparse"]), batch)
        loss.backward()
        opt.step()
        history.append((float(loss.detach()), float(parts["dc"])))
    assert history[0][1] > 0.1, "L_dc must start non-zero in training"
    assert history[-1][0] < 0.5 * history[0][0]
    assert history[-1][1] < 0.5 * history[0][1]


def test_inference_still_resets_measured_pixels():
    model, batch = small_model(preserve_input_in_training=False).eval(), blocky_batch()
    with torch.no_grad():
        out = model(batch["rgb"], batch["sparse"])
    valid = batch["sparse"] > 0
    torch.testing.assert_close(out["depth"][valid], batch["sparse"][valid])

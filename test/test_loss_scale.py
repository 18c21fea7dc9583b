"""Scale-aware structure losses: with scale_norm the terms do not change when the scene is scaled."""

import pytest
import torch

from selfdc_core.losses import SelfDCLoss
from selfdc_core.losses.scale import measured_median, normalise_depth


def scene(scale, seed=0):
    gen = torch.Generator().manual_seed(seed)
    depth = (torch.rand(2, 1, 20, 24, generator=gen) * 3 + 1) * scale
    measured = torch.rand(2, 1, 20, 24, generator=gen) < 0.2
    segments = (torch.arange(24)[None, None, :] // 6).expand(2, 20, 24) + 1
    return {"depth": depth}, {"sparse": torch.where(measured, depth, 0.0), "segments": segments}


@pytest.mark.parametrize("mode", ["median", "local"])
def test_structure_terms_are_scale_invariant(mode):
    loss_fn = SelfDCLoss(scale_norm=mode, w_dc=0.0, w_dc_init=0.0, w_seg=0.0)
    _, near = loss_fn(*scene(1.0))
    _, far = loss_fn(*scene(10.0))
    for key in ("gc", "smooth"):
        torch.testing.assert_close(far[key], near[key], rtol=1e-3, atol=1e-5)
        assert near[key] > 0


def test_paper_formulation_stays_in_metres():
    loss_fn = SelfDCLoss(w_dc=0.0, w_dc_init=0.0, w_seg=0.0)  # scale_norm="none" by default
    _, near = loss_fn(*scene(1.0))
    _, far = loss_fn(*scene(10.0))
    torch.testing.assert_close(far["gc"], 10 * near["gc"], rtol=1e-4, atol=0)


def test_median_ignores_missing_pixels_and_empty_samples():
    sparse = torch.zeros(2, 1, 3, 3)
    sparse[0, 0, 0, :] = torch.tensor([2.0, 4.0, 9.0])
    torch.testing.assert_close(measured_median(sparse).flatten(), torch.tensor([4.0, 1.0]))
    with pytest.raises(ValueError, match="scale_norm"):
        normalise_depth(sparse, sparse, "metric")
    with pytest.raises(ValueError, match="scale_norm"):
        SelfDCLoss(scale_norm="metric")

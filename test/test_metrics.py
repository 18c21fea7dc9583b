"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest
import torch

from selfdc_core.metrics import MetricAccumulator, compute_metrics, per_image_metrics, to_kitti_units

# Image A (max_depth 10): pred [[2, 1], [4, 12]], gt [[1, 2], [5, 0]] -> gt 0 is invalid.
#   errors 1, -1, -1              -> rmse = sqrt(3/3) = 1, mae = 1
#   inverse errors -0.5, 0.5, 0.05 -> irmse = sqrt(0.5025/3), imae = 1.05/3 = 0.35
#   rel = (1/1 + 1/2 + 1/5)/3 = 1.7/3
#   ratios 2, 2, 1.25 -> d1 = 0 (1.25 is not < 1.25), d2 = 1/3, d3 = 1/3 (2 > 1.953125)
PRED_A = torch.tensor([[2.0, 1.0], [4.0, 12.0]])
GT_A = torch.tensor([[1.0, 2.0], [5.0, 0.0]])
EXPECTED_A = {"rmse": 1.0, "mae": 1.0, "irmse": math.sqrt(0.5025 / 3), "imae": 0.35, "rel": 1.7 / 3,
              "d1": 0.0, "d2": 1 / 3, "d3": 1 / 3}
# Image B: pred [[12, -1]], gt [[8, 11]]; gt 11 > max_depth is invalid; pred 12 is clamped to 10.
#   error 2 -> rmse = mae = 2; |1/10 - 1/8| = 0.025; rel = 2/8 = 0.25; ratio 1.25 -> d1 0, d2 = d3 = 1
PRED_B = torch.tensor([[12.0, -1.0], [8.0, 8.0]])
GT_B = torch.tensor([[8.0, 11.0], [0.0, 0.0]])
EXPECTED_B = {"rmse": 2.0, "mae": 2.0, "irmse": 0.025, "imae": 0.025, "rel": 0.25,
              "d1": 0.0, "d2": 1.0, "d3": 1.0}


def test_single_image_by_hand():
    got = compute_metrics(PRED_A, GT_A, max_depth=10)
    assert set(got) == set(EXPECTED_A)
    for k, v in EXPECTED_A.items():
        assert got[k] == pytest.approx(v, abs=1e-12), k
    got_b = compute_metrics(PRED_B.numpy(), GT_B.numpy(), max_depth=10)  # numpy works too
    for k, v in EXPECTED_B.items():
        assert got_b[k] == pytest.approx(v, abs=1e-12), k


def test_per_image_and_batch_mean():
    pred = torch.stack([PRED_A, PRED_B]).unsqueeze(1)  # (2,1,2,2)
    gt = torch.stack([GT_A, GT_B]).unsqueeze(1)
    per = compute_metrics(pred, gt, 10, reduction="none")
    assert per["rmse"].shape == (2,)
    assert per["valid"].tolist() == [3, 1]
    assert per["mae"].tolist() == pytest.approx([1.0, 2.0])
    mean = compute_metrics(pred, gt, 10)
    assert mean["rmse"] == pytest.approx(1.5)  # mean of per-image values, not of pixels
    assert mean["d2"] == pytest.approx((1 / 3 + 1) / 2)


def test_accumulator_averages_images_and_skips_empty_ones():
    acc = MetricAccumulator(max_depth=10)
    acc.update(PRED_A[None, None], GT_A[None, None])
    acc.update(torch.stack([PRED_B, PRED_B]), torch.stack([GT_B, torch.zeros(2, 2)]))  # 2nd: no valid gt
    assert acc.count == 2 and acc.skipped == 1
    result = acc.compute()
    for k in EXPECTED_A:
        assert result[k] == pytest.approx((EXPECTED_A[k] + EXPECTED_B[k]) / 2), k
    per = per_image_metrics(torch.ones(1, 2, 2), torch.zeros(1, 2, 2), 10)
    assert math.isnan(float(per["rmse"][0])) and int(per["valid"][0]) == 0


def test_kitti_units():
    got = to_kitti_units({"rmse": 0.75, "mae": 0.2, "irmse": 0.002, "imae": 0.001, "rel": 0.1, "d1": 0.9})
    expected = {"rmse": 750.0, "mae": 200.0, "irmse": 2.0, "imae": 1.0, "rel": 0.1, "d1": 0.9}
    assert got == pytest.approx(expected)


def test_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        compute_metrics(torch.ones(2, 2), torch.ones(3, 2), 10)
    with pytest.raises(ValueError, match="gt has no valid pixel"):
        compute_metrics(torch.ones(2, 2), torch.zeros(2, 2), 10)
    with pytest.raises(ValueError, match="pred"):
        compute_metrics(torch.full((2, 2), float("nan")), torch.ones(2, 2), 10)
    with pytest.raises(ValueError, match="max_depth"):
        compute_metrics(torch.ones(2, 2), torch.ones(2, 2), 0)
    with pytest.raises(ValueError, match="pred"):
        compute_metrics(np.ones((1, 2, 2, 2)), np.ones((1, 2, 2, 2)), 10)
    with pytest.raises(ValueError, match="reduction"):
        compute_metrics(torch.ones(2, 2), torch.ones(2, 2), 10, reduction="sum")

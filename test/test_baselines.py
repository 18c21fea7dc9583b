"""Classical fills: exact on hand-made inputs, dense and faithful on a realistic one."""

import numpy as np
import pytest

from selfdc_core.baselines import BASELINES, linear_fill, morphological_fill, nearest_fill


def test_nearest_fill_single_point_fills_everything():
    sparse = np.zeros((7, 9), np.float32)
    sparse[3, 4] = 2.5
    out = nearest_fill(sparse)
    assert out.dtype == np.float32 and out.shape == (7, 9)
    assert np.all(out == 2.5)


def test_nearest_fill_two_points_split_by_distance():
    sparse = np.zeros((5, 10), np.float32)
    sparse[2, 1] = 1.0
    sparse[2, 8] = 4.0
    out = nearest_fill(sparse)
    cols = np.arange(10)
    nearer_left = np.abs(cols - 1) < np.abs(cols - 8)
    # Columns 0-4 are nearer the left point in every row, 5-9 nearer the right one.
    assert np.all(out[:, nearer_left] == 1.0)
    assert np.all(out[:, ~nearer_left] == 4.0)


def test_nearest_fill_keeps_measurements():
    rng = np.random.default_rng(1)
    sparse = np.where(rng.random((30, 40)) < 0.05, rng.uniform(1, 5, (30, 40)), 0).astype(np.float32)
    out = nearest_fill(sparse)
    assert np.array_equal(out[sparse > 0], sparse[sparse > 0])
    assert (out > 0).all()


@pytest.mark.parametrize("fill", [nearest_fill, morphological_fill, linear_fill])
def test_empty_input_returns_zeros(fill):
    out = fill(np.zeros((6, 8), np.float32))
    assert out.shape == (6, 8) and out.dtype == np.float32 and not out.any()


@pytest.mark.parametrize("fill", [nearest_fill, morphological_fill, linear_fill])
@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3, 4)), np.full((4, 4), np.nan), -np.ones((4, 4))], ids=["3d", "nan", "negative"]
)
def test_bad_input_is_rejected(fill, bad):
    with pytest.raises(ValueError, match="sparse"):
        fill(bad)


def _ramp_scene(num_points=400, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 60, 80
    gt = np.tile(np.linspace(2.0, 6.0, w, dtype=np.float32), (h, 1))
    gt[20:40, 30:50] = 1.5  # a box in front of a slanted wall
    sparse = np.zeros_like(gt)
    idx = rng.choice(h * w, num_points, replace=False)
    sparse.flat[idx] = gt.flat[idx]
    return gt, sparse, idx


def test_morphological_fill_is_dense_finite_and_close_to_inputs():
    gt, sparse, idx = _ramp_scene()
    out = morphological_fill(sparse)
    assert out.dtype == np.float32 and out.shape == gt.shape
    assert np.isfinite(out).all() and (out > 0).all()
    assert out.max() <= sparse.max() + 1e-4  # inverted-depth dilation never invents farther depth
    # Blurs move the measured pixels a little, not much.
    assert np.median(np.abs(out.flat[idx] - sparse.flat[idx])) < 0.05
    # And it is a real completion: far better than a constant guess.
    assert np.sqrt(np.mean((out - gt) ** 2)) < 0.5 * np.std(gt)


def test_morphological_fill_very_sparse_input_still_dense():
    sparse = np.zeros((50, 70), np.float32)
    sparse[45, 5] = 3.0
    sparse[48, 60] = 7.0
    out = morphological_fill(sparse, blur="gaussian")
    assert np.isfinite(out).all() and (out > 0).all()
    assert out.min() >= 3.0 - 1e-4 and out.max() <= 7.0 + 1e-4


def test_morphological_fill_near_surface_wins_at_boundaries():
    # Two points adjacent: the dilation on inverted depth must give the gap to the nearer one.
    sparse = np.zeros((20, 20), np.float32)
    sparse[10, 9] = 1.0
    sparse[10, 11] = 5.0
    out = morphological_fill(sparse, blur="gaussian")
    assert out[10, 10] < 3.0


def test_morphological_fill_checks_max_depth():
    sparse = np.zeros((10, 10), np.float32)
    sparse[5, 5] = 8.0
    with pytest.raises(ValueError, match="max_depth"):
        morphological_fill(sparse, max_depth=5.0)


def test_linear_fill_reproduces_a_plane_inside_the_hull_and_nearest_outside():
    h, w = 12, 15
    r, c = np.indices((h, w))
    plane = (1.0 + 0.25 * r + 0.1 * c).astype(np.float32)
    sparse = np.zeros((h, w), np.float32)
    corners = [(2, 3), (2, 12), (10, 3), (10, 12), (6, 7)]
    for y, x in corners:
        sparse[y, x] = plane[y, x]
    out = linear_fill(sparse)
    assert out.dtype == np.float32 and out.shape == (h, w)
    inside = (r >= 2) & (r <= 10) & (c >= 3) & (c <= 12)  # the hull is the rectangle of the corners
    np.testing.assert_allclose(out[inside], plane[inside], atol=1e-5)
    assert np.array_equal(out[~inside], nearest_fill(sparse)[~inside])


def test_linear_fill_midpoint_of_a_triangle_edge_and_its_centroid():
    sparse = np.zeros((7, 7), np.float32)
    sparse[0, 0], sparse[0, 6], sparse[6, 0] = 1.0, 4.0, 7.0
    out = linear_fill(sparse)
    assert out[0, 3] == pytest.approx(2.5)  # halfway between 1 m and 4 m
    assert out[3, 0] == pytest.approx(4.0)  # halfway between 1 m and 7 m
    assert out[2, 2] == pytest.approx((1.0 + 4.0 + 7.0) / 3)  # the centroid blends all three
    # Beyond the hypotenuse (outside the triangle) the nearest measurement is copied.
    assert out[6, 6] == nearest_fill(sparse)[6, 6]


@pytest.mark.parametrize("points", [[(3, 4)], [(1, 1), (5, 7)], [(2, 1), (2, 4), (2, 8)]],
                         ids=["one", "two", "collinear"])
def test_linear_fill_without_a_triangle_is_nearest_fill(points):
    sparse = np.zeros((6, 10), np.float32)
    for i, (y, x) in enumerate(points):
        sparse[y, x] = 1.0 + i
    assert np.array_equal(linear_fill(sparse), nearest_fill(sparse))


def test_linear_fill_beats_nearest_on_a_slanted_wall():
    gt, sparse, idx = _ramp_scene()
    out = linear_fill(sparse)
    assert np.isfinite(out).all() and (out > 0).all()
    assert np.array_equal(out.flat[idx], sparse.flat[idx])
    rmse = {name: np.sqrt(np.mean((fill(sparse) - gt) ** 2)) for name, fill in BASELINES.items()}
    assert rmse["linear fill"] < rmse["nearest fill"]

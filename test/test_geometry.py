import numpy as np
import pytest

from selfdc_core.geometry import (
    crop_intrinsics,
    filter_occluded_points,
    flip_intrinsics,
    make_transform,
    project_points,
    resize_sparse_depth,
    scale_intrinsics,
    transform_points,
)

K = np.array([[100.0, 0.0, 15.5], [0.0, 100.0, 11.5], [0.0, 0.0, 1.0]])


def _pixel_of(K, p):
    x = K @ p
    return x[0] / x[2], x[1] / x[2]


def test_quaternion_transform_matches_rotation_matrix():
    # 90 degrees about z: x -> y.
    T = make_transform([1.0, 2.0, 3.0], [0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    out = transform_points(np.array([[1.0, 0.0, 0.0]]), T)
    np.testing.assert_allclose(out[0], [1.0, 3.0, 3.0], atol=1e-6)
    T2 = make_transform([1.0, 2.0, 3.0], T[:3, :3])
    np.testing.assert_allclose(T, T2)


def test_projection_places_points_and_nearest_wins():
    pts = np.array(
        [
            [0.0, 0.0, 2.0],  # principal point -> pixel (15.5, 11.5) rounds to (16, 12)
            [0.0, 0.0, 1.0],  # same ray, nearer: must win
            [0.102, -0.052, 1.0],  # u = 15.5 + 10.2 = 25.7 -> 26, v = 11.5 - 5.2 = 6.3 -> 6
            [0.0, 0.0, -1.0],  # behind the camera
            [5.0, 0.0, 1.0],  # outside the image
            [np.nan, 0.0, 1.0],  # not finite
        ]
    )
    d = project_points(pts, K, 24, 32)
    assert d.dtype == np.float32 and d.shape == (24, 32)
    assert d[12, 16] == pytest.approx(1.0)
    assert d[6, 26] == pytest.approx(1.0)
    assert np.count_nonzero(d) == 2


def test_projection_accepts_P_with_translation():
    P = np.hstack([K, np.array([[-10.0], [0.0], [0.0]])])  # stereo-style baseline term
    d = project_points(np.array([[0.0, 0.0, 1.0]]), P, 24, 32)
    assert d[12, 6] == pytest.approx(1.0)  # u = 15.5 - 10 = 5.5 -> 6


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 3)), "focal"),
        (np.eye(2), "3x3"),
    ],
)
def test_projection_rejects_bad_intrinsics(bad, match):
    with pytest.raises(ValueError, match=match):
        project_points(np.zeros((1, 3)), bad, 4, 4)


def test_projection_rejects_bad_points_shape():
    with pytest.raises(ValueError, match="points_cam"):
        project_points(np.zeros((4, 2)), K, 4, 4)


def test_empty_cloud_gives_empty_map():
    assert not project_points(np.zeros((0, 3)), K, 5, 6).any()


def test_occlusion_filter_removes_background_points_only():
    d = np.zeros((20, 20), np.float32)
    d[5:15, 5:15:2] = 2.0  # foreground surface
    d[10, 8] = 10.0  # background point seen through it by the LiDAR
    # a ground-like slope: neighbours 5% nearer must survive
    d[18, 0:20:2] = 20.0
    d[19, 0:20:2] = 21.0
    out, removed = filter_occluded_points(d, kernel_size=5)
    assert removed == 1
    assert out[10, 8] == 0 and out[19, 4] == 21.0 and out[5, 5] == 2.0


def test_intrinsics_follow_image_operations():
    p = np.array([0.3, -0.2, 2.0])
    u, v = _pixel_of(K, p)
    u2, v2 = _pixel_of(scale_intrinsics(K, 0.5, 0.5), p)
    assert u2 == pytest.approx((u + 0.5) * 0.5 - 0.5) and v2 == pytest.approx((v + 0.5) * 0.5 - 0.5)
    u3, v3 = _pixel_of(crop_intrinsics(K, top=3, left=4), p)
    assert (u3, v3) == pytest.approx((u - 4, v - 3))
    Kf = flip_intrinsics(K, 32)
    pf = p * np.array([-1.0, 1.0, 1.0])  # flipping the image mirrors x
    assert _pixel_of(Kf, pf)[0] == pytest.approx(31 - u)


def test_resize_sparse_keeps_values_and_nearest():
    d = np.zeros((4, 4), np.float32)
    d[0, 0], d[1, 1], d[3, 3] = 5.0, 3.0, 7.0
    out = resize_sparse_depth(d, 2, 2)
    assert out[0, 0] == 3.0  # (0,0) and (1,1) collide: nearest wins
    assert out[1, 1] == 7.0 and np.count_nonzero(out) == 2
    up = resize_sparse_depth(d, 8, 8)
    assert sorted(up[up > 0].tolist()) == [3.0, 5.0, 7.0]


def test_fused_transform_equals_transform_then_project():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(500, 3)) * [0.3, 0.3, 1.0] + [0.0, 0.0, 4.0]
    T = make_transform([0.1, -0.2, 0.05], [0.02, -0.03, 0.01, 1.0])
    fused = project_points(pts, K, 24, 32, transform=T)
    np.testing.assert_allclose(fused, project_points(transform_points(pts, T), K, 24, 32), atol=1e-5)
    assert np.count_nonzero(fused) > 50
    with pytest.raises(ValueError, match="transform"):
        project_points(pts, K, 24, 32, transform=np.eye(3))

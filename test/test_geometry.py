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


# ----------------------------------------------------------------- sensor geometry (distortion)
import cv2  # noqa: E402

from selfdc_core.geometry import check_rigid_transform  # noqa: E402
from selfdc_core.sensor_geometry import (  # noqa: E402
    CameraModel,
    drop_out_of_range,
    project_cloud,
    resize_depth_to_camera,
    sparse_depth_from_points,
)

RAW_K = np.array([[300.0, 0.0, 160.2], [0.0, 310.0, 119.7], [0.0, 0.0, 1.0]])
CAMERAS = {
    "plumb_bob": np.array([-0.28, 0.09, 0.001, -0.0008, -0.012]),
    "rational_polynomial": np.array([0.4, -0.1, 0.0005, 0.0007, 0.02, 0.75, -0.05, 0.03]),
    "equidistant": np.array([0.05, -0.01, 0.002, -0.0005]),
}


def _scene(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 20.0, n)
    return np.column_stack([rng.uniform(-1.2, 1.2, n) * z, rng.uniform(-0.9, 0.9, n) * z, z])


def _opencv_pixels(model, D, points):
    pts = points.reshape(-1, 1, 3).astype(np.float64)
    if model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(pts, np.zeros(3), np.zeros(3), RAW_K, D.reshape(4, 1))
    else:
        uv, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), RAW_K, D)
    return np.floor(uv.reshape(-1, 2) + 0.5).astype(int)


@pytest.mark.parametrize("model", sorted(CAMERAS))
def test_distorted_projection_lands_where_opencv_puts_each_point(model):
    h, w = 240, 320
    camera = CameraModel(RAW_K, w, h, model, CAMERAS[model])
    points = _scene()
    T = make_transform([0.05, -0.1, 0.02], [0.01, 0.02, 0.0, 1.0])  # LiDAR -> camera
    sparse = project_cloud(transform_points(points, np.linalg.inv(T)), camera, transform=T)
    cam = points.astype(np.float32)  # what the fused transform gives back, to float32 precision
    uv = _opencv_pixels(model, CAMERAS[model], cam)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    # Pixels hit by exactly one point must hold that point's depth (others are z-buffered).
    lin = uv[inside, 1] * w + uv[inside, 0]
    ids, counts = np.unique(lin, return_counts=True)
    single = np.isin(lin, ids[counts == 1])
    assert single.sum() > 500
    np.testing.assert_allclose(sparse.reshape(-1)[lin[single]], cam[inside, 2][single], rtol=1e-5)
    assert np.count_nonzero(sparse) == len(ids)  # and nothing lands anywhere else
    pinhole = project_points(cam, RAW_K, h, w)
    assert np.count_nonzero((pinhole > 0) != (sparse > 0)) > 500  # distortion really moves points


def test_points_beyond_the_field_of_view_do_not_fold_back_into_the_image():
    # Barrel distortion r(1 + k1 r^2) with k1 = -0.3 comes back to the image centre near
    # r = sqrt(1 / 0.3) = 1.83: points 60 degrees off axis would land in the middle of the image.
    camera = CameraModel(RAW_K, 320, 240, "plumb_bob", np.array([-0.3, 0.0, 0.0, 0.0, 0.0]))
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    off_axis = np.column_stack([1.85 * np.cos(angles), 1.85 * np.sin(angles), np.ones(12)])
    uv = _opencv_pixels("plumb_bob", camera.D, off_axis)
    assert ((uv[:, 0] >= 0) & (uv[:, 0] < 320) & (uv[:, 1] >= 0) & (uv[:, 1] < 240)).all()  # OpenCV folds
    assert np.count_nonzero(project_cloud(off_axis, camera)) == 0
    on_axis = np.array([[0.3, 0.2, 1.0]])  # well inside the field of view: kept
    assert np.count_nonzero(project_cloud(on_axis, camera)) == 1


def test_sparse_depth_from_points_drops_out_of_range_before_the_occlusion_filter():
    camera = CameraModel(K, 32, 24)
    near = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0]])  # pixels (12, 16) and (12, 21)
    far = np.array([[1e8, 0.0, 1e9]])  # its own pixel, (12, 26)
    sparse, dropped, hint = sparse_depth_from_points(np.vstack([near, far]), camera, None,
                                                     {"kernel_size": 5}, (0.0, 300.0))
    assert dropped == 1 and hint is None and np.count_nonzero(sparse) == 2
    assert sparse.max() == pytest.approx(2.0)


def test_unit_hint_for_millimetres():
    d = np.zeros((4, 4), np.float32)
    d[0, :3] = [1500.0, 2300.0, 800.0]
    d[1, 0] = 2.0
    out, dropped, hint = drop_out_of_range(d, 0.1, 10.0)
    assert dropped == 3 and "millimetres" in hint and np.count_nonzero(out) == 1
    d[0, :3] = [1e7, 2e7, 3e7]  # too far, but not millimetres either
    assert drop_out_of_range(d, 0.1, 10.0)[2] is None


def test_depth_image_resized_to_the_camera_or_refused():
    tof = np.zeros((8, 8), np.float32)
    tof[3, 4] = 2.5
    out = resize_depth_to_camera(tof, 16, 16)
    assert out.shape == (16, 16) and np.count_nonzero(out) == 1 and out.max() == 2.5
    assert resize_depth_to_camera(tof, 16, 24) is None  # another aspect: not the same field of view


def test_extrinsic_must_be_rigid():
    T = make_transform([0.1, 0.2, 0.3], [0.0, 0.0, 0.38268343, 0.92387953])
    np.testing.assert_array_equal(check_rigid_transform(T), T)
    scaled = T.copy()
    scaled[:3, :3] *= 5
    with pytest.raises(ValueError, match="not rigid.*singular values"):
        check_rigid_transform(scaled, "extrinsic.matrix")
    mirrored = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="det"):
        check_rigid_transform(mirrored)
    with pytest.raises(ValueError, match="last row"):
        check_rigid_transform(np.vstack([T[:3], [0, 0, 1, 1]]))

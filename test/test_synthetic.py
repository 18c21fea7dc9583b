"""Synthetic scenes: renderer, simulated LiDAR/ToF and the SyntheticScenes dataset."""

import numpy as np
import pytest
import torch

from selfdc_core.data import SyntheticScenes
from selfdc_core.data.synthetic import (
    ENVIRONMENTS,
    LidarConfig,
    nyu_like_intrinsics,
    random_sparse_depth,
    render_frame,
    tof_grid_shape,
    tof_sparse_depth,
)
from selfdc_core.geometry import project_points, transform_points

H, W = 96, 128
COARSE_LIDAR = LidarConfig(beams=16, horizontal_resolution_deg=1.0)


def test_same_seed_gives_identical_arrays_and_other_seeds_differ():
    a = render_frame(3, 5, H, W, lidar=COARSE_LIDAR)
    b = render_frame(3, 5, H, W, lidar=COARSE_LIDAR)
    for name in ("rgb", "depth", "object_ids", "K", "lidar_points", "T_cam_lidar"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = render_frame(3, 6, H, W, lidar=COARSE_LIDAR)
    d = render_frame(4, 5, H, W, lidar=COARSE_LIDAR)
    assert not np.array_equal(a.depth, c.depth) and not np.array_equal(a.depth, d.depth)


def test_scene_and_pose_do_not_depend_on_image_size_or_lidar():
    small = render_frame(9, 4, 24, 32, with_lidar=False)
    large = render_frame(9, 4, 96, 128, lidar=COARSE_LIDAR)
    np.testing.assert_array_equal(small.T_world_cam, large.T_world_cam)
    np.testing.assert_array_equal(small.scene.box_lo, large.scene.box_lo)
    # same view: pixel centres of the small image fall half a large pixel from large[1::4, 1::4]
    rel = np.abs(small.depth - large.depth[1::4, 1::4]) / small.depth
    assert np.median(rel) < 0.01


def test_shapes_dtypes_and_ranges():
    f = render_frame(0, 0, H, W, lidar=COARSE_LIDAR)
    assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
    assert f.object_ids.shape == (H, W) and f.object_ids.dtype == np.int32
    assert np.isfinite(f.depth).all() and f.depth.min() > 0  # closed room: every ray hits
    assert f.depth.max() < 15  # "room" environment is at most 7 x 6 x 3 m
    assert f.object_ids.min() >= 1 and f.object_ids.max() <= f.scene.num_ids
    assert f.rgb.std() > 5  # textured and shaded, not a flat image
    assert f.lidar_points.dtype == np.float32 and f.lidar_points.shape[1] == 3
    assert f.T_cam_lidar.shape == (4, 4)


def test_default_intrinsics_are_nyu_half_resolution():
    K = nyu_like_intrinsics(228, 304)
    assert K[0, 0] == pytest.approx(259.43) and K[1, 1] == pytest.approx(259.43)
    assert K[0, 2] == pytest.approx(151.5) and K[1, 2] == pytest.approx(113.5)
    np.testing.assert_allclose(nyu_like_intrinsics(114, 152)[0, 0], 259.43 / 2, rtol=1e-6)
    f = render_frame(0, 0, lidar=COARSE_LIDAR)
    assert f.rgb.shape == (228, 304, 3)
    np.testing.assert_allclose(f.K, K)


def test_depth_is_z_depth_of_the_pinhole_camera():
    """Back-projected pixels land on the surfaces: their world z on the floor id is 0."""
    f = render_frame(1, 2, H, W, lidar=COARSE_LIDAR)
    v, u = np.mgrid[0:H, 0:W]
    rays = np.stack([(u - f.K[0, 2]) / f.K[0, 0], (v - f.K[1, 2]) / f.K[1, 1], np.ones((H, W))], -1)
    points_world = transform_points((rays * f.depth[..., None]).reshape(-1, 3), f.T_world_cam)
    floor = f.object_ids.reshape(-1) == 1
    assert floor.sum() > 50
    np.testing.assert_allclose(points_world[floor, 2], 0.0, atol=2e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_object_ids_agree_with_depth_discontinuities(seed):
    f = render_frame(seed, 0, H, W, lidar=COARSE_LIDAR, with_lidar=False)
    d, ids = f.depth, f.object_ids
    for axis in (0, 1):
        jump = np.abs(np.diff(d, axis=axis)) / np.minimum(
            d[:-1] if axis == 0 else d[:, :-1], d[1:] if axis == 0 else d[:, 1:]
        )
        same = np.diff(ids, axis=axis) == 0
        assert jump[same].max() < 0.3, "a depth edge inside one object id"
    assert len(np.unique(ids)) >= 3


def test_lidar_points_project_onto_the_ground_truth_depth():
    f = render_frame(2, 1, 228, 304, lidar_beams=32)
    points_cam = transform_points(f.lidar_points, f.T_cam_lidar)
    sparse = project_points(points_cam, f.K, 228, 304)
    hit = sparse > 0
    assert hit.sum() > 1000
    err = np.abs(sparse[hit] - f.depth[hit])
    assert np.median(err) < 0.01
    assert np.mean(err / f.depth[hit] < 0.05) > 0.95  # the rest is parallax at occlusion edges
    # a full sweep: most points are outside the camera's view, some behind it
    assert (points_cam[:, 2] < 0).sum() > 0.3 * len(points_cam)


def test_lidar_frame_convention_and_extrinsic():
    f = render_frame(2, 1, H, W, lidar=COARSE_LIDAR)
    R = f.T_cam_lidar[:3, :3]
    np.testing.assert_array_equal(R @ [1, 0, 0], [0, 0, 1])  # LiDAR x forward = camera z
    np.testing.assert_array_equal(R @ [0, 1, 0], [-1, 0, 0])  # LiDAR y left = camera -x
    np.testing.assert_array_equal(R @ [0, 0, 1], [0, -1, 0])  # LiDAR z up = camera -y
    assert np.linalg.norm(f.T_cam_lidar[:3, 3]) > 0.05  # mounted apart from the camera
    # the top ring looks up: elevation of ring 0 is fov_up
    top = f.lidar_points[f.lidar_rings == 0]
    elevation = np.degrees(np.arctan2(top[:, 2], np.hypot(top[:, 0], top[:, 1])))
    np.testing.assert_allclose(elevation, COARSE_LIDAR.fov_up_deg, atol=1e-3)


@pytest.mark.parametrize("beams", [16, 32, 64])
def test_beam_count_gives_that_many_elevation_rings(beams):
    config = LidarConfig(beams=beams, horizontal_resolution_deg=4.0, fov_up_deg=10.0, fov_down_deg=-20.0)
    f = render_frame(0, 0, 24, 32, lidar=config)
    p = f.lidar_points
    elevation = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
    assert len(np.unique(np.round(elevation, 2))) == beams
    assert elevation.max() == pytest.approx(10.0, abs=1e-3) and elevation.min() == pytest.approx(
        -20.0, abs=1e-3
    )
    assert len(p) == beams * 90  # closed room: every beam returns


def test_lidar_noise_and_dropout():
    clean = render_frame(5, 0, 24, 32, lidar=COARSE_LIDAR)
    noisy = render_frame(
        5,
        0,
        24,
        32,
        lidar=LidarConfig(beams=16, horizontal_resolution_deg=1.0, range_noise_std=0.05, dropout=0.2),
    )
    assert 0.7 * len(clean.lidar_points) < len(noisy.lidar_points) < 0.9 * len(clean.lidar_points)
    np.testing.assert_array_equal(clean.rgb, noisy.rgb)  # separate random streams


def test_environments_differ():
    room = [render_frame(0, i, H, W, environment="room", with_lidar=False) for i in range(3)]
    ware = [render_frame(0, i, H, W, environment="warehouse", with_lidar=False) for i in range(3)]
    assert all(r.scene.room_size[0] <= 7.0 for r in room) and all(w.scene.room_size[0] >= 12 for w in ware)
    assert np.mean([w.depth.max() for w in ware]) > np.mean([r.depth.max() for r in room])
    assert np.mean([w.object_ids.max() for w in ware]) > np.mean([r.object_ids.max() for r in room])


@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_every_environment_is_a_closed_scene_with_objects(environment):
    frames = [render_frame(2, i, 48, 64, environment=environment, lidar=COARSE_LIDAR) for i in range(3)]
    for f in frames:
        assert f.depth.min() > 0 and np.isfinite(f.depth).all()
        assert f.scene.num_ids > 6  # some objects besides the six room faces
        assert len(f.lidar_points) == 16 * 360  # closed: every beam returns
    assert len({f.rgb.tobytes() for f in frames}) == 3


def test_shadows_only_darken():
    plain = render_frame(1, 3, H, W, with_lidar=False, shadows=False, pixel_noise=0)
    shaded = render_frame(1, 3, H, W, with_lidar=False, shadows=True, pixel_noise=0)
    np.testing.assert_array_equal(plain.depth, shaded.depth)
    assert (shaded.rgb.astype(int) <= plain.rgb.astype(int)).all()


def test_tof_sampler_grid_count_and_range():
    depth = np.linspace(1.0, 6.0, 60 * 80, dtype=np.float32).reshape(60, 80)
    rows, cols = tof_grid_shape(48, 60, 80)
    assert rows * cols == 48
    sparse = tof_sparse_depth(depth, 48, max_range=10.0)
    assert (sparse > 0).sum() == 48
    np.testing.assert_array_equal(sparse[sparse > 0], depth[sparse > 0])
    near = tof_sparse_depth(depth, 48, max_range=3.0)
    assert 0 < (near > 0).sum() < 48 and near.max() <= 3.0
    rng = np.random.default_rng(0)
    jittered = tof_sparse_depth(depth, 48, max_range=10.0, jitter=0.8, noise_std=0.01, rng=rng)
    assert (jittered > 0).sum() == 48
    assert not np.array_equal(np.nonzero(jittered), np.nonzero(sparse))
    with pytest.raises(ValueError, match="rng"):
        tof_sparse_depth(depth, 48, jitter=0.5)
    with pytest.raises(ValueError, match="num_samples"):
        tof_sparse_depth(depth, 0)
    with pytest.raises(ValueError, match="max_range"):
        tof_sparse_depth(depth, 10, max_range=0)


def test_random_sampler_takes_exactly_n_ground_truth_pixels():
    depth = np.random.default_rng(1).uniform(1, 5, size=(40, 50)).astype(np.float32)
    depth[:5] = 0  # invalid pixels are never sampled
    sparse = random_sparse_depth(depth, 300, np.random.default_rng(2))
    assert (sparse > 0).sum() == 300
    np.testing.assert_array_equal(sparse[sparse > 0], depth[sparse > 0])


def test_dataset_contract_without_ground_truth_by_default():
    ds = SyntheticScenes(3, seed=7, height=H, width=W, lidar_config={"horizontal_resolution_deg": 1.0})
    assert len(ds) == 3 and ds.key(2) == "synthetic/room/seed7/000002"
    item = ds[0]
    assert set(item) == {"key", "rgb", "sparse", "K"}  # no gt, no segments unless asked for
    assert item["rgb"].shape == (3, H, W) and 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    assert item["sparse"].shape == (1, H, W) and (item["sparse"] > 0).sum() > 50
    frame = ds.frame(0)
    np.testing.assert_array_equal(ds.raw_rgb(0), frame.rgb)
    valid = item["sparse"][0].numpy() > 0
    assert np.median(np.abs(item["sparse"][0].numpy()[valid] - frame.depth[valid])) < 0.01
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["sparse"].shape == (2, 1, H, W) and batch["key"][1] == ds.key(1)
    with pytest.raises(IndexError):
        ds[3]


def test_dataset_ground_truth_and_oracle_segments():
    ds = SyntheticScenes(
        2,
        seed=1,
        height=H,
        width=W,
        sparse="random",
        num_samples=100,
        with_gt=True,
        segments="oracle",
        environment="warehouse",
    )
    item = ds[1]
    frame = ds.frame(1)
    np.testing.assert_array_equal(item["gt"][0].numpy(), frame.depth)
    assert (item["sparse"] > 0).sum() == 100
    seg = item["segments"].numpy()
    assert item["segments"].dtype == torch.int64 and seg.min() >= 1
    areas = np.bincount(seg.ravel())[1:]
    assert (np.diff(areas) <= 0).all()  # ranked by area, 1 = largest
    # same partition as the object ids
    assert len(np.unique(seg)) == len(np.unique(frame.object_ids))
    assert len(np.unique(seg.astype(np.int64) * 1000 + frame.object_ids)) == len(np.unique(seg))


def test_dataset_pseudo_labels_come_from_the_segment_source():
    calls = []

    def halves(rgb):
        calls.append(rgb.shape)
        labels = np.ones(rgb.shape[:2], dtype=np.int32)
        labels[:, rgb.shape[1] // 2 :] = 2
        return labels

    ds = SyntheticScenes(1, height=H, width=W, sparse="tof", num_samples=20, segment_fallback=halves)
    item = ds[0]
    assert calls == [(H, W, 3)]
    assert set(np.unique(item["segments"].numpy())) == {1, 2}
    assert (item["sparse"] > 0).sum() <= 20


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lidar_beams": 0}, "beams"),
        ({"height": -5}, "height"),
        ({"width": 0}, "width"),
        ({"num_frames": 0}, "num_frames"),
        ({"seed": -1}, "seed"),
        ({"environment": "moon"}, "environment"),
        ({"sparse": "radar"}, "sparse"),
        ({"num_samples": 0}, "num_samples"),
        ({"segments": "sam"}, "segments"),
        ({"sparse_noise": -1.0}, "sparse_noise"),
        ({"lidar_config": {"fov_up": 3}}, "lidar_config"),
        ({"lidar_config": {"fov_up_deg": -30.0}}, "fov"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    args = {"num_frames": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        SyntheticScenes(**args)


def test_render_frame_bad_arguments():
    with pytest.raises(ValueError, match="beams"):
        render_frame(0, 0, 24, 32, lidar_beams=0)
    with pytest.raises(ValueError, match="height"):
        render_frame(0, 0, -1, 32)
    with pytest.raises(ValueError, match="index"):
        render_frame(0, -3)
    with pytest.raises(ValueError, match="environment"):
        render_frame(0, 0, environment="forest")

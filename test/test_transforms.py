"""PixelTransform, augmentation parameters, colour jitter and sparse sampling."""

import math
from dataclasses import replace

import numpy as np
import pytest

from selfdc_core.data.sampling import file_rng, sample_sparse_depth
from selfdc_core.data.transforms import (
    AugmentConfig,
    AugmentParams,
    PixelTransform,
    color_jitter,
    sample_augmentation,
)
from selfdc_core.geometry import crop_intrinsics, scale_intrinsics

K0 = np.array([[518.9, 0.0, 325.6], [0.0, 519.5, 253.7], [0.0, 0.0, 1.0]])
H0, W0 = 480, 640


def project(K, pts):
    h = pts @ K.T
    return h[:, :2] / h[:, 2:3]


def augmented(params: AugmentParams) -> PixelTransform:
    tf = PixelTransform(K0, H0, W0).apply_augmentation(params)
    return tf.resize(0.5).center_crop(228, 304)


def test_intrinsics_follow_every_step_physically():
    """A 3-D point, moved as each augmentation moves the scene, projects where its pixel went."""
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-2, 2, 50), rng.uniform(-1.5, 1.5, 50), rng.uniform(1, 8, 50)], axis=1)
    angle, s = 4.0, 1.3
    tf = augmented(AugmentParams(hflip=True, rotation_deg=angle, scale=s))

    mirrored = pts * np.array([-1.0, 1.0, 1.0])
    c, si = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rolled = mirrored @ np.array([[c, -si, 0.0], [si, c, 0.0], [0.0, 0.0, 1.0]]).T
    moved = rolled / s  # the scene comes s times closer

    uv0 = project(K0, pts)
    expected = (np.c_[uv0, np.ones(len(uv0))] @ tf.A.T)[:, :2]
    np.testing.assert_allclose(project(tf.K, moved), expected, atol=1e-6)
    np.testing.assert_allclose(moved[:, 2], pts[:, 2] * tf.depth_factor)


def test_plain_preprocessing_uses_shared_geometry_functions():
    tf = PixelTransform(K0, H0, W0).resize(0.5).center_crop(228, 304)
    np.testing.assert_allclose(tf.K, crop_intrinsics(scale_intrinsics(K0, 0.5, 0.5), 6, 8))
    assert tf.output_shape == (228, 304)
    depth = np.repeat(np.repeat(np.arange(240 * 320, dtype=np.float32).reshape(240, 320), 2, 0), 2, 1)
    # Constant 2x2 blocks: the half-resolution nearest map is exactly the block grid, then the crop.
    expected = np.arange(240 * 320, dtype=np.float32).reshape(240, 320)[6:234, 8:312]
    np.testing.assert_array_equal(tf.apply_dense_depth(depth), expected)
    rgb = np.repeat(np.repeat(np.random.default_rng(1).integers(0, 256, (240, 320, 3), np.uint8), 2, 0), 2, 1)
    np.testing.assert_array_equal(tf.apply_image(rgb), rgb[::2, ::2][6:234, 8:312])


def test_all_maps_are_transformed_identically():
    """Encode each source pixel's position in rgb, depth, sparse depth and labels; decode after warping."""
    h, w, s = 120, 160, 1.2
    K = np.array([[150.0, 0.0, 83.0], [0.0, 151.0, 58.0], [0.0, 0.0, 1.0]])
    v, u = np.mgrid[0:h, 0:w]
    labels = (v * w + u + 1).astype(np.int64)
    rgb = np.stack([u * 255 / (w - 1), v * 255 / (h - 1), np.zeros(u.shape)], -1).round().astype(np.uint8)
    depth = (1.0 + u * 0.01 + v * 0.00001).astype(np.float64)
    sparse = np.where((u % 7 == 0) & (v % 5 == 0), depth, 0).astype(np.float32)

    tf = PixelTransform(K, h, w).apply_augmentation(AugmentParams(hflip=True, rotation_deg=-5.0, scale=s))
    tf.crop(0, 2, 100, 150)  # the top-left part, where the rotation leaves a corner empty
    seg_out, dense_out = tf.apply_nearest(labels), tf.apply_dense_depth(depth.astype(np.float32))
    rgb_out, sparse_out = tf.apply_image(rgb), tf.apply_sparse_depth(sparse)

    has_src = seg_out > 0
    assert 0.8 < has_src.mean() < 1.0  # the rotation leaves corners without a source pixel
    assert np.all(dense_out[~has_src] == 0)
    src_v, src_u = np.divmod(seg_out - 1, w)
    # Dense depth comes from the same source pixel as the labels, divided by the scale.
    np.testing.assert_allclose(dense_out[has_src], depth[src_v, src_u][has_src] / s, rtol=1e-6)
    # The bilinear image agrees with the labels' source position (within interpolation error).
    inner = np.zeros_like(has_src)
    inner[1:-1, 1:-1] = has_src[:-2, 1:-1] & has_src[2:, 1:-1] & has_src[1:-1, :-2] & has_src[1:-1, 2:]
    assert np.abs(rgb_out[..., 0][inner] - src_u[inner] * 255 / (w - 1)).max() < 2.5
    assert np.abs(rgb_out[..., 1][inner] - src_v[inner] * 255 / (h - 1)).max() < 2.5
    # Each sparse point lands on an output pixel whose nearest source is that point (+-1 for rounding).
    pv, pu = np.nonzero(sparse_out)
    assert len(pv) > 0.4 * np.count_nonzero(sparse)  # the crop keeps about half of the frame
    value = sparse_out[pv, pu].astype(np.float64) * s - 1.0
    point_u = np.round(value / 0.01)
    point_v = np.round((value - point_u * 0.01) / 0.00001)
    assert np.abs(src_u[pv, pu] - point_u).max() <= 1 and np.abs(src_v[pv, pu] - point_v).max() <= 1


def test_sparse_forward_mapping_keeps_one_pixel_per_point():
    sparse = np.zeros((50, 60), np.float32)
    sparse[10, 20], sparse[30, 40] = 5.0, 7.0
    tf = PixelTransform(np.eye(3) * [[50], [50], [1]] + [[0, 0, 30], [0, 0, 25], [0, 0, 0]], 50, 60).resize(
        1.5
    )
    out = tf.apply_sparse_depth(sparse)
    assert np.count_nonzero(out) == 2 and sorted(out[out > 0]) == [5.0, 7.0]
    assert out[int(np.floor(10.5 * 1.5)), int(np.floor(20.5 * 1.5))] == 5.0


def test_strong_downscale_is_area_filtered():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(checker[..., None], 3, -1)
    out = PixelTransform(np.diag([60.0, 60.0, 1.0]), 64, 64).resize(0.25).apply_image(rgb)
    assert out.shape == (16, 16, 3) and np.all(np.abs(out.astype(int) - 127) <= 1)


def test_crop_larger_than_frame_is_an_error():
    with pytest.raises(ValueError, match="larger than the frame"):
        PixelTransform(K0, H0, W0).resize(0.5).center_crop(300, 304)


def test_augment_config_resolution_and_validation():
    assert AugmentConfig.resolve(None, default=True) == AugmentConfig()
    assert AugmentConfig.resolve(None, default=False) is None
    assert AugmentConfig.resolve(False, default=True) is None
    cfg = AugmentConfig.resolve({"rotation_deg": 0, "scale_range": [1, 1]}, default=True)
    assert cfg.rotation_deg == 0 and cfg.scale_range == (1.0, 1.0) and cfg.hflip_prob == 0.5
    with pytest.raises(ValueError, match="rotaton"):
        AugmentConfig.resolve({"rotaton": 3}, default=True)
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(1.5, 1.0))
    with pytest.raises(ValueError, match="brightness"):
        AugmentConfig(brightness=2.0)


def test_sample_augmentation_respects_switches_and_ranges():
    rng = np.random.default_rng(3)
    off = AugmentConfig(
        scale_range=(1, 1), rotation_deg=0, hflip_prob=0, brightness=0, contrast=0, saturation=0
    )
    for _ in range(20):
        assert replace(sample_augmentation(off, rng), jitter_order=(0, 1, 2)) == AugmentParams()
    draws = [sample_augmentation(AugmentConfig(), rng) for _ in range(200)]
    assert all(1.0 <= d.scale <= 1.5 and abs(d.rotation_deg) <= 5 for d in draws)
    assert 50 < sum(d.hflip for d in draws) < 150
    assert all(0.6 <= f <= 1.4 for d in draws for f in d.jitter)


def test_color_jitter():
    rgb = np.full((8, 8, 3), 100, np.uint8)
    rgb[..., 0] = 150
    assert color_jitter(rgb, AugmentParams()) is rgb
    brighter = color_jitter(rgb, AugmentParams(jitter=(1.2, 1.0, 1.0)))
    np.testing.assert_array_equal(brighter[0, 0], [180, 120, 120])
    grey = color_jitter(rgb, AugmentParams(jitter=(1.0, 1.0, 0.0)))
    assert np.ptp(grey[0, 0].astype(int)) <= 1


def test_sparse_sampling_exact_count_values_and_determinism():
    depth = np.random.default_rng(0).uniform(0.5, 5, (60, 80)).astype(np.float32)
    depth[:, :10] = 0
    sparse = sample_sparse_depth(depth, 200, file_rng("val/official/00001", 0))
    assert np.count_nonzero(sparse) == 200
    np.testing.assert_array_equal(sparse[sparse > 0], depth[sparse > 0])
    assert np.all(sparse[:, :10] == 0)
    again = sample_sparse_depth(depth, 200, file_rng("val/official/00001", 0))
    np.testing.assert_array_equal(sparse, again)
    other = sample_sparse_depth(depth, 200, file_rng("val/official/00002", 0))
    assert not np.array_equal(sparse, other)
    with pytest.raises(ValueError, match="only 10 valid pixels"):
        sample_sparse_depth(np.pad(np.ones((1, 10), np.float32), ((0, 9), (0, 0))), 11, file_rng("k"))

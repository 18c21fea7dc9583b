"""KITTIDepthCompletion on a small tree written in the official KITTI-DC / raw-data formats."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from selfdc_core.data import KITTIDepthCompletion
from selfdc_core.data.io import DataError
from selfdc_core.geometry import crop_intrinsics, filter_occluded_points

H, W = 375, 1242
TRAIN_DRIVE, VAL_DRIVE = "2011_09_26_drive_0001_sync", "2011_09_26_drive_0002_sync"
P_RECT = {
    0: [721.5377, 0, 609.5593, 0, 0, 721.5377, 172.854, 0, 0, 0, 1, 0],
    1: [721.5377, 0, 609.5593, -387.5744, 0, 721.5377, 172.854, 0, 0, 0, 1, 0],
    2: [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884],
    3: [721.5377, 0, 611.0, -339.5242, 0, 721.5377, 171.0, 2.199936, 0, 0, 1, 0.002729905],
}
FAST_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
SELECTION_K = [721.5377, 0.0, 596.5593, 0.0, 721.5377, 149.854, 0.0, 0.0, 1.0]


def fmt(values):
    return " ".join(f"{float(x):.6e}" for x in values)


def write_calib(path, cameras=(0, 1, 2, 3)):
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for c in cameras:
        lines += [
            f"S_{c:02d}: 1.392000e+03 5.120000e+02",
            f"K_{c:02d}: {fmt([984.2, 0, 690.0, 0, 980.8, 233.2, 0, 0, 1])}",
            f"D_{c:02d}: {fmt([-0.37, 0.20, 0.0022, 0.0014, -0.072])}",
            f"R_{c:02d}: {fmt(np.eye(3).ravel())}",
            f"T_{c:02d}: {fmt([0.06 * c, 0, 0])}",
            f"S_rect_{c:02d}: 1.242000e+03 3.750000e+02",
            f"R_rect_{c:02d}: {fmt(np.eye(3).ravel())}",
            f"P_rect_{c:02d}: {fmt(P_RECT[c])}",
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def scene_depth(h, w, seed):
    """A smooth road-like depth field in metres, as KITTI rows below the horizon see it."""
    v, u = np.mgrid[0:h, 0:w]
    return (4.0 + 600.0 / (v + 40.0) + 2.0 * np.sin(u / 90.0 + seed)).astype(np.float32)


def lidar_mask(h, w, seed, density):
    rng = np.random.default_rng(seed)
    v = np.arange(h)[:, None]
    return (rng.random((h, w)) < density) & (v > h // 3)


def write_depth_png(path, depth):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.round(depth * 256.0).astype(np.uint16), FAST_PNG)


def write_rgb_png(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), FAST_PNG)


def random_rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_frame(root, split, drive, cam, frame, seed, rgb=None, sparse=None):
    depth = scene_depth(H, W, seed)
    proj = root / split / drive / "proj_depth"
    velo = depth * lidar_mask(H, W, seed, 0.05) if sparse is None else sparse
    write_depth_png(proj / "velodyne_raw" / f"image_0{cam}" / f"{frame}.png", velo)
    write_depth_png(
        proj / "groundtruth" / f"image_0{cam}" / f"{frame}.png", depth * lidar_mask(H, W, seed + 7, 0.16)
    )
    image = random_rgb(H, W, seed) if rgb is None else rgb
    write_rgb_png(root / drive[:10] / drive / f"image_0{cam}" / "data" / f"{frame}.png", image)


def write_selection(root, name, seed, with_gt):
    base = root / "depth_selection" / name
    h, w = 352, 1216
    depth = scene_depth(h, w, seed)
    stem = "2011_09_26_drive_0002_sync_{}_0000000005_image_02" if with_gt else "{}0000000000"
    tag = (lambda t: stem.format(t)) if with_gt else (lambda t: stem.format(""))
    write_depth_png(
        base / "velodyne_raw" / f"{tag('velodyne_raw')}.png", depth * lidar_mask(h, w, seed, 0.05)
    )
    if with_gt:
        write_depth_png(base / "groundtruth_depth" / f"{tag('groundtruth_depth')}.png", depth)
    write_rgb_png(base / "image" / f"{tag('image')}.png", random_rgb(h, w, seed))
    (base / "intrinsics").mkdir(parents=True, exist_ok=True)
    (base / "intrinsics" / f"{tag('image')}.txt").write_text(fmt(SELECTION_K) + "\n")


@pytest.fixture(scope="module")
def kitti_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "kitti"
    write_frame(root, "train", TRAIN_DRIVE, 2, "0000000005", seed=1)
    write_frame(root, "train", TRAIN_DRIVE, 2, "0000000006", seed=2)
    write_frame(root, "train", TRAIN_DRIVE, 3, "0000000005", seed=3)
    write_frame(root, "val", VAL_DRIVE, 2, "0000000005", seed=4)
    write_calib(root / "2011_09_26" / "calib_cam_to_cam.txt")
    write_selection(root, "val_selection_cropped", seed=5, with_gt=True)
    write_selection(root, "test_depth_completion_anonymous", seed=6, with_gt=False)
    return root


@pytest.fixture
def kitti_root(tmp_path, kitti_template):
    """A fresh copy per test (copying is much cheaper than encoding the PNGs again)."""
    return Path(shutil.copytree(kitti_template, tmp_path / "kitti"))


def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def K_of(cam):
    return np.array(P_RECT[cam]).reshape(3, 4)[:, :3]


def test_val_items_are_bottom_cropped_with_matching_intrinsics(kitti_root):
    ds = KITTIDepthCompletion(kitti_root, split="val", filter_noise=False)
    assert len(ds) == 1 and ds.key(0) == f"2011_09_26/{VAL_DRIVE}/image_02/data/0000000005"
    item = ds[0]
    assert item["rgb"].shape == (3, 352, 1216) and item["sparse"].shape == item["gt"].shape == (1, 352, 1216)
    top, left = H - 352, (W - 1216) // 2
    np.testing.assert_allclose(item["K"].numpy(), crop_intrinsics(K_of(2), top, left), rtol=1e-6)
    proj = kitti_root / "val" / VAL_DRIVE / "proj_depth"
    velo = read_png(proj / "velodyne_raw/image_02/0000000005.png")[top:, left : left + 1216] / 256.0
    gt = read_png(proj / "groundtruth/image_02/0000000005.png")[top:, left : left + 1216] / 256.0
    np.testing.assert_allclose(item["sparse"][0].numpy(), velo, rtol=1e-6)
    np.testing.assert_allclose(item["gt"][0].numpy(), gt, rtol=1e-6)
    rgb = ds.raw_rgb(0)
    assert rgb.shape == (H, W, 3)
    np.testing.assert_allclose(
        item["rgb"].permute(1, 2, 0).numpy() * 255, rgb[top:, left : left + 1216], atol=1e-3
    )
    assert item["num_filtered"] == 0


def test_known_point_projects_onto_its_measurement(kitti_root):
    ds = KITTIDepthCompletion(kitti_root, split="val", filter_noise=False)
    item = ds[0]
    velo = (
        read_png(kitti_root / "val" / VAL_DRIVE / "proj_depth/velodyne_raw/image_02/0000000005.png") / 256.0
    )
    rows, cols = np.nonzero(velo[H - 352 :, 13:1229])
    v0, u0 = rows[0] + H - 352, cols[0] + 13
    point = velo[v0, u0] * np.linalg.inv(K_of(2)) @ [u0, v0, 1.0]
    u, v, _ = item["K"].numpy().astype(np.float64) @ point / point[2]
    assert item["sparse"][0, int(round(v)), int(round(u))] == pytest.approx(velo[v0, u0])


def test_each_camera_uses_its_own_rectified_intrinsics(kitti_root):
    ds = KITTIDepthCompletion(kitti_root, split="train", augment=False, random_crop=False, crop=(352, 1216))
    assert len(ds) == 3
    keys = [ds.key(i) for i in range(3)]
    cam3 = keys.index(f"2011_09_26/{TRAIN_DRIVE}/image_03/data/0000000005")
    np.testing.assert_allclose(ds.intrinsics(cam3), K_of(3))
    np.testing.assert_allclose(ds[cam3]["K"].numpy(), crop_intrinsics(K_of(3), H - 352, 13), rtol=1e-6)


def test_train_items_are_random_crops_without_gt(kitti_root):
    ds = KITTIDepthCompletion(kitti_root, split="train", augment=False)
    raw = ds.raw_rgb(0)
    torch.manual_seed(0)
    tops = set()
    for _ in range(6):
        item = ds[0]
        assert (
            "gt" not in item
            and item["rgb"].shape == (3, 240, 1216)
            and item["sparse"].shape == (1, 240, 1216)
        )
        top, left = K_of(2)[1, 2] - item["K"][1, 2].item(), K_of(2)[0, 2] - item["K"][0, 2].item()
        top, left = int(round(top)), int(round(left))
        assert H - 352 <= top <= H - 240  # inside the rows the LiDAR covers
        crop = raw[top : top + 240, left : left + 1216]
        np.testing.assert_allclose(item["rgb"].permute(1, 2, 0).numpy() * 255, crop, atol=1e-3)
        tops.add(top)
    assert len(tops) > 1
    assert KITTIDepthCompletion(kitti_root, split="train", with_gt=True)[0]["gt"].shape == (1, 240, 1216)


def test_augmentation_moves_rgb_lidar_and_segments_together(tmp_path):
    """rgb encodes the raw column, LiDAR depth encodes it too, labels encode the raw pixel."""
    root = tmp_path / "kitti"
    v, u = np.mgrid[0:H, 0:W]
    rgb = np.stack([u * 255 / (W - 1), v * 255 / (H - 1), np.zeros((H, W))], -1).round().astype(np.uint8)
    sparse = np.where(lidar_mask(H, W, 0, 0.05), 2.0 + u * 0.05, 0).astype(np.float32)
    write_frame(root, "train", TRAIN_DRIVE, 2, "0000000000", seed=0, rgb=rgb, sparse=sparse)
    write_calib(root / "2011_09_26" / "calib_cam_to_cam.txt")
    labels = (v * W + u + 1).astype(np.int64)
    augment = dict(
        scale_range=(1, 1), rotation_deg=5.0, hflip_prob=0.5, brightness=0, contrast=0, saturation=0
    )
    ds = KITTIDepthCompletion(
        root, split="train", augment=augment, filter_noise=False, segment_fallback=lambda x: labels
    )
    torch.manual_seed(1)
    flips = set()
    for _ in range(4):
        item = ds[0]
        seg = item["segments"].numpy()
        src_u = (seg - 1) % W
        pv, pu = np.nonzero(item["sparse"][0].numpy())
        point_u = np.round((item["sparse"][0].numpy()[pv, pu] - 2.0) / 0.05)
        assert len(pv) > 1000 and np.abs(src_u[pv, pu] - point_u).max() <= 1
        red = item["rgb"][0].numpy() * 255
        flips.add(bool(red[120, 300] > red[120, 900]))  # red grows with the raw column
        has = seg > 0
        inner = np.zeros_like(has)
        inner[1:-1, 1:-1] = has[:-2, 1:-1] & has[2:, 1:-1] & has[1:-1, :-2] & has[1:-1, 2:]
        assert np.abs(red[inner] - src_u[inner] * 255 / (W - 1)).max() < 3
    assert flips == {True, False}


def test_noise_filter_removes_occluded_points_and_counts_them(kitti_root):
    depth = scene_depth(H, W, 4) * lidar_mask(H, W, 4, 0.05)
    depth[300:305, 600:605] = 2.0  # a near object, closer than anything around it
    depth[302, 602] = 30.0  # background seen through the foreground by the offset LiDAR
    write_depth_png(kitti_root / "val" / VAL_DRIVE / "proj_depth/velodyne_raw/image_02/0000000005.png", depth)
    expected = filter_occluded_points(
        read_png(kitti_root / "val" / VAL_DRIVE / "proj_depth/velodyne_raw/image_02/0000000005.png") / 256.0
    )[1]
    assert expected >= 1
    ds = KITTIDepthCompletion(kitti_root, split="val")
    item = ds[0]
    assert item["num_filtered"] == expected
    assert item["sparse"][0, 302 - (H - 352), 602 - 13] == 0
    assert item["sparse"][0, 301 - (H - 352), 602 - 13] == 2.0
    ds[0]
    total = int(np.count_nonzero(depth))
    assert ds.filter_stats == {"removed": 2 * expected, "total": 2 * total}
    unfiltered = KITTIDepthCompletion(kitti_root, split="val", filter_noise=False)[0]
    assert unfiltered["sparse"][0, 302 - (H - 352), 602 - 13] == pytest.approx(30.0)
    strict = KITTIDepthCompletion(kitti_root, split="val", filter_abs_threshold=100.0)[0]
    assert strict["num_filtered"] == 0


def test_depth_selection_splits(kitti_root):
    val = KITTIDepthCompletion(kitti_root, split="val_selection")
    item = val[0]
    base = "depth_selection/val_selection_cropped/image"
    assert item["key"] == f"{base}/2011_09_26_drive_0002_sync_image_0000000005_image_02"
    assert item["rgb"].shape == (3, 352, 1216) and item["gt"].shape == (1, 352, 1216)
    np.testing.assert_allclose(item["K"].numpy(), np.reshape(SELECTION_K, (3, 3)), rtol=1e-6)
    test = KITTIDepthCompletion(kitti_root, split="test")
    item = test[0]
    assert (
        "gt" not in item and item["key"] == "depth_selection/test_depth_completion_anonymous/image/0000000000"
    )
    with pytest.raises(ValueError, match="no ground truth"):
        KITTIDepthCompletion(kitti_root, split="test", with_gt=True)


def test_missing_root_and_empty_tree_explain_where_to_get_data(tmp_path):
    with pytest.raises(DataError, match="does not exist.*eval_depth.php.*raw_data.php"):
        KITTIDepthCompletion(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"no velodyne_raw PNGs.*train.*proj_depth"):
        KITTIDepthCompletion(tmp_path, split="train")
    with pytest.raises(DataError, match="val_selection_cropped"):
        KITTIDepthCompletion(tmp_path, split="val_selection")


VELO = "val/" + VAL_DRIVE + "/proj_depth/velodyne_raw/image_02/0000000005.png"
RGB = "2011_09_26/" + VAL_DRIVE + "/image_02/data/0000000005.png"


@pytest.mark.parametrize(
    "target, damage, message",
    [
        (VELO, "8bit", "single-channel 16-bit.*got 8-bit with 1"),
        (VELO, "rgb", "single-channel 16-bit.*got 8-bit with 3"),
        (VELO, "truncate", "cannot decode 16-bit depth PNG"),
        (RGB, "truncate", "cannot decode RGB image"),
        (RGB, "16bit", "8-bit colour image"),
        (VELO, "small", "velodyne_raw is 300x1242 but its RGB"),
        ("2011_09_26/calib_cam_to_cam.txt", "no_p_rect", "no 'P_rect_02:' line"),
    ],
)
def test_bad_files_raise_naming_the_file(kitti_root, target, damage, message):
    path = kitti_root / target
    if damage == "8bit":
        cv2.imwrite(str(path), np.full((H, W), 20, np.uint8))
    elif damage == "rgb":
        cv2.imwrite(str(path), random_rgb(H, W, 0))
    elif damage == "16bit":
        cv2.imwrite(str(path), np.zeros((H, W, 3), np.uint16))
    elif damage == "small":
        write_depth_png(path, np.ones((300, W), np.float32))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:2000])
    elif damage == "no_p_rect":
        write_calib(path, cameras=(0, 1))
    ds = KITTIDepthCompletion(kitti_root, split="val")
    with pytest.raises(DataError, match=message) as info:
        ds[0]
    assert str(path) in str(info.value)


def test_bad_selection_intrinsics(kitti_root):
    txt = next((kitti_root / "depth_selection/val_selection_cropped/intrinsics").glob("*.txt"))
    txt.write_text(fmt(SELECTION_K[:8]))
    with pytest.raises(DataError, match=f"{txt.name}.*9 numbers.*got 8"):
        KITTIDepthCompletion(kitti_root, split="val_selection")[0]
    txt.unlink()
    with pytest.raises(DataError, match="(?s)file lists do not match.*intrinsics"):
        KITTIDepthCompletion(kitti_root, split="val_selection")


def test_unmatched_file_lists(kitti_root):
    (kitti_root / RGB).unlink()
    with pytest.raises(DataError, match=f"(?s)do not match.*RGB image.*{RGB}"):
        KITTIDepthCompletion(kitti_root, split="val")
    (kitti_root / "train" / TRAIN_DRIVE / "proj_depth/groundtruth/image_02/0000000006.png").unlink()
    assert len(KITTIDepthCompletion(kitti_root, split="train")) == 3  # training reads no ground truth
    with pytest.raises(DataError, match="(?s)ground truth.*0000000006.png"):
        KITTIDepthCompletion(kitti_root, split="train", with_gt=True)
    skipping = KITTIDepthCompletion(kitti_root, split="train", with_gt=True, skip_bad=True)
    assert len(skipping) == 2 and skipping.skipped == 1
    (kitti_root / "2011_09_26/calib_cam_to_cam.txt").unlink()
    with pytest.raises(DataError, match="(?s)intrinsics.*calib_cam_to_cam.txt"):
        KITTIDepthCompletion(kitti_root, split="train")


def test_skip_bad_at_load_time_counts_and_moves_on(kitti_root):
    velo = kitti_root / "train" / TRAIN_DRIVE / "proj_depth/velodyne_raw/image_02/0000000005.png"
    velo.write_bytes(b"not a png")
    ds = KITTIDepthCompletion(kitti_root, split="train", skip_bad=True)
    assert ds[0]["key"] == ds.key(1) and ds.skipped == 1 and ds.skipped_files == [str(velo)]

"""NYUDepthV2 on small h5 files written in the sparse-to-dense / NLSPN format."""

import json

import h5py
import numpy as np
import pytest
import torch

from selfdc_core.data import NYUDepthV2
from selfdc_core.data.io import DataError
from selfdc_core.data.nyu import NYU_INTRINSICS
from selfdc_core.geometry import crop_intrinsics, scale_intrinsics

TRAIN = ["train/scene_0001/00001", "train/scene_0001/00002", "train/scene_0002/00001"]
TEST = ["val/official/00001", "val/official/00002"]


def block_depth(seed: int) -> np.ndarray:
    """480x640 metres, constant on 2x2 blocks so half-resolution sampling is unambiguous."""
    half = np.random.default_rng(seed).uniform(0.5, 9.5, (240, 320)).astype(np.float32)
    return np.repeat(np.repeat(half, 2, 0), 2, 1)


def write_h5(path, rgb=None, depth=None, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["rgb"] = rng.integers(0, 256, (3, 480, 640), dtype=np.uint8) if rgb is None else rgb
        f["depth"] = block_depth(seed) if depth is None else depth


@pytest.fixture
def nyu_root(tmp_path):
    root = tmp_path / "nyudepthv2"
    for i, key in enumerate(TRAIN + TEST):
        write_h5(root / f"{key}.h5", seed=i)
    return root


def read_raw(path):
    with h5py.File(path, "r") as f:
        return f["rgb"][()].transpose(1, 2, 0), f["depth"][()]


def test_eval_items_shapes_keys_and_intrinsics(nyu_root):
    ds = NYUDepthV2(nyu_root, split="test", num_samples=500)
    assert len(ds) == 2 and [ds.key(i) for i in range(2)] == TEST
    item = ds[0]
    assert item["key"] == TEST[0]
    assert item["rgb"].shape == (3, 228, 304) and item["rgb"].dtype == torch.float32
    assert 0 <= item["rgb"].min() and item["rgb"].max() <= 1
    assert item["sparse"].shape == item["gt"].shape == (1, 228, 304)
    expected_K = crop_intrinsics(scale_intrinsics(NYU_INTRINSICS, 0.5, 0.5), 6, 8)
    np.testing.assert_allclose(item["K"].numpy(), expected_K, rtol=1e-6)
    rgb, depth = read_raw(nyu_root / f"{TEST[0]}.h5")
    np.testing.assert_array_equal(ds.raw_rgb(0), rgb)
    np.testing.assert_array_equal(item["gt"][0].numpy(), depth[::2, ::2][6:234, 8:312])


def test_known_point_projects_onto_its_pixel(nyu_root):
    """A 3-D point seen at a raw pixel projects, with the item's K, onto the pixel holding that depth."""
    ds = NYUDepthV2(nyu_root, split="test")
    _, depth = read_raw(nyu_root / f"{TEST[1]}.h5")
    gt = ds[1]["gt"][0].numpy()
    K = ds[1]["K"].numpy().astype(np.float64)
    for u0, v0 in [(100, 50), (333, 255), (600, 440)]:
        z = float(depth[v0, u0])
        centre = [u0 // 2 * 2 + 0.5, v0 // 2 * 2 + 0.5, 1.0]  # the centre of its 2x2 block
        point = z * np.linalg.inv(NYU_INTRINSICS) @ centre
        u, v, _ = K @ point / point[2]
        assert gt[int(round(v)), int(round(u))] == z


def test_sparse_has_exactly_n_gt_values_for_every_n(nyu_root):
    for n in (200, 500, 1000, 2000):
        item = NYUDepthV2(nyu_root, split="test", num_samples=n)[0]
        mask = item["sparse"] > 0
        assert int(mask.sum()) == n
        torch.testing.assert_close(item["sparse"][mask], item["gt"][mask])


def test_eval_sampling_is_deterministic_per_file_and_seed(nyu_root):
    a, b = NYUDepthV2(nyu_root, split="test"), NYUDepthV2(nyu_root, split="test")
    torch.testing.assert_close(a[1]["sparse"], b[1]["sparse"])
    torch.testing.assert_close(a[0]["sparse"], b[0]["sparse"])
    assert not torch.equal(a[0]["sparse"] > 0, a[1]["sparse"] > 0)
    reseeded = NYUDepthV2(nyu_root, split="test", seed=1)
    assert not torch.equal(a[0]["sparse"], reseeded[0]["sparse"])


def test_train_items_have_no_gt_unless_asked(nyu_root):
    ds = NYUDepthV2(nyu_root, split="train", num_samples=300)
    assert len(ds) == 3 and ds.key(2) == TRAIN[2]
    item = ds[0]
    assert "gt" not in item and int((item["sparse"] > 0).sum()) == 300
    supervised = NYUDepthV2(nyu_root, split="train", with_gt=True)[0]
    assert supervised["gt"].shape == (1, 228, 304)


def test_training_augmentation_is_random_and_consistent(nyu_root):
    """Depth encodes the raw column; labels encode the raw pixel: both must agree after augmentation."""
    v, u = np.mgrid[0:480, 0:640]
    root = nyu_root.parent / "encoded"
    write_h5(root / "train/scene/00001.h5", depth=(1.0 + u * 0.01).astype(np.float32))
    labels = (v * 640 + u + 1).astype(np.int64)
    ds = NYUDepthV2(root, split="train", with_gt=True, segment_fallback=lambda rgb: labels)
    torch.manual_seed(0)
    items = [ds[0] for _ in range(4)]
    assert len({tuple(it["K"].flatten().tolist()) for it in items}) == 4  # random draws differ
    for item in items:
        seg = item["segments"].numpy()
        gt = item["gt"][0].numpy()
        assert seg.dtype == np.int64 and seg.shape == (228, 304)
        assert np.all(gt[seg == 0] == 0)
        src_u = (seg[seg > 0] - 1) % 640
        # gt = raw depth at the labels' source pixel, divided by the (unknown) scale s in [1, 1.5]
        ratio = (1.0 + src_u * 0.01) / gt[seg > 0]
        assert 1.0 <= ratio.min() and ratio.max() <= 1.5 and np.ptp(ratio) < 1e-4
        mask = item["sparse"] > 0
        torch.testing.assert_close(item["sparse"][mask], item["gt"][mask])


def test_augmentation_switches(nyu_root):
    off = NYUDepthV2(nyu_root, split="train", augment=False, with_gt=True)
    ref = NYUDepthV2(nyu_root, split="test")
    np.testing.assert_allclose(off[0]["K"].numpy(), ref[0]["K"].numpy())
    flip_only = dict(
        scale_range=(1, 1), rotation_deg=0, hflip_prob=1.0, brightness=0, contrast=0, saturation=0
    )
    flipped = NYUDepthV2(nyu_root, split="train", augment=flip_only, with_gt=True)[0]
    torch.testing.assert_close(flipped["gt"], off[0]["gt"].flip(-1))
    torch.testing.assert_close(flipped["rgb"], off[0]["rgb"].flip(-1))


def test_split_file(nyu_root, tmp_path):
    split_file = tmp_path / "nyu.json"
    spec = {"train": [{"filename": f"{TRAIN[1]}.h5"}], "val": [], "test": [{"filename": f"{TEST[1]}.h5"}]}
    split_file.write_text(json.dumps(spec))
    assert [NYUDepthV2(nyu_root, "test", split_file=split_file).key(0)] == [TEST[1]]
    assert len(NYUDepthV2(nyu_root, "train", split_file=split_file)) == 1
    with pytest.raises(DataError, match="no NYU h5 files for split 'val'"):
        NYUDepthV2(nyu_root, "val", split_file=split_file)
    spec["test"].append({"filename": "val/official/09999.h5"})
    split_file.write_text(json.dumps(spec))
    with pytest.raises(DataError, match="09999.h5"):
        NYUDepthV2(nyu_root, "test", split_file=split_file)
    skipping = NYUDepthV2(nyu_root, "test", split_file=split_file, skip_bad=True)
    assert len(skipping) == 1 and skipping.skipped == 1
    split_file.write_text("{not json")
    with pytest.raises(DataError, match="nyu.json"):
        NYUDepthV2(nyu_root, "test", split_file=split_file)


def test_missing_root_and_empty_directories_explain_the_layout(tmp_path):
    with pytest.raises(DataError, match="does not exist.*sparse-to-dense"):
        NYUDepthV2(tmp_path / "nowhere", split="test")
    (tmp_path / "val" / "official").mkdir(parents=True)
    with pytest.raises(DataError, match=r"val/official.*train/<scene>/<id>\.h5.*nyudepthv2\.tar\.gz"):
        NYUDepthV2(tmp_path, split="test")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("garbage", "cannot read h5"),
        ("truncated", "cannot read h5"),
        ("no_depth", "lacks dataset.*depth"),
        ("rgb_float", "'rgb' must be uint8"),
        ("depth_shape", "'depth' must be float"),
        ("small", "must be 480x640"),
    ],
)
def test_bad_files_raise_naming_the_file(nyu_root, damage, message):
    path = nyu_root / f"{TEST[0]}.h5"
    if damage == "garbage":
        path.write_bytes(b"this is not an HDF5 file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    else:
        path.unlink()
        with h5py.File(path, "w") as f:
            f["rgb"] = np.zeros(
                (3, 240, 320) if damage == "small" else (3, 480, 640),
                np.float32 if damage == "rgb_float" else np.uint8,
            )
            if damage != "no_depth":
                f["depth"] = np.ones(
                    (240, 320) if damage in ("small", "depth_shape") else (480, 640), np.float32
                )
    ds = NYUDepthV2(nyu_root, split="test")
    with pytest.raises(DataError, match=message) as info:
        ds[0]
    assert str(path) in str(info.value)


def test_skip_bad_logs_counts_and_moves_on(nyu_root):
    (nyu_root / f"{TEST[0]}.h5").write_bytes(b"\x89HDF\r\n\x1a\n broken")
    ds = NYUDepthV2(nyu_root, split="test", skip_bad=True)
    item = ds[0]
    assert (
        item["key"] == TEST[1] and ds.skipped == 1 and ds.skipped_files == [str(nyu_root / f"{TEST[0]}.h5")]
    )


def test_too_few_valid_pixels_is_an_error_naming_the_file(nyu_root):
    depth = np.zeros((480, 640), np.float32)
    depth[:20, :20] = 2.0
    write_h5(nyu_root / f"{TEST[0]}.h5", depth=depth)
    with pytest.raises(DataError, match=r"00001\.h5.*valid pixels"):
        NYUDepthV2(nyu_root, split="test", num_samples=500)[0]


def test_argument_validation(nyu_root):
    with pytest.raises(ValueError, match="split"):
        NYUDepthV2(nyu_root, split="training")
    with pytest.raises(ValueError, match="num_samples"):
        NYUDepthV2(nyu_root, split="test", num_samples=0)
    with pytest.raises(ValueError, match="240x320"):
        NYUDepthV2(nyu_root, split="test", height=300)

"""RosbagDataset: real rosbag2 files (sqlite3 and mcap) written with `rosbags` from synthetic scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from selfdc_core.data.rosbag import (
    BagError,
    ExtractionError,
    RosbagDataset,
    extract_bag,
    time_split,
    write_synthetic_bag,
)
from selfdc_core.data.rosbag.settings import ExtractionSettings, extrinsic_matrix
from selfdc_core.data.rosbag.tf_static import StaticTfTree
from selfdc_core.data.rosbag.writer import rotation_to_quaternion
from selfdc_core.data.synthetic import tof_sparse_depth
from selfdc_core.geometry import make_transform, project_points, transform_points

H, W, FRAMES = 48, 64, 8
BAG_KW = dict(height=H, width=W, lidar_beams=16)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    return {s: write_synthetic_bag(root / s, FRAMES, storage=s, keep_frames=True, **BAG_KW)
            for s in ("sqlite3", "mcap")}


def expected_sparse(frame) -> np.ndarray:
    return project_points(transform_points(frame.lidar_points, frame.T_cam_lidar), frame.K, H, W)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_extracted_samples_match_projection_stamps_and_gt(bags, storage, tmp_path):
    bag = bags[storage]
    ds = RosbagDataset(bag.path, split="all", cache_root=tmp_path, with_gt=True, progress=False)
    assert len(ds) == FRAMES
    assert [ds.stamp(i) for i in range(len(ds))] == bag.image_stamps
    for i in (0, FRAMES - 1):
        s, frame = ds[i], bag.frames[i]
        assert s["key"] == f"{storage}/{bag.image_stamps[i]}" and s["stamp"] == bag.image_stamps[i]
        # The extrinsic comes from the /tf_static chain of the bag.
        np.testing.assert_array_equal(s["sparse"][0].numpy(), expected_sparse(frame))
        assert (s["sparse"] > 0).sum() > 100
        np.testing.assert_array_equal((s["rgb"].numpy().transpose(1, 2, 0) * 255).round(), frame.rgb)
        np.testing.assert_allclose(s["K"].numpy(), frame.K)
        np.testing.assert_array_equal(s["gt"][0].numpy(), frame.depth)
        np.testing.assert_array_equal(ds.raw_rgb(i), frame.rgb)
    assert ds.report["samples"] == FRAMES and ds.report["skipped_sets"] == {}


def test_time_split_holds_out_the_end_of_the_recording(bags, tmp_path):
    path = bags["mcap"].path
    train = RosbagDataset(path, split="train", val_fraction=0.25, cache_root=tmp_path, augment=False,
                          progress=False)
    val = RosbagDataset(path, split="val", val_fraction=0.25, cache_root=tmp_path, with_gt="auto",
                        progress=False)
    train_stamps = [train.stamp(i) for i in range(len(train))]
    val_stamps = [val.stamp(i) for i in range(len(val))]
    assert sorted(train_stamps + val_stamps) == bags["mcap"].image_stamps
    assert max(train_stamps) < min(val_stamps)
    assert len(val) == 2  # 8 frames at 10 Hz: stamps in the last 25% of 0.7 s
    assert "gt" in val[0] and "gt" not in train[0]
    with pytest.raises(ValueError, match="empty"):
        time_split(np.arange(4), "val", 0.0)


def test_extraction_is_cached_and_resumes(bags, tmp_path):
    path = bags["sqlite3"].path
    index = extract_bag(path, tmp_path, progress=False)
    cache_dir = tmp_path / index["dir"].rsplit("/", 1)[-1]
    files = sorted(cache_dir.glob("*.npz"))
    assert len(files) == FRAMES and (cache_dir / "index.json").is_file()
    # An interrupted run: no index yet, half of the samples written.
    (cache_dir / "index.json").unlink()
    for f in files[::2]:
        f.unlink()
    again = extract_bag(path, tmp_path, progress=False)
    assert again["report"]["resumed"] == FRAMES // 2 and len(again["samples"]) == FRAMES
    # A finished cache is used as is: no decoding at all.
    mtimes = [f.stat().st_mtime_ns for f in sorted(cache_dir.glob("*.npz"))]
    assert extract_bag(path, tmp_path, progress=False)["report"] == again["report"]
    assert mtimes == [f.stat().st_mtime_ns for f in sorted(cache_dir.glob("*.npz"))]
    # Other settings get their own cache folder instead of overwriting this one.
    other = extract_bag(path, tmp_path, ExtractionSettings(sync_slop=0.02), progress=False)
    assert other["dir"] != again["dir"] and len(list(cache_dir.glob("*.npz"))) == FRAMES


def test_extrinsic_from_config_without_tf_static(tmp_path):
    bag = write_synthetic_bag(tmp_path / "no_tf", 3, storage="mcap", tf_static=False, keep_frames=True,
                              **BAG_KW)
    with pytest.raises(BagError, match="no /tf_static"):
        RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c", progress=False)
    T = bag.T_cam_lidar
    as_quaternion = {"translation": T[:3, 3].tolist(), "rotation": rotation_to_quaternion(T[:3, :3])}
    for extrinsic in ({"matrix": T.tolist()}, as_quaternion):
        ds = RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c", extrinsic=extrinsic,
                           progress=False)
        np.testing.assert_allclose(ds[1]["sparse"][0].numpy(), expected_sparse(bag.frames[1]), atol=1e-5)


def test_compressed_image_and_tof_depth_topics(tmp_path):
    bag = write_synthetic_bag(tmp_path / "tof", 3, storage="sqlite3", compressed="png", sparse="depth_image",
                              keep_frames=True, **BAG_KW)
    ds = RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c",
                       image_topic="camera/image/compressed", sparse_topic="tof/depth", progress=False)
    frame = bag.frames[2]
    np.testing.assert_array_equal(ds.raw_rgb(2), frame.rgb)  # PNG is lossless
    from selfdc_core.data.sampling import file_rng

    tof = tof_sparse_depth(frame.depth, 64, rng=file_rng(f"room/0/{2}"))
    np.testing.assert_allclose(ds[2]["sparse"][0].numpy(), np.round(tof * 1000) / 1000, atol=1e-6)


def test_missing_topics_list_what_the_bag_has(bags, tmp_path):
    with pytest.raises(BagError) as err:
        RosbagDataset(bags["mcap"].path, cache_root=tmp_path, sparse_topic="/velodyne_points", progress=False)
    text = str(err.value)
    assert "/velodyne_points" in text and "/lidar/points" in text and "/camera/camera_info" in text


def test_unsupported_message_type_is_named(bags, tmp_path):
    with pytest.raises(BagError, match="sensor_msgs/msg/CameraInfo.*not supported"):
        RosbagDataset(bags["mcap"].path, cache_root=tmp_path, sparse_topic="/camera/camera_info",
                      progress=False)


@pytest.mark.parametrize("storage,suffix", [("sqlite3", ".db3"), ("mcap", ".mcap")])
def test_truncated_bag_is_a_clear_error_naming_the_file(tmp_path, storage, suffix):
    bag = write_synthetic_bag(tmp_path / storage, 3, storage=storage, **BAG_KW)
    (storage_file,) = bag.path.glob(f"*{suffix}")
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError) as err:
        RosbagDataset(bag.path, cache_root=tmp_path / "c", progress=False)
    assert storage_file.name in str(err.value) and "truncated or corrupt" in str(err.value)


def test_not_a_bag_and_missing_bag(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        RosbagDataset(tmp_path / "nowhere", cache_root=tmp_path)
    with pytest.raises(BagError, match="metadata.yaml"):
        RosbagDataset(tmp_path, cache_root=tmp_path)


def test_clouds_without_images_are_counted_and_reported(tmp_path, caplog):
    bag = write_synthetic_bag(tmp_path / "gaps", 8, storage="mcap", drop_images=[2, 5], **BAG_KW)
    with caplog.at_level("WARNING"):
        ds = RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c", progress=False)
    assert len(ds) == 6
    assert ds.report["sync_dropped"]["unmatched"]["sparse"] == 2
    assert "2 sparse (LiDAR/ToF) messages had no matching image" in caplog.text


def test_no_sample_is_an_error_that_says_why(tmp_path):
    # The LiDAR lags the camera by 30 ms; a 10 ms slop pairs nothing.
    bag = write_synthetic_bag(tmp_path / "late", 4, storage="sqlite3", lidar_delay_s=0.03, **BAG_KW)
    with pytest.raises(ExtractionError) as err:
        RosbagDataset(bag.path, cache_root=tmp_path / "c", sync_slop=0.01, progress=False)
    text = str(err.value)
    assert "no sample" in text and "sync_slop=0.01" in text and "sparse: 4 messages" in text


def test_with_gt_on_a_bag_without_gt(tmp_path):
    bag = write_synthetic_bag(tmp_path / "nogt", 3, storage="mcap", with_gt=False, **BAG_KW)
    with pytest.raises(ValueError, match="no ground-truth topic"):
        RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c", with_gt=True, progress=False)
    assert "gt" not in RosbagDataset(bag.path, split="all", cache_root=tmp_path / "c", with_gt="auto",
                                     progress=False)[0]


def test_static_tf_chain_composition():
    class Msg:  # duck-typed tf2_msgs/TFMessage
        def __init__(self, edges):
            self.transforms = [_ts(p, c, T) for p, c, T in edges]

    T_base_cam = make_transform([0.2, 0.0, 0.9], [0.5, -0.5, 0.5, -0.5])
    T_base_mast = make_transform([0.0, 0.1, 1.2], [0, 0, 0.38268343, 0.92387953])
    T_mast_lidar = make_transform([0.05, 0, 0.1], [0, 0, 0, 1])
    tree = StaticTfTree()
    tree.add_message(Msg([("base_link", "camera", T_base_cam), ("base_link", "mast", T_base_mast),
                          ("/mast", "lidar", T_mast_lidar), ("odom_root", "other", np.eye(4))]))
    expected = np.linalg.inv(T_base_cam) @ T_base_mast @ T_mast_lidar
    np.testing.assert_allclose(tree.lookup("camera", "lidar"), expected, atol=1e-9)
    np.testing.assert_allclose(tree.lookup("lidar", "camera"), np.linalg.inv(expected), atol=1e-9)
    with pytest.raises(ValueError, match="does not connect"):
        tree.lookup("camera", "other")
    with pytest.raises(ValueError, match="not in /tf_static"):
        tree.lookup("camera", "radar")


def _ts(parent, child, T):
    from types import SimpleNamespace as NS

    x, y, z, w = rotation_to_quaternion(T[:3, :3])
    return NS(header=NS(frame_id=parent), child_frame_id=child,
              transform=NS(translation=NS(x=T[0, 3], y=T[1, 3], z=T[2, 3]), rotation=NS(x=x, y=y, z=z, w=w)))


def test_extrinsic_config_validation():
    with pytest.raises(ValueError, match="4x4"):
        extrinsic_matrix([1, 2, 3])
    with pytest.raises(ValueError, match="quaternion"):
        extrinsic_matrix({"translation": [0, 0, 0], "rotation": [0, 0, 1]})
    with pytest.raises(ValueError, match="unknown key"):
        extrinsic_matrix({"translation": [0, 0, 0], "quat": [0, 0, 0, 1]})
    assert json.dumps(ExtractionSettings(extrinsic=np.eye(4).tolist()).fingerprint())

"""completion_node with real rclpy over real DDS (loopback, private network namespace).

Synthetic camera + LiDAR (and ToF) frames go in through topics; dense depth comes out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import SYNTHETIC_CKPT_SIZE, synthetic_test_scenes
from ros_helpers import (
    Harness,
    camera_info_msg,
    cloud_msg,
    image_msg,
    make_header,
    require_isolated_network,
    ros_context_fixture,
    start_node,
    wait_for,
)

from selfdc_core.baselines import nearest_fill
from selfdc_core.geometry import project_points, transform_points

pytestmark = pytest.mark.ros

DOMAIN_ID = 57  # this file's own DDS domain
ros_context = ros_context_fixture(DOMAIN_ID)
H, W = SYNTHETIC_CKPT_SIZE  # the frames the session `synthetic_checkpoint` was trained on
PERIOD_NS = 100_000_000


@pytest.fixture(scope="module")
def frames():
    scenes = synthetic_test_scenes("lidar")
    return [scenes.frame(i) for i in range(len(scenes))]


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def depth_array(msg) -> np.ndarray:
    assert msg.encoding == "32FC1" and not msg.is_bigendian and msg.step == msg.width * 4
    return np.frombuffer(msg.data, dtype=np.float32).reshape(msg.height, msg.width)


@pytest.fixture(scope="module")
def lidar_harness(ros_context, synthetic_checkpoint, frames):
    from sensor_msgs.msg import Image, PointCloud2

    node = start_node(
        ros_context,
        synthetic_checkpoint,
        "/lidar_test",
        **{"extrinsic.source": "matrix", "extrinsic.matrix": frames[0].T_cam_lidar.ravel().tolist()},
    )
    from sensor_msgs.msg import Image as Img

    harness = Harness(
        ros_context,
        node,
        PointCloud2,
        Image,
        "camera/image",
        "lidar/points",
        extra=[("points", PointCloud2), ("depth_colorized", Img)],
    )
    yield harness
    harness.close()


def test_lidar_frames_are_completed_with_camera_header(lidar_harness, frames):
    h = lidar_harness
    base = time.time_ns()  # stamps near "now", so the node's latency figures are meaningful
    stamps = [base + k * PERIOD_NS for k in range(len(frames))]
    for k, (frame, stamp) in enumerate(zip(frames, stamps, strict=True)):
        # Frame k's image releases set k-1 (no closer set can come after it), and the node keeps only
        # the newest waiting set: frame k goes out once set k-2 is done, so no set is superseded.
        if k >= 2:
            h.depth_for(stamps[k - 2])
        # The cloud is stamped 3 ms after the image: approximate, not exact, synchronisation.
        h.publish(
            image_msg(frame.rgb, "rgb8", stamp),
            camera_info_msg(frame.K, H, W, stamp),
            cloud_msg(frame.lidar_points, stamp + 3_000_000, dtype=np.float64),
        )
    for k, (frame, stamp) in enumerate(zip(frames[:2], stamps, strict=False)):
        msg = h.depth_for(stamp)
        assert msg.header.frame_id == "camera_optical"
        assert (msg.height, msg.width) == (H, W)
        depth = depth_array(msg)
        sparse = project_points(transform_points(frame.lidar_points, frame.T_cam_lidar), frame.K, H, W)
        measured = sparse > 0
        assert measured.sum() > 200
        assert np.all(np.isfinite(depth[measured]))
        np.testing.assert_allclose(depth[measured], sparse[measured], atol=1e-3, err_msg=f"frame {k}")
        valid = np.isfinite(depth)
        assert valid.mean() > 0.95
        assert rmse(depth[valid], frame.depth[valid]) < rmse(nearest_fill(sparse)[valid], frame.depth[valid])
    info = [m for m in h.info.messages if m.header.stamp == h.depth.messages[0].header.stamp]
    assert info and info[0].width == W and list(info[0].k) == pytest.approx(frames[0].K.ravel().tolist())


def test_optional_outputs_and_diagnostics(lidar_harness, frames):
    h = lidar_harness
    wait_for(
        lambda: len(h.extra["points"]) > 0 and len(h.extra["depth_colorized"]) > 0,
        180,
        "points and colourised depth",
    )
    cloud = h.extra["points"].messages[-1]
    stride = h.node.params["cloud_stride"]
    assert (cloud.height, cloud.width) == (-(-H // stride), -(-W // stride))
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    colour = h.extra["depth_colorized"].messages[-1]
    assert colour.encoding == "rgb8" and (colour.height, colour.width) == (H, W)
    # Nobody subscribed to the confidence topic, so it was never computed or published.
    assert h.node.published["confidence"] == 0 and h.node.published["points"] > 0
    wait_for(lambda: any(s.values[0].value != "0" for s in h.statuses("inference")), 20, "diagnostics")
    status = next(s for s in h.statuses("inference") if s.values[0].value != "0")
    keys = {kv.key for kv in status.values}
    assert {
        "sync_wait_mean_ms",
        "projection_mean_ms",
        "inference_mean_ms",
        "publish_mean_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "frames_completed",
    } <= keys


@pytest.fixture(scope="module")
def tof_harness(ros_context, synthetic_checkpoint):
    from sensor_msgs.msg import CompressedImage, Image

    node = start_node(
        ros_context,
        synthetic_checkpoint,
        "/tof_test",
        sparse_source="depth_image",
        image_transport="compressed",
    )
    harness = Harness(ros_context, node, Image, CompressedImage, "camera/image/compressed", "tof/depth")
    yield harness
    harness.close()


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_tof_depth_images_are_completed(tof_harness, frames, encoding):
    from sensor_msgs.msg import CompressedImage

    h = tof_harness
    frame = frames[2]
    stamp = time.time_ns()
    tof = synthetic_test_scenes("tof").sparse_depth(2, frame)
    if encoding == "16UC1":
        tof_msg_array = np.round(tof * 1000).astype(np.uint16)
        expected = tof_msg_array.astype(np.float32) / 1000
    else:
        tof_msg_array = np.where(tof > 0, tof, np.nan).astype(np.float32)  # REP 118 invalid = NaN
        expected = tof
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    image = CompressedImage(header=make_header(stamp, "camera_optical"), format="png", data=png.tobytes())
    # Exactly equal stamps: the set is complete at once.
    h.publish(image, camera_info_msg(frame.K, H, W, stamp), image_msg(tof_msg_array, encoding, stamp))
    depth = depth_array(h.depth_for(stamp))
    measured = expected > 0
    assert measured.sum() > 50  # an 8x8-zone ToF: 64 measurements
    np.testing.assert_allclose(depth[measured], expected[measured], atol=1e-3)
    valid = np.isfinite(depth)
    assert valid.mean() > 0.95
    assert rmse(depth[valid], frame.depth[valid]) < rmse(nearest_fill(expected)[valid], frame.depth[valid])


def _run_node(args, tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID + 1))
    return subprocess.run(
        [sys.executable, "-m", "selfdc_ros.completion_node", "--ros-args", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )


def test_missing_checkpoint_is_fatal_and_names_the_file(tmp_path):
    require_isolated_network()
    missing = tmp_path / "nope" / "model.pt"
    result = _run_node(["-p", f"checkpoint:={missing}"], tmp_path)
    assert result.returncode != 0
    assert str(missing) in result.stderr + result.stdout
    assert "not found" in result.stderr + result.stdout


def test_corrupt_checkpoint_is_fatal_and_names_the_file(tmp_path):
    require_isolated_network()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a torch file")
    result = _run_node(["-p", f"checkpoint:={corrupt}"], tmp_path)
    assert result.returncode != 0
    assert str(corrupt) in result.stderr + result.stdout
    assert "[FATAL]" in result.stderr and "cannot load checkpoint" in result.stderr


def test_latest_only_worker_keeps_only_the_newest_job():
    import threading

    from selfdc_ros.worker import LatestOnlyWorker

    started, release, seen, errors = threading.Event(), threading.Event(), [], []

    def process(job):
        started.set()
        release.wait(10)
        if job == "bad":
            raise ValueError("bad frame")
        seen.append(job)

    worker = LatestOnlyWorker(process, lambda job, exc: errors.append((job, str(exc))))
    worker.submit(0)
    assert started.wait(10)
    for job in (1, 2, "bad"):  # arrive while job 0 runs: only the newest waits
        worker.submit(job)
    release.set()
    wait_for(worker.idle, 10, "the worker to finish")
    worker.submit(3)
    wait_for(lambda: seen[-1:] == [3], 10, "job 3")
    worker.stop()
    assert seen == [0, 3] and worker.dropped == 2
    assert errors == [("bad", "bad frame")]  # an exception does not end the worker

"""The node runs every deployment format: slim .safetensors weights and an .onnx export (onnxruntime)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import SYNTHETIC_CKPT_SIZE, synthetic_test_scenes
from ros_helpers import (
    Harness,
    camera_info_msg,
    cloud_msg,
    image_msg,
    ros_context_fixture,
    start_node,
    wait_for,
)

from selfdc_core.geometry import project_points, transform_points
from selfdc_core.inference import DepthCompleter
from training import export as export_cli

pytestmark = pytest.mark.ros

ros_context = ros_context_fixture(61)
H, W = SYNTHETIC_CKPT_SIZE


@pytest.fixture(scope="module")
def exported(synthetic_checkpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    files = {"safetensors": folder / "model.safetensors", "onnx": folder / "model.onnx"}
    for fmt, path in files.items():
        args = [str(synthetic_checkpoint), "--format", fmt, "--output", str(path)]
        assert export_cli.main(args + (["--height", str(H), "--width", str(W)] if fmt == "onnx" else [])) == 0
    return files


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_node_completes_frames_with_each_format(ros_context, synthetic_checkpoint, exported, fmt):
    from sensor_msgs.msg import Image, PointCloud2

    frame = synthetic_test_scenes("lidar").frame(0)
    # float32 in PyTorch, as the ONNX graph runs: the formats are compared, not the precisions.
    node = start_node(ros_context, exported[fmt], f"/format_{fmt}", **{
        "precision": "float32" if fmt != "onnx" else "auto",
        "extrinsic.source": "matrix", "extrinsic.matrix": frame.T_cam_lidar.ravel().tolist()})
    harness = Harness(ros_context, node, PointCloud2, Image, "camera/image", "lidar/points")
    try:
        assert node.completer.model is None if fmt == "onnx" else node.completer.model is not None
        stamp = time.time_ns()
        harness.publish(image_msg(frame.rgb, "rgb8", stamp), camera_info_msg(frame.K, H, W, stamp),
                        cloud_msg(frame.lidar_points, stamp))
        msg = harness.depth_for(stamp)
        depth = np.frombuffer(msg.data, dtype=np.float32).reshape(H, W)
        sparse = project_points(transform_points(frame.lidar_points, frame.T_cam_lidar), frame.K, H, W)
        reference = DepthCompleter.from_checkpoint(synthetic_checkpoint, device="cpu", precision="float32")
        expected = reference.complete(frame.rgb, sparse)
        valid = np.isfinite(depth)
        assert valid.mean() > 0.95
        unmeasured = valid & (sparse == 0)  # measured pixels may be overwritten by the measurement
        np.testing.assert_allclose(depth[unmeasured], expected[unmeasured], atol=1e-3)
    finally:
        harness.close()


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_online_adaptation_with_each_format(ros_context, exported, fmt):
    """Slim weights adapt (default loss, fresh segmentation head); an ONNX model cannot be trained, which
    is one clear error in diagnostics while the node goes on completing frames."""
    from sensor_msgs.msg import Image, PointCloud2

    scenes = synthetic_test_scenes("lidar")
    node = start_node(ros_context, exported[fmt], f"/adapt_{fmt}", **{
        "extrinsic.source": "matrix", "extrinsic.matrix": scenes.frame(0).T_cam_lidar.ravel().tolist(),
        "adaptation.enabled": True, "adaptation.min_gap_s": 0.0, "adaptation.batch_size": 2,
        "adaptation.holdout_every": 3, "warmup": False})
    harness = Harness(ros_context, node, PointCloud2, Image, "camera/image", "lidar/points")
    adaptation = node.components[0]
    try:
        stamp = time.time_ns()
        for i in range(6):
            frame = scenes.frame(i % len(scenes))
            stamp += 200_000_000
            harness.publish(image_msg(frame.rgb, "rgb8", stamp), camera_info_msg(frame.K, H, W, stamp),
                            cloud_msg(frame.lidar_points, stamp))
            assert np.isfinite(np.frombuffer(harness.depth_for(stamp).data, np.float32)).mean() > 0.95
        if fmt == "onnx":
            assert adaptation.adapter is None and "onnxruntime" in adaptation.error
            assert node.stage_counts["processing_errors"] == 0
        else:
            wait_for(lambda: adaptation.adapter.stats()["learner_steps"] >= 1, 300, "a learner step")
            assert adaptation.error == "" and adaptation.adapter.stats()["error"] == ""
    finally:
        harness.close()

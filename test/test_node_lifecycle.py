"""completion_node as a managed node, over real DDS: lifecycle services, live parameters set and
refused through the parameter services, /diagnostics content, lazy work, and extrinsics.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import SYNTHETIC_CKPT_SIZE, synthetic_test_scenes
from ros_helpers import (
    Collector,
    Harness,
    SpinThread,
    activate,
    camera_info_msg,
    cloud_msg,
    create_node,
    image_msg,
    ros_context_fixture,
    start_node,
    tiny_checkpoint,
    wait_for,
)

from selfdc_ros.extrinsics import StaticExtrinsic, tf2_available

pytestmark = pytest.mark.ros

DOMAIN_ID = 61
ros_context = ros_context_fixture(DOMAIN_ID)
H, W = SYNTHETIC_CKPT_SIZE
PERIOD_NS = 100_000_000


@pytest.fixture(scope="module")
def frame():
    return synthetic_test_scenes("lidar").frame(0)  # scenes only: no model is trained here


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("lifecycle") / "tiny.pt")


def extrinsic(frame) -> dict:
    """Parameters with the frame's true LiDAR->camera transform."""
    return {"extrinsic.source": "matrix", "extrinsic.matrix": frame.T_cam_lidar.ravel().tolist()}


def frame_set(frame, stamp, cloud_frame="lidar"):
    return (
        image_msg(frame.rgb, "rgb8", stamp),
        camera_info_msg(frame.K, H, W, stamp),
        cloud_msg(frame.lidar_points, stamp, frame_id=cloud_frame),
    )


class ServiceCaller:
    """Calls a node's services over DDS from a separate test node."""

    def __init__(self, tester, target_fqn: str):
        self.tester, self.target = tester, target_fqn

    def call(self, srv_type, name: str, request, timeout: float = 120):
        client = self.tester.create_client(srv_type, f"{self.target}/{name}")
        try:
            assert client.wait_for_service(timeout_sec=20), f"service {self.target}/{name}"
            future = client.call_async(request)
            wait_for(future.done, timeout, f"reply of {name}")
            return future.result()
        finally:
            self.tester.destroy_client(client)

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, "get_state", GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(label=label))
        return self.call(ChangeState, "change_state", request).success

    def set(self, **values) -> list:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        params = [Parameter(k.replace("__", "."), value=v).to_parameter_msg() for k, v in values.items()]
        return self.call(SetParameters, "set_parameters", SetParameters.Request(parameters=params)).results


def _tester(context, namespace):
    from rclpy.node import Node

    return Node("lifecycle_tester", namespace=namespace, context=context)


def test_lifecycle_transitions_through_the_services(ros_context, checkpoint, frame):
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    node = create_node(ros_context, checkpoint, "/lc", warmup=False, autostart=False, **extrinsic(frame))
    tester = _tester(ros_context, "/lc")
    image_pub = tester.create_publisher(Image, "camera/image", 10)
    pubs = (image_pub, tester.create_publisher(CameraInfo, "camera/camera_info", 10))
    pubs += (tester.create_publisher(PointCloud2, "lidar/points", 10),)
    depth = Collector(tester, Image, "completion/depth")
    spin = SpinThread(ros_context, node, tester)
    caller = ServiceCaller(tester, node.get_fully_qualified_name())
    try:
        assert caller.state() == "unconfigured" and node.completer is None
        assert caller.transition("configure")
        assert caller.state() == "inactive" and node.completer is not None
        time.sleep(0.5)
        assert image_pub.get_subscription_count() == 0  # no input is read before activation
        assert caller.transition("activate") and caller.state() == "active"
        wait_for(lambda: all(p.get_subscription_count() for p in pubs), 20, "subscriptions")
        wait_for(lambda: node.pub_depth.get_subscription_count() > 0, 20, "depth subscriber")
        stamp = time.time_ns()
        for pub, msg in zip(pubs, frame_set(frame, stamp), strict=True):
            pub.publish(msg)
        wait_for(lambda: len(depth) > 0, 180, "a depth image while active")
        assert caller.transition("deactivate") and caller.state() == "inactive"
        wait_for(lambda: image_pub.get_subscription_count() == 0, 20, "inputs released")
        assert node.worker is None
        assert caller.transition("cleanup") and caller.state() == "unconfigured"
        assert node.completer is None and node.pub_diag is None
        assert caller.transition("configure") and caller.transition("activate")  # again, from scratch
        assert caller.transition("shutdown") and caller.state() == "finalized"
        assert node.completer is None and node.worker is None
    finally:
        spin.close()
        node.close()
        tester.destroy_node()


def test_bad_checkpoint_fails_configure_with_one_line(ros_context, tmp_path, capfd):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    node = create_node(ros_context, corrupt, "/lc_bad", autostart=False)
    tester = _tester(ros_context, "/lc_bad")
    spin = SpinThread(ros_context, node, tester)
    caller = ServiceCaller(tester, node.get_fully_qualified_name())
    try:
        capfd.readouterr()
        assert caller.transition("configure") is False
        assert caller.state() == "unconfigured"
        err = capfd.readouterr().err
        lines = [line for line in err.splitlines() if "completion_node" in line]
        assert len(lines) == 1, err
        assert "[ERROR]" in lines[0] and f"configure failed: cannot load checkpoint {corrupt}" in lines[0]
        assert "Traceback" not in err
        assert node.startup_error.startswith(f"cannot load checkpoint {corrupt}")
    finally:
        spin.close()
        node.close()
        tester.destroy_node()


@pytest.fixture(scope="module")
def live(ros_context, checkpoint, frame):
    from sensor_msgs.msg import Image, PointCloud2

    node = start_node(ros_context, checkpoint, "/live", warmup=False, **extrinsic(frame))
    harness = Harness(
        ros_context,
        node,
        PointCloud2,
        Image,
        "camera/image",
        "lidar/points",
        extra=[("depth_colorized", Image)],
    )
    yield harness
    harness.close()


def depth_of(msg) -> np.ndarray:
    return np.frombuffer(msg.data, dtype=np.float32).reshape(msg.height, msg.width)


def test_live_parameters_apply_over_dds(live, frame):
    caller = ServiceCaller(live.tester, live.node.get_fully_qualified_name())
    stamp = time.time_ns()
    live.publish(*frame_set(frame, stamp))
    unlimited = depth_of(live.depth_for(stamp))
    assert np.nanmax(unlimited) > 3.0
    # An int where a double is declared, as `ros2 param set ... max_depth 3` sends it.
    (result,) = caller.set(max_depth=3)
    assert result.successful, result.reason
    assert live.node.params["max_depth"] == 3.0
    assert live.node.get_parameter("max_depth").value == 3.0
    stamp += PERIOD_NS
    live.publish(*frame_set(frame, stamp))
    limited = depth_of(live.depth_for(stamp))
    assert np.nanmax(limited) <= 3.0 and np.isnan(limited).sum() > np.isnan(unlimited).sum()

    results = caller.set(output__depth_colorized=False, cloud_stride=2)
    assert all(r.successful for r in results)
    colorized_before = len(live.extra["depth_colorized"])
    stamp += PERIOD_NS
    live.publish(*frame_set(frame, stamp))
    live.depth_for(stamp)
    time.sleep(0.5)
    assert len(live.extra["depth_colorized"]) == colorized_before  # switched off
    assert live.node.params["cloud_stride"] == 2
    caller.set(max_depth=0.0, output__depth_colorized=True)


def test_invalid_or_read_only_parameter_changes_are_refused_with_a_reason(live):
    caller = ServiceCaller(live.tester, live.node.get_fully_qualified_name())
    refused = {
        "cloud_stride": ({"cloud_stride": 0}, "'cloud_stride' is 0; expected >= 1"),
        "filter.kernel_size": ({"filter__kernel_size": 4}, "must be odd"),
        "colorize": ({"colorize__min_depth": 9.0, "colorize__max_depth": 2.0}, "above 'colorize.min_depth'"),
        "max_depth": ({"max_depth": float("nan")}, "expected a finite number"),
        "sync.slop": ({"sync__slop": 0.2}, "read-only"),
        "checkpoint": ({"checkpoint": "/other.pt"}, "read-only"),
    }
    for name, (values, reason) in refused.items():
        results = caller.set(**values)
        assert not all(r.successful for r in results), name
        assert any(reason in r.reason for r in results), (name, [r.reason for r in results])
    assert live.node.params["cloud_stride"] in (2, 4) and live.node.params["sync.slop"] == 0.05
    assert live.node.get_parameter("filter.kernel_size").value == 5
    caller.set(colorize__min_depth=0.0, colorize__max_depth=0.0)


def statuses_by_stage(h) -> dict:
    prefix = f"{h.node.get_fully_qualified_name()}: "
    latest = {}
    for msg in list(h.diag.messages):
        for s in msg.status:
            if s.name.startswith(prefix):
                latest[s.name[len(prefix) :]] = s
    return latest


def values_of(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def test_diagnostics_report_rates_gaps_and_recover(live, frame):
    """Drop every third cloud: its input reports the loss from stamp gaps, then recovers."""
    from diagnostic_msgs.msg import DiagnosticStatus

    h = live
    wait_for(lambda: len(h.statuses("input image")) > 0, 20, "/diagnostics")
    assert set(statuses_by_stage(h)) == {
        "input image", "input camera_info", "input sparse", "synchroniser", "inference", "output",
        "adaptation",  # the online learner's status, reported also while it is off
    }  # fmt: skip
    assert h.statuses("input image")[-1].hardware_id == "/live/camera/image"
    seen = len(h.diag.messages)
    missed_before = [m.missed_total for m in h.node.monitors]
    base = time.time_ns()
    for k in range(30):  # 3 s at 10 Hz
        image, info, cloud = frame_set(frame, base + k * PERIOD_NS)
        h.pub_info.publish(info)
        h.pub_image.publish(image)
        if k % 3 != 2:
            h.pub_sparse.publish(cloud)
        time.sleep(0.1)
    windows = [s for m in list(h.diag.messages)[seen:] for s in m.status if s.name.endswith("input sparse")]
    lossy = [s for s in windows if int(values_of(s)["lost_from_stamp_gaps"]) > 0]
    assert lossy, [values_of(s) for s in windows]
    assert all(s.level == DiagnosticStatus.WARN and "lost (stamp gaps)" in s.message for s in lossy)
    missed = [m.missed_total - before for m, before in zip(h.node.monitors, missed_before, strict=True)]
    assert missed[2] >= 8 and missed[0] == missed[1] == 0, missed
    images = [
        values_of(s) for m in list(h.diag.messages)[seen:] for s in m.status if s.name.endswith("input image")
    ]
    assert any(abs(float(v["receive_rate_hz"]) - 10.0) < 3.0 for v in images), images
    assert any(abs(float(v["expected_rate_hz"]) - 10.0) < 0.5 for v in images), images
    inference = [values_of(s) for s in h.statuses("inference") if "latency_p95_ms" in values_of(s)]
    assert inference and float(inference[-1]["latency_p95_ms"]) >= float(inference[-1]["latency_p50_ms"]) > 0

    # A clean stretch: a window later, every input's level is back to OK.
    seen = len(h.diag.messages)
    base = time.time_ns()
    for k in range(30):
        h.publish(*frame_set(frame, base + k * PERIOD_NS))
        time.sleep(0.1)
    prefix = h.node.get_fully_qualified_name()
    windows = [
        [s for s in m.status if s.name.startswith(f"{prefix}: input")]
        for m in list(h.diag.messages)[seen + 1 :]
    ]
    assert any(len(w) == 3 and all(s.level == DiagnosticStatus.OK for s in w) for w in windows), [
        [(s.name, s.message) for s in w] for w in windows
    ]


def test_diagnostics_compare_the_receive_rate_with_the_expected_rate(live, frame):
    from diagnostic_msgs.msg import DiagnosticStatus

    h = live
    caller = ServiceCaller(h.tester, h.node.get_fully_qualified_name())
    assert all(r.successful for r in caller.set(diagnostics__expected_sparse_rate=30))  # int for a double
    try:
        seen = len(h.diag.messages)
        base = time.time_ns()
        for k in range(25):
            h.publish(*frame_set(frame, base + k * PERIOD_NS))
            time.sleep(0.1)
        sparse = [
            s for m in list(h.diag.messages)[seen:] for s in m.status if s.name.endswith("input sparse")
        ]
        slow = [s for s in sparse if "expected 30.0 Hz" in s.message]
        assert slow and all(s.level == DiagnosticStatus.WARN for s in slow), [s.message for s in sparse]
        assert values_of(slow[-1])["expected_rate_from"] == "parameter"
    finally:
        caller.set(diagnostics__expected_sparse_rate=0.0)


def test_no_inference_without_output_subscribers(ros_context, checkpoint, frame):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    node = start_node(ros_context, checkpoint, "/lazy", warmup=False, **extrinsic(frame))
    tester = _tester(ros_context, "/lazy")
    pubs = [
        tester.create_publisher(t, topic, 10)
        for t, topic in (
            (Image, "camera/image"),
            (CameraInfo, "camera/camera_info"),
            (PointCloud2, "lidar/points"),
        )
    ]
    diagnostics = Collector(tester, DiagnosticArray, "/diagnostics")
    spin = SpinThread(ros_context, node, tester)
    try:
        wait_for(lambda: all(p.get_subscription_count() for p in pubs), 20, "node inputs")
        base = time.time_ns()
        for k in range(3):
            for pub, msg in zip(pubs, frame_set(frame, base + k * PERIOD_NS), strict=True):
                pub.publish(msg)
            time.sleep(0.1)
        wait_for(lambda: node.stage_counts["sets_skipped_no_subscriber"] >= 2, 30, "skipped sets")
        assert node.frames_completed == 0 and node.worker.processed == 0
        name = f"{node.get_fully_qualified_name()}: inference"
        wait_for(
            lambda: any(s.message.startswith("idle") for m in list(diagnostics.messages) for s in m.status
                        if s.name == name),
            10,
            "an idle inference status",
        )  # fmt: skip
        depth = Collector(tester, Image, "completion/depth")
        wait_for(lambda: node.pub_depth.get_subscription_count() > 0, 20, "a depth subscriber")
        stamp = time.time_ns()
        for pub, msg in zip(pubs, frame_set(frame, stamp), strict=True):
            pub.publish(msg)
        wait_for(lambda: len(depth) > 0, 180, "depth once someone listens")
        assert node.frames_completed == 1
    finally:
        spin.close()
        node.close()
        tester.destroy_node()


def test_auto_extrinsic_without_tf2_uses_the_static_parameters_and_warns_once(ros_context, checkpoint, frame):
    if tf2_available():
        pytest.skip("tf2_ros is importable: 'auto' uses tf2 (see the tf2 test)")
    node = activate(create_node(ros_context, checkpoint, "/auto_extrinsic", warmup=False))
    try:
        assert node.params["extrinsic.source"] == "auto"
        assert isinstance(node._extrinsic, StaticExtrinsic) and node._extrinsic.is_identity
        T = node._transform(image_msg(frame.rgb, "rgb8", 1).header, cloud_msg(frame.lidar_points, 1).header)
        assert np.array_equal(T, np.eye(4)) and node._identity_warned  # frames differ, identity used
    finally:
        node.close()


def test_tf2_lookup_at_the_cloud_stamp_with_a_static_broadcaster(ros_context, checkpoint, frame):
    tf2_ros = pytest.importorskip(
        "tf2_ros",
        reason="tf2_ros is not importable (ROS package tf2_ros_py, which comes with a ROS 2 distribution)",
    )
    from geometry_msgs.msg import TransformStamped
    from scipy.spatial.transform import Rotation

    node = start_node(ros_context, checkpoint, "/tf_test", warmup=False)
    broadcaster_node = _tester(ros_context, "/tf_test")
    broadcaster = tf2_ros.StaticTransformBroadcaster(broadcaster_node)
    T = frame.T_cam_lidar
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = "camera_optical", "lidar"
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = T[:3, 3]
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z, msg.transform.rotation.w = q
    broadcaster.sendTransform(msg)
    spin = SpinThread(ros_context, node, broadcaster_node)
    try:
        image, _, cloud = frame_set(frame, time.time_ns())

        def looked_up():
            try:
                return node._transform(image.header, cloud.header)
            except Exception:
                return None

        wait_for(lambda: looked_up() is not None, 20, "the static transform")
        np.testing.assert_allclose(looked_up(), T, atol=1e-6)
        assert not node._identity_warned
    finally:
        spin.close()
        node.close()
        broadcaster_node.destroy_node()

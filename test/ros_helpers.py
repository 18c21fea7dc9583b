"""Helpers for the tests that start real rclpy nodes over real DDS (loopback only).

ROS tests must run inside the private network namespace that `make test` creates, so that
DDS discovery and traffic never leave the machine. `require_isolated_network()` checks it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from selfdc_core.testing.checkpoints import untrained_checkpoint
from selfdc_core.testing.images import png_bomb  # noqa: F401
from selfdc_ros.testing import camera_info_msg, cloud_msg, image_msg, make_header, stamp_msg  # noqa: F401

ISOLATION_HINT = "run via `make test`, which isolates DDS in a private network namespace"


def network_interfaces() -> list[str]:
    """Interfaces of this process's network namespace.

    (/sys/class/net shows the namespace sysfs was mounted in, not necessarily ours after
    `unshare -n`, so the kernel is asked directly.)
    """
    return sorted(name for _, name in socket.if_nameindex())


def require_isolated_network() -> None:
    """Fail (not skip) unless only the loopback interface exists and ROS is set to localhost."""
    interfaces = network_interfaces()
    if interfaces != ["lo"]:
        pytest.fail(f"network interfaces {interfaces} are visible: {ISOLATION_HINT}", pytrace=False)
    if (
        os.environ.get("ROS_LOCALHOST_ONLY") != "1"
        and os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") != "LOCALHOST"
    ):
        pytest.fail(
            f"ROS_LOCALHOST_ONLY / ROS_AUTOMATIC_DISCOVERY_RANGE are not set: {ISOLATION_HINT}", pytrace=False
        )


def tiny_checkpoint(path: Path) -> Path:
    """An untrained SelfDC checkpoint (small backbone, few propagation steps) in the contract format."""
    return untrained_checkpoint(path, backbone="resnet18", num_classes=4, prop_iterations=2)


class Collector:
    """Subscribes to a topic and keeps every message (thread-safe)."""

    def __init__(self, node, msg_type, topic: str, qos=10):
        self.messages: list = []
        self._lock = threading.Lock()
        self.sub = node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        with self._lock:
            self.messages.append(msg)

    def __len__(self) -> int:
        with self._lock:
            return len(self.messages)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class SpinThread:
    """Spins nodes on a background executor (one thread) until closed."""

    def __init__(self, context, *nodes):
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._stop = False
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.executor.shutdown()


def ros_context_fixture(domain_id: int):
    """A module-scoped fixture: an isolated rclpy context on the test file's own DDS domain."""

    @pytest.fixture(scope="module")
    def ros_context():
        require_isolated_network()
        import rclpy
        from rclpy.context import Context

        context = Context()
        rclpy.init(context=context, domain_id=domain_id)
        yield context
        context.try_shutdown()

    return ros_context


INPUT_TOPICS = ("camera/image", "camera/image/compressed", "camera/camera_info", "lidar/points", "tof/depth")


def input_queue_overrides(namespace: str, depth: int = 10) -> list:
    """Standard QoS overrides (`qos_overrides.<topic>.subscription.depth`) for every node input."""
    from rclpy.parameter import Parameter

    prefix = namespace.rstrip("/")
    return [
        Parameter(f"qos_overrides.{prefix}/{topic}.subscription.depth", value=depth) for topic in INPUT_TOPICS
    ]


def create_node(context, checkpoint, namespace: str, **params):
    """A CompletionNode in the unconfigured lifecycle state (inputs queue 10 messages each)."""
    from rclpy.parameter import Parameter

    from selfdc_ros.completion_node import CompletionNode

    overrides = [Parameter("checkpoint", value=str(checkpoint)), *input_queue_overrides(namespace)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return CompletionNode(context=context, namespace=namespace, parameter_overrides=overrides)


def activate(node):
    """Take a lifecycle CompletionNode to active; AssertionError with its logged cause otherwise."""
    from rclpy.lifecycle import TransitionCallbackReturn

    for name in ("configure", "activate"):
        if getattr(node, f"trigger_{name}")() != TransitionCallbackReturn.SUCCESS:
            cause = node.startup_error
            node.close()
            raise AssertionError(f"{name} failed: {cause}")
    return node


def start_node(context, checkpoint, namespace: str, **params):
    """A CompletionNode that is configured and active, i.e. processing messages."""
    return activate(create_node(context, checkpoint, namespace, **params))


class Harness:
    """The node under test plus a test node with publishers and collectors, spinning in background."""

    def __init__(self, context, node, sparse_type, image_type, image_topic: str, sparse_topic: str, extra=()):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from sensor_msgs.msg import CameraInfo, Image

        ns = node.get_namespace()
        self.node = node
        self.tester = Node("tester", namespace=ns, context=context)
        self.pub_image = self.tester.create_publisher(image_type, image_topic, 10)
        self.pub_info = self.tester.create_publisher(CameraInfo, "camera/camera_info", 10)
        self.pub_sparse = self.tester.create_publisher(sparse_type, sparse_topic, 10)
        self.depth = Collector(self.tester, Image, "completion/depth")
        self.info = Collector(self.tester, CameraInfo, "completion/camera_info")
        self.diag = Collector(self.tester, DiagnosticArray, "/diagnostics")
        self.extra = {name: Collector(self.tester, t, f"completion/{name}") for name, t in extra}
        self.spin = SpinThread(context, node, self.tester)
        wait_for(
            lambda: (
                all(p.get_subscription_count() > 0 for p in (self.pub_image, self.pub_info, self.pub_sparse))
                and node.pub_depth.get_subscription_count() > 0
                and node.pub_diag.get_subscription_count() > 0
            ),
            20,
            "DDS discovery between the tester and the node",
        )

    def publish(self, image, info, sparse):
        self.pub_info.publish(info)
        self.pub_sparse.publish(sparse)
        self.pub_image.publish(image)

    def depth_for(self, stamp_ns: int, timeout: float = 180):  # generous: CI machines may be loaded
        def find():
            return [
                m
                for m in list(self.depth.messages)
                if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec == stamp_ns
            ]

        wait_for(find, timeout, f"completed depth stamped {stamp_ns}")
        return find()[0]

    def statuses(self, stage: str) -> list:
        """This node's /diagnostics statuses for `stage` (e.g. 'inference', 'input image'), oldest first."""
        name = f"{self.node.get_fully_qualified_name()}: {stage}"
        return [s for m in list(self.diag.messages) for s in m.status if s.name == name]

    def close(self):
        self.spin.close()
        self.node.close()
        self.tester.destroy_node()


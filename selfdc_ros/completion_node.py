"""completion_node: camera + LiDAR/ToF in, dense depth out, in real time.

Subscribes (relative, remappable): camera/image (or camera/image/compressed),
camera/camera_info and lidar/points (PointCloud2) or tof/depth (Image).
Publishes: completion/depth (32FC1 m, NaN invalid, the camera image's header),
completion/camera_info, completion/depth_colorized (rgb8), completion/points and
completion/confidence (computed only when subscribed), completion/diagnostics.

Threading: executor callbacks only check headers and feed the synchroniser; each complete
set goes to ONE worker thread that keeps just the newest set, so frames are dropped,
never queued, while the network runs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from selfdc_core.message_set import set_to_arrays
from selfdc_core.msg_decode import (
    BadMessage,
    camera_info_to_intrinsics,
    check_compressed,
    image_to_array,
    pointcloud2_layout,
    stamp_to_ns,
)
from selfdc_core.sync import ApproximateTimeSynchronizer
from selfdc_core.visualize import colorize_depth
from selfdc_ros.extrinsics import ExtrinsicError, make_extrinsic_provider
from selfdc_ros.messages import copy_camera_info, depth_to_image, rgb_to_image, xyzrgb_cloud
from selfdc_ros.params import declare_parameters, inference_limits_of, input_size_of, set_options_of
from selfdc_ros.timing import FrameTimer, TimingStats
from selfdc_ros.worker import LatestOnlyWorker

IMAGE, INFO, SPARSE = 0, 1, 2
INPUT_NAMES = ("image", "camera_info", "sparse")


class StartupError(RuntimeError):
    """The node cannot start (missing checkpoint, bad parameters); the message says why."""


@dataclass
class Job:
    messages: tuple  # (image, camera_info, sparse) messages of one synchronised set
    received: float  # perf_counter of the earliest arrival in the set
    emitted: float  # perf_counter when the set was complete


def load_completer(params: dict):
    """DepthCompleter for the `checkpoint` parameter; StartupError naming the file on failure."""
    path = str(params["checkpoint"])
    if not path:
        raise StartupError("parameter 'checkpoint' is empty: pass checkpoint:=/path/to/model.pt")
    if not Path(path).is_file():
        raise StartupError(f"checkpoint file not found: {path}")
    from selfdc_core.inference import DepthCompleter

    try:
        completer = DepthCompleter.from_checkpoint(
            path, device=params["device"], input_size=input_size_of(params)
        )
    except Exception as exc:  # any failure to read/build is fatal at start-up, with the cause
        raise StartupError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    return completer


class CompletionNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__("completion_node", **node_kwargs)
        try:
            self.params = p = declare_parameters(self)
            self._extrinsic = make_extrinsic_provider(self, p)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        self.completer = load_completer(p)
        self.completer.limits = inference_limits_of(p)
        self._set_options = set_options_of(p)
        self._distortion_noted = False
        if p["warmup"]:
            self.completer.warmup()

        self.bad_messages: Counter = Counter()  # kind -> messages skipped
        self.warnings_logged: Counter = Counter()  # kind -> warnings actually logged (throttled)
        self._last_warning: dict[str, float] = {}
        self.frames_completed = 0
        self.published: Counter = Counter()  # output name -> messages published
        self.timing = TimingStats()
        self.last_timing: dict[str, float] = {}
        self._lock = threading.Lock()  # guards the synchroniser and the counters
        self._sync = ApproximateTimeSynchronizer(
            3, p["sync.queue_size"], p["sync.slop"], p["sync.jump_threshold"]
        )
        self._last_received = [0.0, 0.0, 0.0]
        self._last_stamp = [0, 0, 0]
        self._last_set_time = time.monotonic()

        out_qos = QoSProfile(depth=2, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_depth = self.create_publisher(Image, "completion/depth", out_qos)
        self.pub_info = self.create_publisher(CameraInfo, "completion/camera_info", out_qos)
        self.pub_color = self.create_publisher(Image, "completion/depth_colorized", out_qos)
        self.pub_points = self.create_publisher(PointCloud2, "completion/points", out_qos)
        self.pub_conf = self.create_publisher(Image, "completion/confidence", out_qos)
        self.pub_diag = self.create_publisher(DiagnosticArray, "completion/diagnostics", 10)

        reliability = (
            ReliabilityPolicy.BEST_EFFORT
            if p["qos.reliability"] == "best_effort"
            else (ReliabilityPolicy.RELIABLE)
        )
        in_qos = QoSProfile(depth=p["qos.depth"], history=HistoryPolicy.KEEP_LAST, reliability=reliability)
        if p["image_transport"] == "compressed":
            self.create_subscription(
                CompressedImage, "camera/image/compressed", self._callback(IMAGE), in_qos
            )
        else:
            self.create_subscription(Image, "camera/image", self._callback(IMAGE), in_qos)
        self.create_subscription(CameraInfo, "camera/camera_info", self._callback(INFO), in_qos)
        if p["sparse_source"] == "pointcloud":
            self.create_subscription(PointCloud2, "lidar/points", self._callback(SPARSE), in_qos)
        else:
            self.create_subscription(Image, "tof/depth", self._callback(SPARSE), in_qos)

        self.worker = LatestOnlyWorker(self._process, self._on_worker_error, name="selfdc_inference")
        self.create_timer(1.0, self._check_synchronisation)
        self.get_logger().info(
            f"ready: checkpoint {p['checkpoint']} on {self.completer.device}, "
            f"sparse source {p['sparse_source']}, "
            f"model input {input_size_of(p) or 'camera resolution'}"
        )

    # ------------------------------------------------------------------ callbacks
    def _callback(self, index: int):
        return lambda msg: self._on_message(index, msg)

    def _on_message(self, index: int, msg) -> None:
        received = time.perf_counter()
        try:
            stamp = stamp_to_ns(msg.header)
            self._check_layout(index, msg)
        except BadMessage as exc:
            self.reject(exc, INPUT_NAMES[index])
            return
        with self._lock:
            self._last_received[index] = time.monotonic()
            self._last_stamp[index] = stamp
            sets = self._sync.add(index, stamp, (msg, received))
            notices = self._sync.pop_notices()
            if sets:
                self._last_set_time = time.monotonic()
        for kind, text in notices:
            self.reject(BadMessage(kind, text), INPUT_NAMES[index])
        now = time.perf_counter()
        for s in sets:
            msgs = tuple(m for _, (m, _) in s)
            self.worker.submit(Job(msgs, received=min(r for _, (_, r) in s), emitted=now))

    def _check_layout(self, index: int, msg) -> None:
        """Cheap metadata checks, so a malformed message never takes a good partner's place."""
        limits = self._set_options.limits
        if index == INFO:
            camera_info_to_intrinsics(msg, self.params["use_projection_matrix"])
        elif index == SPARSE and isinstance(msg, PointCloud2):
            pointcloud2_layout(msg)
        elif isinstance(msg, CompressedImage):
            check_compressed(msg, limits)  # header size and ratio, before any decoding
        elif isinstance(msg, Image):
            image_to_array(msg, limits.max_pixels)  # size, encoding, step, data size; no copy
            if index == SPARSE and msg.encoding not in ("16UC1", "mono16", "32FC1"):
                raise BadMessage(
                    "unknown_encoding", f"depth encoding {msg.encoding!r}; expected 16UC1 or 32FC1"
                )
            if index == IMAGE and msg.encoding in ("16UC1", "32FC1"):
                raise BadMessage("unknown_encoding", f"camera image has depth encoding {msg.encoding!r}")

    def _check_synchronisation(self) -> None:
        """Warn when every input is arriving but no set has synchronised for a while."""
        now = time.monotonic()
        warn_after = self.params["sync.warn_after"]
        with self._lock:
            all_recent = all(now - t < warn_after for t in self._last_received)
            stalled = now - self._last_set_time > warn_after
            reason = self._sync.describe_stall(INPUT_NAMES) if all_recent and stalled else ""
        if reason:
            self.reject(BadMessage("unsynchronised", f"no set for {warn_after} s: {reason}"), "inputs")

    # ------------------------------------------------------------------ bad input
    def reject(self, exc: BadMessage, source: str) -> None:
        """Count a skipped message and warn about its kind at most once per warn_throttle seconds."""
        now = time.monotonic()
        with self._lock:
            self.bad_messages[exc.kind] += 1
            count = self.bad_messages[exc.kind]
            warn = now - self._last_warning.get(exc.kind, -1e18) >= self.params["warn_throttle"]
            if warn:
                self._last_warning[exc.kind] = now
                self.warnings_logged[exc.kind] += 1
        if warn:
            self.get_logger().warning(f"skipping {source}: {exc} [{count} x {exc.kind} so far]")

    def _on_worker_error(self, job: Job, exc: BaseException) -> None:
        if isinstance(exc, BadMessage):
            self.reject(exc, "frame")
        else:
            self.reject(BadMessage("processing_error", f"{type(exc).__name__}: {exc}"), "frame")

    # ------------------------------------------------------------------ worker
    def _process(self, job: Job) -> None:
        start = time.perf_counter()
        p = self.params
        timer = FrameTimer()
        timer.ms["sync_wait"] = (job.emitted - job.received) * 1e3
        timer.ms["queue_wait"] = (start - job.emitted) * 1e3
        image_msg, info_msg, sparse_msg = job.messages

        arrays = set_to_arrays(image_msg, info_msg, sparse_msg, self._set_options, self._lookup, timer.stage)
        rgb, sparse, K = arrays.rgb, arrays.sparse, arrays.K
        self._note_input(arrays)

        want_conf = self.pub_conf.get_subscription_count() > 0
        with timer.stage("inference"):
            out = self.completer.complete(rgb, sparse, return_confidence=want_conf)
        depth, confidence = out if want_conf else (out, None)
        if p["keep_measurements"]:
            measured = sparse > 0
            depth[measured] = sparse[measured]

        with timer.stage("publish"):
            self._publish(image_msg.header, info_msg, rgb, depth, confidence, K)
        timer.ms["total_node"] = (time.perf_counter() - start) * 1e3
        now_ns = self.get_clock().now().nanoseconds
        timer.ms["latency"] = (now_ns - stamp_to_ns(image_msg.header)) / 1e6
        self._publish_diagnostics(timer.ms, image_msg.header)
        self.get_logger().info(f"timings: {self.timing.line()}", throttle_duration_sec=p["timing_log_period"])

    def _lookup(self, image_msg, sparse_msg) -> np.ndarray:
        try:
            stamp = Time.from_msg(sparse_msg.header.stamp)
            return self._extrinsic.lookup(image_msg.header.frame_id, sparse_msg.header.frame_id, stamp)
        except ExtrinsicError as exc:
            raise BadMessage("no_transform", str(exc)) from exc

    def _note_input(self, arrays) -> None:
        """Warn about what the frame's inputs lost or ignored (the frame itself is still completed)."""
        if arrays.out_of_range:
            o = self._set_options
            text = f"dropped {arrays.out_of_range} sparse depths outside [{o.min_depth:g}, {o.max_depth:g}] m"
            hint = f"; {arrays.unit_hint}" if arrays.unit_hint else ""
            self.reject(BadMessage("sparse_out_of_range", text + hint), "sparse")
        if arrays.camera.ignored_distortion and not self._distortion_noted:
            self._distortion_noted = True
            self.get_logger().warning(arrays.camera.ignored_distortion)

    def _publish(self, header, info_msg, rgb, depth, confidence, K) -> None:
        p = self.params
        invalid = ~np.isfinite(depth) | (depth <= 0)
        if p["max_depth"] > 0:
            invalid |= depth > p["max_depth"]
        depth = np.where(invalid, np.float32(np.nan), depth).astype(np.float32, copy=False)
        sent = ["depth", "camera_info"]
        self.pub_depth.publish(depth_to_image(header, depth))
        self.pub_info.publish(copy_camera_info(info_msg, header))
        # Optional outputs are only computed for someone listening.
        if self.pub_color.get_subscription_count() > 0:
            lo, hi = p["colorize.min_depth"], p["colorize.max_depth"]
            rng = (lo, hi) if hi > lo else (None, None)
            self.pub_color.publish(rgb_to_image(header, colorize_depth(depth, *rng)))
            sent.append("depth_colorized")
        if self.pub_points.get_subscription_count() > 0:
            self.pub_points.publish(xyzrgb_cloud(header, depth, rgb, K, p["cloud_stride"]))
            sent.append("points")
        if confidence is not None:
            self.pub_conf.publish(depth_to_image(header, np.asarray(confidence, dtype=np.float32)))
            sent.append("confidence")
        with self._lock:
            self.frames_completed += 1
            self.published.update(sent)

    def _publish_diagnostics(self, ms: dict, header) -> None:
        self.timing.add(ms)
        self.last_timing = dict(ms)
        with self._lock:
            counters = {
                "frames_completed": self.frames_completed,
                "sets_dropped_busy": self.worker.dropped,
                "messages_unsynchronised": self._sync.stats.total_dropped(),
                **{f"bad_{k}": v for k, v in sorted(self.bad_messages.items())},
            }
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if not self.bad_messages else DiagnosticStatus.WARN,
            name=f"{self.get_fully_qualified_name()}: depth completion",
            message=f"{counters['frames_completed']} frames completed",
            hardware_id=str(self.completer.device),
        )
        status.values = [KeyValue(key=f"{k}_ms", value=f"{v:.2f}") for k, v in ms.items()]
        status.values += [KeyValue(key=k, value=str(v)) for k, v in counters.items()]
        msg = DiagnosticArray()
        msg.header.stamp = header.stamp
        msg.status = [status]
        self.pub_diag.publish(msg)

    def destroy_node(self):
        # Let a frame in flight finish (CPU inference can take seconds) before the node goes away.
        self.worker.stop(timeout=60.0)
        return super().destroy_node()


def main(args=None) -> int:
    rclpy.init(args=args)
    try:
        node = CompletionNode()
    except StartupError as exc:
        rclpy.logging.get_logger("completion_node").fatal(str(exc))
        rclpy.try_shutdown()
        return 1
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

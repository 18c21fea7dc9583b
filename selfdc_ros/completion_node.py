"""completion_node: camera + LiDAR/ToF in, dense depth out, in real time. A lifecycle node.

Subscribes (relative, remappable): camera/image (or camera/image/compressed),
camera/camera_info and lidar/points (PointCloud2) or tof/depth (Image).
Publishes: completion/depth (32FC1 m, NaN invalid, the camera image's header),
completion/camera_info, completion/depth_colorized (rgb8), completion/points and
completion/confidence (computed only when subscribed), and /diagnostics at about 1 Hz.

Lifecycle: configure validates the parameters, loads and warms up the model and creates the
publishers; activate subscribes and starts the worker; deactivate/cleanup undo that and free
the model. With `autostart` (the default) `main()` takes the node to active itself.

Threading: executor callbacks only check headers and feed the synchroniser; each complete
set goes to ONE worker thread that keeps just the newest set, so frames are dropped,
never queued, while the network runs. No subscriber on any output: the network is not run.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
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
from selfdc_ros import diagnostics as diag
from selfdc_ros.components import COMPONENTS, CompletedFrame
from selfdc_ros.extrinsics import ExtrinsicError, make_extrinsic_provider
from selfdc_ros.input_monitor import InputMonitor
from selfdc_ros.messages import copy_camera_info, depth_to_image, rgb_to_image, xyzrgb_cloud
from selfdc_ros.params import (
    PARAMETER_NAMES,
    coerce_parameters,
    coerce_values,
    declare_parameters,
    declared_values,
    inference_limits_of,
    input_size_of,
    problems,
    set_options_of,
    validate,
)
from selfdc_ros.timing import FrameTimer, TimingStats
from selfdc_ros.worker import LatestOnlyWorker

IMAGE, INFO, SPARSE = 0, 1, 2
INPUT_NAMES = ("image", "camera_info", "sparse")
OUTPUT_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


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
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise StartupError(f"checkpoint file not found: {path}")
    from selfdc_core.inference import DepthCompleter, resolve_device

    try:
        device = resolve_device(params["device"])
    except (ValueError, RuntimeError) as exc:  # unknown device string, or CUDA absent
        raise StartupError(f"parameter 'device': {exc}") from exc
    try:
        completer = DepthCompleter.from_checkpoint(path, device=device, input_size=input_size_of(params),
                                                   precision=params["precision"], backend=params["backend"])
    except Exception as exc:  # any failure to read/build is fatal at start-up, with the cause
        raise StartupError(f"cannot load checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    return completer


def _free_accelerator_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class CompletionNode(LifecycleNode):
    def __init__(self, **node_kwargs):
        super().__init__("completion_node", **node_kwargs)
        self.params = declare_parameters(self)  # validated (and replaced) by configure
        if hasattr(self, "add_pre_set_parameters_callback"):  # Jazzy and later
            self.add_pre_set_parameters_callback(coerce_parameters)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.components = [factory() for factory in COMPONENTS]
        self.completer = None
        self.worker: LatestOnlyWorker | None = None
        self.pub_diag = None
        self.startup_error: str | None = None
        self.fatal_on_failure = False  # set by main(): a failed start-up ends the process
        self._extrinsic = None
        self._lock = threading.Lock()  # guards the synchroniser and the counters
        self._inputs: list = []
        self._timers: list = []
        self._output_pubs: list = []
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.bad_messages: Counter = Counter()  # kind -> messages skipped
        self.bad_by_input: Counter = Counter()  # input (or stage) -> messages skipped
        self.warnings_logged: Counter = Counter()  # kind -> warnings actually logged (throttled)
        self._last_warning: dict[str, float] = {}
        self.frames_completed = 0
        self.published: Counter = Counter()  # output name -> messages published
        self.stage_counts: Counter = Counter()  # sets_skipped_no_subscriber, processing_errors
        self.timing = TimingStats()
        self.last_timing: dict[str, float] = {}
        self.monitors = [InputMonitor() for _ in INPUT_NAMES]
        self._window_frames: list[dict] = []
        self._window = {
            k: diag.WindowCounter() for k in ("bad", "sync", "sets", "stage", "published", "warn")
        }
        self._identity_warned = False

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # every cause becomes one log line and a failed transition
            self._fail("configure", exc)
            self._release()
            return FAILURE
        return super().on_configure(state)

    def _configure(self) -> None:
        try:
            self.params = p = validate(declared_values(self))
            self._extrinsic = make_extrinsic_provider(self, p)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        self.completer = load_completer(p)
        self.completer.limits = inference_limits_of(p)
        self._distortion_noted = False
        if p["warmup"]:
            self.completer.warmup()
        self._reset_counters()
        self.pub_depth = self._publisher(Image, "completion/depth")
        self.pub_info = self._publisher(CameraInfo, "completion/camera_info")
        self.pub_color = self._publisher(Image, "completion/depth_colorized")
        self.pub_points = self._publisher(PointCloud2, "completion/points")
        self.pub_conf = self._publisher(Image, "completion/confidence")
        self.pub_diag = self._publisher(DiagnosticArray, "/diagnostics", managed=False)
        for component in self.components:
            component.configure(self, p)
        self.get_logger().info(
            f"configured: checkpoint {p['checkpoint']} on {self.completer.device}, "
            f"sparse source {p['sparse_source']}, extrinsic {type(self._extrinsic).__name__}, "
            f"model input {input_size_of(p) or 'camera resolution'}"
        )

    def _publisher(self, msg_type, topic: str, managed: bool = True):
        """A publisher with rclpy's standard QoS overrides; StartupError naming the topic if invalid."""
        qos = {"qos_overriding_options": QoSOverridingOptions.with_default_policies()}
        try:
            if not managed:
                return self.create_publisher(msg_type, topic, 10, **qos)
            pub = self.create_lifecycle_publisher(msg_type, topic, OUTPUT_QOS, **qos)
        except Exception as exc:
            name = self._resolved(topic)
            raise StartupError(f"cannot publish on {name}: {type(exc).__name__}: {exc}") from exc
        self._output_pubs.append(pub)
        return pub

    def _resolved(self, topic: str) -> str:
        resolve = getattr(self, "resolve_topic_name", None)  # rclpy >= Iron
        return resolve(topic) if resolve else topic

    def on_activate(self, state) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as exc:  # e.g. invalid QoS overrides
            self._fail("activate", exc)
            self._deactivate()
            return FAILURE
        self.get_logger().info("active")
        return super().on_activate(state)

    def _activate(self) -> None:
        p = self.params
        self._sync = ApproximateTimeSynchronizer(
            3, p["sync.queue_size"], p["sync.slop"], p["sync.jump_threshold"] or None
        )
        self._last_received = [0.0, 0.0, 0.0]
        self._last_stamp = [0, 0, 0]
        self._last_set_time = time.monotonic()
        self._apply_expected_rates()
        self.worker = LatestOnlyWorker(self._process, self._on_worker_error, name="selfdc_inference")
        qos = {"qos_overriding_options": QoSOverridingOptions.with_default_policies()}
        image_type, image_topic = (
            (CompressedImage, "camera/image/compressed")
            if p["image_transport"] == "compressed"
            else (Image, "camera/image")
        )
        sparse_type, sparse_topic = (
            (PointCloud2, "lidar/points") if p["sparse_source"] == "pointcloud" else (Image, "tof/depth")
        )
        for index, (msg_type, topic) in enumerate(
            [(image_type, image_topic), (CameraInfo, "camera/camera_info"), (sparse_type, sparse_topic)]
        ):
            try:
                sub = self.create_subscription(
                    msg_type, topic, self._callback(index), qos_profile_sensor_data, **qos
                )
            except Exception as exc:  # invalid QoS overrides: name the topic they are for
                name = self._resolved(topic)
                raise StartupError(f"cannot subscribe to {name}: {type(exc).__name__}: {exc}") from exc
            self._inputs.append(sub)
        self._timers = [
            self.create_timer(1.0, self._check_synchronisation),
            self.create_timer(p["diagnostics.period"], self._publish_diagnostics),
        ]
        for component in self.components:
            component.activate()

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def _deactivate(self) -> None:
        for component in self.components:
            component.deactivate()
        for sub in self._inputs:
            self.destroy_subscription(sub)
        for timer in self._timers:
            self.destroy_timer(timer)
        self._inputs, self._timers = [], []
        if self.worker is not None:
            # Let a frame in flight finish (CPU inference can take seconds) before going on.
            self.worker.stop(timeout=60.0)
            self.worker = None

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        self._release()
        return SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._deactivate()
        self._release()
        return SUCCESS  # back to unconfigured, ready to configure again

    def _release(self) -> None:
        """Free what configure made: publishers, the model and the accelerator memory."""
        for component in self.components:
            component.cleanup()
        for pub in self._output_pubs:
            self.destroy_lifecycle_publisher(pub)
        if self.pub_diag is not None:
            self.destroy_publisher(self.pub_diag)
        self._output_pubs, self.pub_diag = [], None
        if self._extrinsic is not None:
            self._extrinsic.close()
            self._extrinsic = None
        if self.completer is not None:
            self.completer = None
            _free_accelerator_memory()

    def _fail(self, transition: str, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, StartupError) else f"{type(exc).__name__}: {exc}"
        self.startup_error = message
        if self.fatal_on_failure:
            self.get_logger().fatal(message)
        else:
            self.get_logger().error(f"{transition} failed: {message}")

    def close(self) -> None:
        """Stop the worker, free everything and destroy the node, whatever state it is in."""
        self._deactivate()
        self._release()
        self.destroy_node()

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Apply live parameters after the start-up checks; refuse a change with the reason."""
        changes = {p.name: p.value for p in parameters if p.name in PARAMETER_NAMES}
        if not changes:
            return SetParametersResult(successful=True)
        merged = coerce_values({**declared_values(self), **changes})
        found = [e for e in problems(merged) if set(e.names) & set(changes)]
        if found:
            return SetParametersResult(successful=False, reason=str(found[0]))
        if self.completer is not None:  # configured: the worker reads self.params per frame
            self.params = {**self.params, **{k: merged[k] for k in changes}}
            self._apply_expected_rates()
            for component in self.components:
                component.on_parameters({k: merged[k] for k in changes})
        return SetParametersResult(successful=True)

    def _apply_expected_rates(self) -> None:
        rates = (
            self.params["diagnostics.expected_image_rate"],
            self.params["diagnostics.expected_image_rate"],
            self.params["diagnostics.expected_sparse_rate"],
        )
        for monitor, rate in zip(self.monitors, rates, strict=True):
            monitor.expected_rate_hz = float(rate)

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
            self.monitors[index].record(stamp, time.monotonic())
            sets = self._sync.add(index, stamp, (msg, received))
            notices = self._sync.pop_notices()
            if sets:
                self._last_set_time = time.monotonic()
        for kind, text in notices:
            self.reject(BadMessage(kind, text), INPUT_NAMES[index])
        if sets and not self._any_output_subscribed():
            with self._lock:
                self.stage_counts["sets_skipped_no_subscriber"] += len(sets)
            return
        now = time.perf_counter()
        worker = self.worker
        for s in sets:
            msgs = tuple(m for _, (m, _) in s)
            if worker is not None:
                worker.submit(Job(msgs, received=min(r for _, (_, r) in s), emitted=now))

    def _any_output_subscribed(self) -> bool:
        """Whether a completed frame would reach anyone (switched-off outputs do not count)."""
        p = self.params
        optional = ((self.pub_color, "output.depth_colorized"), (self.pub_points, "output.points"))
        optional += ((self.pub_conf, "output.confidence"),)
        wanted = [self.pub_depth, self.pub_info] + [pub for pub, key in optional if p[key]]
        return any(pub.get_subscription_count() > 0 for pub in wanted)

    def _check_layout(self, index: int, msg) -> None:
        """Cheap metadata checks, so a malformed message never takes a good partner's place."""
        limits = self._options(self.params).limits
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
            self.bad_by_input[source] += 1
            count = self.bad_messages[exc.kind]
            warn = now - self._last_warning.get(exc.kind, -1e18) >= self.params["warn_throttle"]
            if warn:
                self._last_warning[exc.kind] = now
                self.warnings_logged[exc.kind] += 1
        if warn:
            self.get_logger().warning(f"skipping {source}: {exc} [{count} x {exc.kind} so far]")

    def _on_worker_error(self, job: Job, exc: BaseException) -> None:
        with self._lock:
            self.stage_counts["processing_errors"] += 1
        if isinstance(exc, BadMessage):
            self.reject(exc, "frame")
        else:
            self.reject(BadMessage("processing_error", f"{type(exc).__name__}: {exc}"), "frame")

    # ------------------------------------------------------------------ worker
    def _process(self, job: Job) -> None:
        start = time.perf_counter()
        p = self.params  # one consistent snapshot of the live parameters for this frame
        timer = FrameTimer()
        timer.ms["sync_wait"] = (job.emitted - job.received) * 1e3
        timer.ms["queue_wait"] = (start - job.emitted) * 1e3
        image_msg, info_msg, sparse_msg = job.messages

        arrays = set_to_arrays(image_msg, info_msg, sparse_msg, self._options(p),
                               lambda image, cloud: self._transform(image.header, cloud.header), timer.stage)
        rgb, sparse, K = arrays.rgb, arrays.sparse, arrays.K
        self._note_input(arrays)

        want_conf = p["output.confidence"] and self.pub_conf.get_subscription_count() > 0
        with timer.stage("inference"):
            out = self.completer.complete(rgb, sparse, return_confidence=want_conf)
        depth, confidence = out if want_conf else (out, None)
        if p["keep_measurements"]:
            measured = sparse > 0
            depth[measured] = sparse[measured]

        with timer.stage("publish"):
            depth = self._publish(p, image_msg.header, info_msg, rgb, depth, confidence, K)
        timer.ms["total_node"] = (time.perf_counter() - start) * 1e3
        now_ns = self.get_clock().now().nanoseconds
        timer.ms["latency"] = (now_ns - stamp_to_ns(image_msg.header)) / 1e6
        self._record_timing(timer.ms)
        if self.components:
            frame = CompletedFrame(stamp_to_ns(image_msg.header), rgb, sparse, depth, K)
            for component in self.components:
                component.on_frame(frame)
        self.get_logger().info(f"timings: {self.timing.line()}", throttle_duration_sec=p["timing_log_period"])

    def _options(self, p: dict):
        """How a message set becomes arrays for the parameter snapshot `p`. Built once per snapshot
        (live changes replace the dict), not per message: one tuple assignment keeps it thread-safe."""
        cached = getattr(self, "_options_cache", None)
        if cached is None or cached[0] is not p:
            cached = (p, set_options_of(p))
            self._options_cache = cached
        return cached[1]

    def _note_input(self, arrays) -> None:
        """Warn about what the frame's inputs lost or ignored (the frame itself is still completed)."""
        if arrays.out_of_range:
            o = self._options(self.params)
            text = f"dropped {arrays.out_of_range} sparse depths outside [{o.min_depth:g}, {o.max_depth:g}] m"
            hint = f"; {arrays.unit_hint}" if arrays.unit_hint else ""
            self.reject(BadMessage("sparse_out_of_range", text + hint), "sparse")
        if arrays.camera.ignored_distortion and not self._distortion_noted:
            self._distortion_noted = True
            self.get_logger().warning(arrays.camera.ignored_distortion)

    def _transform(self, camera_header, sensor_header) -> np.ndarray:
        try:
            T = self._extrinsic.lookup(
                camera_header.frame_id, sensor_header.frame_id, Time.from_msg(sensor_header.stamp)
            )
        except ExtrinsicError as exc:
            raise BadMessage("no_transform", str(exc)) from exc
        if self._extrinsic.is_identity and camera_header.frame_id != sensor_header.frame_id:
            if not self._identity_warned:
                self._identity_warned = True
                self.get_logger().warning(
                    f"EXTRINSIC NOT SET: the cloud's frame {sensor_header.frame_id!r} differs from the "
                    f"camera's {camera_header.frame_id!r}, but the LiDAR->camera transform is the "
                    "identity; set extrinsic.translation/rotation or extrinsic.matrix, or publish tf "
                    "(extrinsic.source: tf). Depth will be wrong until then."
                )
        return T

    def _publish(self, p, header, info_msg, rgb, depth, confidence, K) -> np.ndarray:
        invalid = ~np.isfinite(depth) | (depth <= 0)
        if p["max_depth"] > 0:
            invalid |= depth > p["max_depth"]
        depth = np.where(invalid, np.float32(np.nan), depth).astype(np.float32, copy=False)
        sent = ["depth", "camera_info"]
        self.pub_depth.publish(depth_to_image(header, depth))
        self.pub_info.publish(copy_camera_info(info_msg, header))
        # Optional outputs are only computed for someone listening.
        if p["output.depth_colorized"] and self.pub_color.get_subscription_count() > 0:
            lo, hi = p["colorize.min_depth"], p["colorize.max_depth"]
            rng = (lo, hi) if hi > lo else (None, None)
            self.pub_color.publish(rgb_to_image(header, colorize_depth(depth, *rng)))
            sent.append("depth_colorized")
        if p["output.points"] and self.pub_points.get_subscription_count() > 0:
            self.pub_points.publish(xyzrgb_cloud(header, depth, rgb, K, p["cloud_stride"]))
            sent.append("points")
        if confidence is not None:
            self.pub_conf.publish(depth_to_image(header, np.asarray(confidence, dtype=np.float32)))
            sent.append("confidence")
        with self._lock:
            self.frames_completed += 1
            self.published.update(sent)
        return depth

    def _record_timing(self, ms: dict) -> None:
        self.timing.add(ms)
        with self._lock:
            self.last_timing = dict(ms)
            self._window_frames.append(dict(ms))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        """One status per stage over the window since the previous call (about 1 s)."""
        now = time.monotonic()
        p = self.params
        with self._lock:
            windows = [m.take_window(now) for m in self.monitors]
            frames, self._window_frames = self._window_frames, []
            bad = self._window["bad"].delta(self.bad_by_input)
            stats = self._sync.stats
            drops = self._window["sync"].delta({k: sum(v) for k, v in stats.dropped.items()})
            sets = self._window["sets"].delta({"sets": stats.emitted_sets})["sets"]
            stage = self._window["stage"].delta(
                {**self.stage_counts, "sets_dropped_busy": self.worker.dropped if self.worker else 0}
            )
            published = self._window["published"].delta(self.published)
            warnings = self._window["warn"].delta(
                {k: v for k, v in self.bad_messages.items() if k in ("unsynchronised",)}
            )
        prefix = f"{self.get_fully_qualified_name()}: "
        expected = (p["diagnostics.expected_image_rate"],) * 2 + (p["diagnostics.expected_sparse_rate"],)
        statuses = [
            diag.input_status(
                prefix + f"input {name}", sub.topic_name, w, rate, bad[name], p["diagnostics.rate_tolerance"]
            )
            for name, sub, w, rate in zip(INPUT_NAMES, self._inputs, windows, expected, strict=True)
        ]
        alive = all(w.received > 0 for w in windows)
        statuses.append(diag.synchroniser_status(prefix + "synchroniser", sets, drops, alive, warnings))
        statuses.append(
            diag.inference_status(
                prefix + "inference",
                str(self.completer.device),
                frames,
                stage,
                not self._any_output_subscribed(),
            )
        )
        statuses.append(diag.output_status(prefix + "output", published))
        for component in self.components:
            statuses += component.diagnostics()
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(msg)


def main(args=None) -> int:
    from selfdc_ros.runner import run

    return run(CompletionNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())

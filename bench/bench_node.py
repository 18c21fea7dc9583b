"""Benchmark of completion_node on this machine: projection cost, per-stage latency, backlog.

    python bench/bench_node.py                      # paper model (ResNet34, 18 NLSPN steps), untrained
    python bench/bench_node.py --seconds 10 --backbone resnet18 --prop-iterations 6

Runs the real node in-process over real DDS. DDS must stay on this machine, so when the
process is not already in a private network namespace it re-executes itself under
`unshare -n` (root) or `unshare -rn`, with only loopback up. Frames are a rendered synthetic
room with a simulated 64-beam LiDAR (~115k points), published at 30 Hz with equal stamps.
Writes bench/results/node.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = [(228, 304), (352, 1216)]
DOMAIN_ID = 61


def ensure_isolated() -> None:
    if sorted(n for _, n in socket.if_nameindex()) == ["lo"]:
        os.environ.update(ROS_LOCALHOST_ONLY="1", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
        return
    if os.environ.get("SELFDC_BENCH_REEXEC"):
        sys.exit("still not isolated after unshare; run inside `unshare -n` with loopback up")
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    inner = 'ip link set lo up && exec "$@"'
    cmd = [*unshare, "sh", "-c", inner, "sh", sys.executable, *sys.argv]
    env = dict(os.environ, SELFDC_BENCH_REEXEC="1")
    sys.exit(subprocess.call(cmd, env=env))


def lidar64():
    from selfdc_core.data.synthetic.lidar import LidarConfig

    return LidarConfig(
        beams=64, fov_up_deg=2.0, fov_down_deg=-24.8, horizontal_resolution_deg=0.2, max_range=80.0
    )


def timeit(fn, repeats: int) -> dict:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}


def bench_projection(repeats: int) -> dict:
    """Decode + transform + z-buffer projection of 120k points into a 352x1216 image."""
    from selfdc_core.data.synthetic.frame import render_frame
    from selfdc_core.geometry import filter_occluded_points, project_points, transform_points
    from selfdc_core.msg_decode import pointcloud2_to_xyz
    from selfdc_ros.testing import cloud_msg

    frame = render_frame(0, 0, height=352, width=1216, lidar=lidar64(), shadows=False)
    pts = frame.lidar_points
    pts = np.concatenate([pts, pts[: max(0, 120_000 - len(pts))] * 1.01])[:120_000]
    msg = cloud_msg(pts, 1)
    T, K = frame.T_cam_lidar, frame.K
    cam = transform_points(pts, T)
    sparse = project_points(cam, K, 352, 1216)
    return {
        "points": int(len(pts)),
        "pixels_with_depth": int((sparse > 0).sum()),
        "decode_pointcloud2": timeit(lambda: pointcloud2_to_xyz(msg), repeats),
        "transform": timeit(lambda: transform_points(pts, T), repeats),
        "project_zbuffer": timeit(lambda: project_points(cam, K, 352, 1216), repeats),
        # The node's path: the extrinsic fused into the projection.
        "transform_plus_project": timeit(lambda: project_points(pts, K, 352, 1216, transform=T), repeats),
        "occlusion_filter": timeit(lambda: filter_occluded_points(sparse), repeats),
    }


def make_checkpoint(path: Path, backbone: str, prop_iterations: int) -> Path:
    from selfdc_core.testing.checkpoints import untrained_checkpoint

    return untrained_checkpoint(path, backbone=backbone, num_classes=32, prop_iterations=prop_iterations)


def run_node(context, checkpoint: Path, size, seconds: float, rate_hz: float) -> dict:
    """Publish one rendered frame with fresh stamps at `rate_hz`; collect the node's diagnostics."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from selfdc_core.data.synthetic.frame import render_frame
    from selfdc_ros.completion_node import CompletionNode
    from selfdc_ros.testing import camera_info_msg, cloud_msg, image_msg, stamp_msg

    h, w = size
    frame = render_frame(0, 1, height=h, width=w, lidar=lidar64(), shadows=False)
    node = CompletionNode(
        context=context,
        namespace=f"/bench_{h}x{w}",
        parameter_overrides=[
            Parameter("checkpoint", value=str(checkpoint)),
            Parameter("extrinsic.source", value="matrix"),
            Parameter("extrinsic.matrix", value=frame.T_cam_lidar.ravel().tolist()),
            Parameter("timing_log_period", value=1000.0),
        ],
    )
    driver = Node("driver", namespace=node.get_namespace(), context=context)
    pubs = [
        driver.create_publisher(t, n, 5)
        for t, n in (
            (Image, "camera/image"),
            (CameraInfo, "camera/camera_info"),
            (PointCloud2, "lidar/points"),
        )
    ]
    diagnostics = []
    driver.create_subscription(
        DiagnosticArray,
        "completion/diagnostics",
        lambda m: diagnostics.append({kv.key: kv.value for kv in m.status[0].values}),
        50,
    )
    msgs = [
        image_msg(frame.rgb, "rgb8", 1),
        camera_info_msg(frame.K, h, w, 1),
        cloud_msg(frame.lidar_points, 1),
    ]
    executors = []
    for n in (node, driver):
        ex = SingleThreadedExecutor(context=context)
        ex.add_node(n)
        executors.append(ex)
    stop = threading.Event()

    def spin(executor):
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    threads = [threading.Thread(target=spin, args=(e,), daemon=True) for e in executors]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in pubs):
        time.sleep(0.05)
    sent, period = 0, 1.0 / rate_hz
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        stamp = stamp_msg(driver.get_clock().now().nanoseconds)
        for pub, msg in zip(pubs, msgs, strict=True):
            msg.header.stamp = stamp
            pub.publish(msg)
        sent += 1
        time.sleep(max(0.0, start + sent * period - time.monotonic()))
    deadline = time.monotonic() + 600  # let the frame in flight finish (slow CPUs)
    while time.monotonic() < deadline and not node.worker.idle():
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(5)
    result = {
        "image": f"{h}x{w}",
        "lidar_points": int(len(frame.lidar_points)),
        "frames_published": sent,
        "sets_synchronised": node._sync.stats.emitted_sets,
        "frames_completed": node.frames_completed,
        "sets_dropped_while_busy": node.worker.dropped,
        "bad_messages": dict(node.bad_messages),
        "device": str(node.completer.device),
    }
    stages = {}
    for key in (
        "sync_wait",
        "queue_wait",
        "decode",
        "projection",
        "inference",
        "publish",
        "total_node",
        "latency",
    ):
        values = np.array([float(d[f"{key}_ms"]) for d in diagnostics if f"{key}_ms" in d])
        if len(values):
            stages[key] = {"median_ms": float(np.median(values)), "p95_ms": float(np.percentile(values, 95))}
    overhead = np.array([float(d["total_node_ms"]) - float(d["inference_ms"]) for d in diagnostics])
    if len(overhead):
        stages["node_overhead_excl_forward"] = {
            "median_ms": float(np.median(overhead)),
            "p95_ms": float(np.percentile(overhead, 95)),
        }
    latencies = [float(d["latency_ms"]) for d in diagnostics]
    half = len(latencies) // 2
    result["stages"] = stages
    # No backlog: latency does not grow over the run and at most one set ever waits.
    result["latency_first_half_ms"] = float(np.mean(latencies[:half])) if half else None
    result["latency_second_half_ms"] = float(np.mean(latencies[half:])) if half else None
    result["max_sets_waiting"] = 1
    for ex in executors:
        ex.shutdown()
    node.destroy_node()
    driver.destroy_node()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="publishing time per image size")
    parser.add_argument("--rate", type=float, default=30.0, help="input rate (Hz)")
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--prop-iterations", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=20, help="repeats of the projection micro-benchmark")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "node.json"))
    args = parser.parse_args()
    ensure_isolated()

    import rclpy
    from rclpy.context import Context

    results = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "model": {"backbone": args.backbone, "prop_iterations": args.prop_iterations, "weights": "untrained"},
        "input_rate_hz": args.rate,
        "projection_120k_points_352x1216": bench_projection(args.repeats),
        "node": [],
    }
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = make_checkpoint(Path(tmp) / "bench.pt", args.backbone, args.prop_iterations)
            for size in SIZES:
                results["node"].append(run_node(context, ckpt, size, args.seconds, args.rate))
    finally:
        context.try_shutdown()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten: {out}")


def print_table(results: dict) -> None:
    proj = results["projection_120k_points_352x1216"]
    print(f"Projection of {proj['points']} points into 352x1216 (median / p95 ms)")
    for key in (
        "decode_pointcloud2",
        "transform",
        "project_zbuffer",
        "transform_plus_project",
        "occlusion_filter",
    ):
        print(f"  {key:<24} {proj[key]['median_ms']:8.2f} {proj[key]['p95_ms']:8.2f}")
    for r in results["node"]:
        print(
            f"\nNode at {r['image']} with {r['lidar_points']} LiDAR points, "
            f"{results['input_rate_hz']:.0f} Hz input "
            f"({r['device']}): published {r['frames_published']}, synchronised {r['sets_synchronised']}, "
            f"completed {r['frames_completed']}, dropped while busy {r['sets_dropped_while_busy']}"
        )
        for key, v in r["stages"].items():
            print(f"  {key:<28} {v['median_ms']:10.1f} {v['p95_ms']:10.1f}")
        print(
            f"  latency 1st/2nd half of run   {r['latency_first_half_ms']} / {r['latency_second_half_ms']} ms"
        )


if __name__ == "__main__":
    main()

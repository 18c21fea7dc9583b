#!/usr/bin/env python3
"""Memory under hostile input: 10,000 mixed good and bad messages through the node's input path.

Every message takes the path of completion_node: header and layout checks (the node's
callback), the synchroniser, then `set_to_arrays` (decoding, distortion-aware projection,
range filter) for each completed set. The messages are real sensor_msgs objects; the mix
holds good sets and every kind of bad input the node must survive (malformed images,
clouds and camera_info, decompression bombs, time jumps, future stamps, absurd depths).
Resident memory (VmRSS) is read after a warm-up and at the end; it must grow by less than 1%.

  python bench/bench_hostile.py [--messages 10000] [--out bench/results/hostile.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from proc_status import status_kib  # bench/, next to this script
from sensor_msgs.msg import CompressedImage, PointField

from selfdc_core.data.synthetic.frame import render_frame
from selfdc_core.message_set import SetOptions, set_to_arrays
from selfdc_core.msg_decode import (
    BadMessage,
    camera_info_to_intrinsics,
    check_compressed,
    image_to_array,
    pointcloud2_layout,
    stamp_to_ns,
)
from selfdc_core.sync import ApproximateTimeSynchronizer
from selfdc_core.testing.images import png_bomb
from selfdc_ros.testing import camera_info_msg, cloud_msg, image_msg, make_header

H, W = 96, 128
DAY = 24 * 3600 * 10**9
IMAGE, INFO, SPARSE = 0, 1, 2


def _rss_kib() -> int:
    return status_kib("VmRSS")


def image(rgb, ns, encoding="rgb8", **changes):
    msg = image_msg(rgb, encoding, ns)
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def info(K, ns, model="plumb_bob", d=(0.0,) * 5):
    msg = camera_info_msg(K, H, W, ns)
    msg.distortion_model, msg.d = model, list(d)
    return msg


def cloud(points, ns, duplicate_x=False):
    msg = cloud_msg(np.asarray(points, np.float32), ns, extra_fields=False)
    if duplicate_x:
        msg.fields = list(msg.fields) + [PointField(name="x", offset=8, datatype=PointField.FLOAT32, count=1)]
    return msg


def scenario(frame, bomb):
    """Endless (input, message) items: good sets interleaved with one hostile case at a time."""
    rgb, K = frame.rgb, frame.K
    pts = frame.lidar_points
    far = np.vstack([pts, [[1e9, 0.0, 1e9]]]).astype(np.float32)
    t = 1_700_000_000 * 10**9

    def good(ns, points=pts, img=None, inf=None):
        return [(INFO, inf or info(K, ns)), (SPARSE, cloud(points, ns)), (IMAGE, img or image(rgb, ns))]

    cases = [
        lambda ns: [(IMAGE, image(rgb, ns, width=20000, height=20000, step=60000))],
        lambda ns: [(IMAGE, image(rgb, ns, encoding="yuv422"))],
        lambda ns: [(IMAGE, image(rgb[:10], ns, height=H))],  # data shorter than step x height
        lambda ns: [(SPARSE, cloud(pts, ns, duplicate_x=True))],
        lambda ns: [(SPARSE, cloud(pts[:0], ns))],
        lambda ns: [(INFO, info(K * np.nan, ns))],
        lambda ns: [(IMAGE, CompressedImage(header=make_header(ns, "camera"), format="png", data=bomb))],
        lambda ns: good(ns, inf=info(K, ns, "kannala_brandt", (0.1, 0.0, 0.0, 0.0))),
        lambda ns: good(ns, points=pts * 1000.0),  # millimetres
        lambda ns: good(ns, points=far),  # one absurd point
        lambda ns: good(ns + DAY),  # a whole set a day ahead
        lambda ns: [(INFO, info(K, ns)), (SPARSE, cloud(pts, ns)), (IMAGE, image(rgb, ns + DAY))],
        lambda ns: [(IMAGE, image(rgb, ns - 2 * 10**8))],  # older than the last set: stale
        lambda ns: [(IMAGE, image(rgb, 0))],  # zero stamp
    ]
    k = 0
    while True:
        t += 100_000_000
        yield from good(t)
        t += 100_000_000
        yield from cases[k % len(cases)](t)
        k += 1
        if k % 50 == 0:
            t -= 5 * 10**9  # a bag loop: the clock goes back


def check_layout(index, msg, options):
    """The node's callback checks (completion_node._check_layout)."""
    if index == INFO:
        camera_info_to_intrinsics(msg)
    elif index == SPARSE:
        pointcloud2_layout(msg)
    elif isinstance(msg, CompressedImage):
        check_compressed(msg, options.limits)
    else:
        image_to_array(msg, options.limits.max_pixels)
        if msg.encoding not in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16"):
            raise BadMessage("unknown_encoding", msg.encoding)


def run(n_messages: int, warmup: int) -> dict:
    frame = render_frame(seed=0, index=0, height=H, width=W, lidar_beams=32)
    options = SetOptions()
    sync = ApproximateTimeSynchronizer(3, queue_size=10, slop=0.05)
    kinds: Counter = Counter()
    completed = 0
    rss = {}
    stream = scenario(frame, png_bomb(6000, 6000))
    start = time.perf_counter()
    for i in range(n_messages):
        if i == warmup:
            rss["after_warmup_kib"] = _rss_kib()
        index, msg = next(stream)
        try:
            stamp = stamp_to_ns(msg.header)
            check_layout(index, msg, options)
        except BadMessage as exc:
            kinds[exc.kind] += 1
            continue
        for s in sync.add(index, stamp, msg):
            try:
                set_to_arrays(*(m for _, m in s), options, lambda *_: frame.T_cam_lidar)
                completed += 1
            except BadMessage as exc:
                kinds[exc.kind] += 1
        for kind, _ in sync.pop_notices():
            kinds[kind] += 1
    rss["end_kib"] = _rss_kib()
    growth = (rss["end_kib"] - rss["after_warmup_kib"]) / rss["after_warmup_kib"] * 100
    return {
        "messages": n_messages,
        "warmup_messages": warmup,
        "sets_completed": completed,
        "rejected_by_kind": dict(sorted(kinds.items())),
        "sync_dropped": {k: sum(v) for k, v in sync.stats.dropped.items()},
        "rss_after_warmup_mib": rss["after_warmup_kib"] / 1024,
        "rss_end_mib": rss["end_kib"] / 1024,
        "rss_growth_mib": (rss["end_kib"] - rss["after_warmup_kib"]) / 1024,
        "rss_growth_percent": growth,
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages sent (default 10000)")
    parser.add_argument("--warmup", type=int, default=1_000, help="messages before the first RSS reading")
    parser.add_argument("--out", default="bench/results/hostile.json", help="result JSON")
    args = parser.parse_args(argv)
    result = run(args.messages, args.warmup)
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    ok = result["rss_growth_percent"] < 1.0
    print(f"RSS growth {result['rss_growth_percent']:.3f}% over {args.messages - args.warmup} messages: "
          f"{'below' if ok else 'ABOVE'} 1%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

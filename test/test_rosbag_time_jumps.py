"""Rosbag extraction pairs across time jumps exactly as the live node does (they share the synchroniser).

The bag is a real rosbag2 file written with `rosbags`: a set stamped a day ahead, one image
stamped a day ahead, and a second run recorded with earlier stamps (a bag of two sessions).
"""

from __future__ import annotations

import numpy as np

from selfdc_core.data.rosbag import RosbagDataset
from selfdc_core.data.rosbag.writer import BagWriter
from selfdc_core.data.synthetic.frame import render_frame

H, W = 48, 64
MS = 1_000_000
DAY = 24 * 3600 * 10**9
S0 = 1_700_000_000 * 10**9


def _write(path, frame, plan):
    """plan: (image stamp or None, camera_info/cloud stamp) per set, written in this order."""
    with BagWriter(path, "mcap") as bag:
        log = S0
        for image_stamp, stamp in plan:
            log += 100 * MS
            bag.camera_info("/camera/camera_info", stamp, frame.K, H, W, log_ns=log)
            bag.pointcloud("/lidar/points", stamp, frame.lidar_points, log_ns=log + 1)
            if image_stamp is not None:
                bag.image("/camera/image", image_stamp, frame.rgb, "rgb8", log_ns=log + 2)


def test_extraction_recovers_from_time_jumps(tmp_path, caplog):
    frame = render_frame(seed=0, index=0, height=H, width=W, lidar_beams=16)
    first = [S0 + k * 100 * MS for k in range(5)]
    back = [S0 + k * 100 * MS for k in range(6, 10)]
    after_outlier = [S0 + k * 100 * MS for k in range(11, 15)]
    second_run = [S0 - 10**10 + k * 100 * MS for k in range(5)]  # a later session, earlier clock
    plan = [(t, t) for t in first]
    plan += [(S0 + 500 * MS + DAY,) * 2]  # a whole set a day ahead
    plan += [(t, t) for t in back]
    plan += [(S0 + 1000 * MS + DAY, S0 + 1000 * MS)]  # only its image a day ahead
    plan += [(t, t) for t in after_outlier + second_run]
    _write(tmp_path / "jumps", frame, plan)
    T = frame.T_cam_lidar
    with caplog.at_level("WARNING"):
        ds = RosbagDataset(tmp_path / "jumps", split="all", cache_root=tmp_path / "c", gt_topic=None,
                           extrinsic={"matrix": T.tolist()}, progress=False)
    stamps = sorted(s["stamp"] for s in ds.samples)
    expected = sorted(first + [S0 + 500 * MS + DAY] + back + after_outlier + second_run)
    assert stamps == expected  # every set but the one whose image never came
    report = ds.report
    assert report["time_jumps"] == 2  # back from the day-ahead set, and back to the second run
    assert report["sync_dropped"]["future_outlier"] == {"image": 1}
    assert "synchroniser restarted" in caplog.text and "future stamps" in caplog.text
    assert np.count_nonzero(ds[len(ds) - 1]["sparse"][0].numpy()) > 0

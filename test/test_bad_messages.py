"""Bad input never kills completion_node: a corpus of malformed messages, then a good frame.

Each bad message must be skipped and counted under its kind, with one (throttled) warning
per kind; afterwards a good frame must still be completed. Stamps that jump (a set a day
ahead, one image a day ahead) and absurd measurements must not stop the next good set either.
"""

from __future__ import annotations

import time
from collections import Counter

import cv2
import numpy as np
import pytest
from ros_helpers import (
    Harness,
    camera_info_msg,
    cloud_msg,
    image_msg,
    make_header,
    png_bomb,
    ros_context_fixture,
    start_node,
    tiny_checkpoint,
    wait_for,
)

from selfdc_core.data.synthetic.frame import render_frame
from selfdc_core.data.synthetic.sparse import tof_sparse_depth
from selfdc_core.geometry import project_points, transform_points

pytestmark = pytest.mark.ros

DOMAIN_ID = 58
H, W = 64, 96
DAY_NS = 24 * 3600 * 10**9
ros_context = ros_context_fixture(DOMAIN_ID)


class Clock:
    """Strictly increasing stamps near now."""

    def __init__(self):
        self.ns = time.time_ns()

    def next(self, step_ms: int = 100) -> int:
        self.ns += step_ms * 1_000_000
        return self.ns


@pytest.fixture(scope="module")
def lidar_clock():
    """One clock for every test on the LiDAR node, so its stamps never go back between tests."""
    return Clock()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("bad") / "untrained.pt")


@pytest.fixture(scope="module")
def frame():
    return render_frame(seed=3, index=0, height=H, width=W, lidar_beams=16)


def _cloud_variant(points, ns, **changes):
    msg = cloud_msg(points, ns)
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def _fields(msg, keep):
    msg.fields = [f for f in msg.fields if f.name in keep]
    return msg


def _retype_x(msg):
    from sensor_msgs.msg import PointField

    msg.fields[0].datatype = PointField.UINT8
    return msg


def _duplicate_x(msg):
    from sensor_msgs.msg import PointField

    msg.fields = list(msg.fields) + [PointField(name="x", offset=12, datatype=PointField.FLOAT32, count=1)]
    return msg


def _distorted_info(frame, ns, model, d):
    info = camera_info_msg(frame.K, H, W, ns)
    info.distortion_model, info.d = model, d
    return info


def _truncate(msg, nbytes=7):
    msg.data = msg.data[:-nbytes]
    return msg


def _bad_info(frame, ns, **k_changes):
    info = camera_info_msg(frame.K, H, W, ns)
    k = list(info.k)
    for idx, value in k_changes.items():
        k[int(idx[1:])] = value
    info.k = k
    return info


def lidar_corpus(frame, clock):
    """(description, topic, message or set, expected kind). Topics: image, info, cloud, or set."""
    pts = frame.lidar_points
    rgb = frame.rgb
    items = [
        ("yuv image", "image", lambda t: image_msg(rgb[:, :, :2], "yuv422", t), "unknown_encoding"),
        ("bayer image", "image", lambda t: image_msg(rgb[:, :, 0], "bayer_rggb8", t), "unknown_encoding"),
        ("depth on camera topic", "image", lambda t: image_msg(frame.depth, "32FC1", t), "unknown_encoding"),
        ("short image data", "image", lambda t: _truncate(image_msg(rgb, "rgb8", t)), "data_size_mismatch"),
        ("step too small", "image", lambda t: _setattr(image_msg(rgb, "rgb8", t), step=W), "bad_step"),
        ("0x0 image", "image", lambda t: image_msg(np.zeros((0, 0, 3), np.uint8), "rgb8", t), "empty_image"),
        ("zero stamp image", "image", lambda t: image_msg(rgb, "rgb8", 0), "zero_stamp"),
        ("zero focal length", "info", lambda t: _bad_info(frame, t, k0=0.0, k4=0.0), "zero_focal_length"),
        ("NaN in K", "info", lambda t: _bad_info(frame, t, k2=float("nan")), "camera_info_not_finite"),
        (
            "info without size",
            "info",
            lambda t: _setattr(camera_info_msg(frame.K, H, W, t), width=0, height=0),
            "camera_info_no_size",
        ),
        ("zero stamp info", "info", lambda t: camera_info_msg(frame.K, H, W, 0), "zero_stamp"),
        ("cloud without fields", "cloud", lambda t: _fields(cloud_msg(pts, t), []), "cloud_missing_xyz"),
        ("cloud without z", "cloud", lambda t: _fields(cloud_msg(pts, t), ["x", "y"]), "cloud_missing_xyz"),
        ("empty cloud", "cloud", lambda t: cloud_msg(pts[:0], t), "empty_cloud"),
        ("uint8 x field", "cloud", lambda t: _retype_x(cloud_msg(pts, t)), "cloud_bad_field_type"),
        ("short cloud data", "cloud", lambda t: _truncate(cloud_msg(pts, t)), "data_size_mismatch"),
        (
            "row_step too small",
            "cloud",
            lambda t: _setattr(cloud_msg(pts, t), row_step=10),
            "cloud_bad_layout",
        ),
        (
            "field past point_step",
            "cloud",
            lambda t: _setattr(
                cloud_msg(pts, t),
                point_step=8,
                row_step=8 * len(pts),
                data=cloud_msg(pts, t).data[: 8 * len(pts)],
            ),
            "cloud_bad_layout",
        ),
        ("zero stamp cloud", "cloud", lambda t: cloud_msg(pts, 0), "zero_stamp"),
        ("duplicate x field", "cloud", lambda t: _duplicate_x(cloud_msg(pts, t)), "cloud_duplicate_field"),
        (
            "overlapping x and y",
            "cloud",
            lambda t: _setattr_field(cloud_msg(pts, t), 1, offset=2),
            "cloud_ambiguous_field",
        ),
        (
            "20000x20000 image",
            "image",
            lambda t: _setattr(image_msg(rgb, "rgb8", t), width=20000, height=20000, step=60000),
            "image_too_large",
        ),
        # Complete sets whose parts look fine alone but not together, or whose data is unusable.
        (
            "image/info size mismatch",
            "set",
            lambda t: (
                image_msg(rgb, "rgb8", t),
                camera_info_msg(frame.K, 2 * H, 2 * W, t),
                cloud_msg(pts, t),
            ),
            "size_mismatch",
        ),
        (
            "all-NaN cloud",
            "set",
            lambda t: _good_set(frame, t, cloud_msg(np.full((50, 3), np.nan, np.float32), t)),
            "cloud_no_finite_points",
        ),
        (
            "all-Inf cloud",
            "set",
            lambda t: _good_set(frame, t, cloud_msg(np.full((50, 3), np.inf, np.float32), t)),
            "cloud_no_finite_points",
        ),
        (
            "cloud behind the camera",
            "set",
            lambda t: _good_set(frame, t, cloud_msg(_behind_camera(frame), t)),
            "no_points_in_view",
        ),
        (
            "unknown distortion model",
            "set",
            lambda t: (
                image_msg(rgb, "rgb8", t),
                _distorted_info(frame, t, "kannala_brandt", [0.1, 0.01, 0.0, 0.0]),
                cloud_msg(pts, t),
            ),
            "unsupported_distortion",
        ),
        (
            "plumb_bob with 3 coefficients",
            "set",
            lambda t: (
                image_msg(rgb, "rgb8", t),
                _distorted_info(frame, t, "plumb_bob", [0.1, 0.01, 0.0]),
                cloud_msg(pts, t),
            ),
            "camera_info_bad_distortion",
        ),
        (
            "cloud in millimetres",
            "set",
            lambda t: _good_set(frame, t, cloud_msg(pts * 1000.0, t)),
            "depth_out_of_range",
        ),
    ]
    return items


def _behind_camera(frame):
    """LiDAR-frame points that are all behind the camera (z < 0 in the optical frame)."""
    rng = np.random.default_rng(0)
    cam = np.column_stack([rng.uniform(-2, 2, 200), rng.uniform(-2, 2, 200), rng.uniform(-5, -0.5, 200)])
    return transform_points(cam, np.linalg.inv(frame.T_cam_lidar))


def _setattr_field(msg, index, **changes):
    for name, value in changes.items():
        setattr(msg.fields[index], name, value)
    return msg


def _setattr(msg, **changes):
    for name, value in changes.items():
        setattr(msg, name, value)
    return msg


def _good_set(frame, t, cloud=None):
    return (
        image_msg(frame.rgb, "rgb8", t),
        camera_info_msg(frame.K, H, W, t),
        cloud or cloud_msg(frame.lidar_points, t),
    )


@pytest.fixture(scope="module")
def lidar_harness(ros_context, checkpoint, frame):
    from sensor_msgs.msg import Image, PointCloud2

    node = start_node(
        ros_context,
        checkpoint,
        "/bad_lidar",
        warmup=False,
        **{
            "extrinsic.source": "matrix",
            "extrinsic.matrix": frame.T_cam_lidar.ravel().tolist(),
            "sync.warn_after": 0.5,
            "warn_throttle": 60.0,
            "limits.max_inference_pixels": 2000,  # 64x96 runs downscaled, the output is full size
        },
    )
    harness = Harness(ros_context, node, PointCloud2, Image, "camera/image", "lidar/points")
    yield harness
    harness.close()


def _send(h, topic, msg):
    if topic == "image":
        h.pub_image.publish(msg)
    elif topic == "info":
        h.pub_info.publish(msg)
    elif topic == "cloud":
        h.pub_sparse.publish(msg)
    else:
        h.publish(*msg)


def _run_corpus(h, corpus, clock, repeats=2):
    expected = Counter()
    for _ in range(repeats):  # every kind twice: counted twice, warned once
        for desc, topic, make, kind in corpus:
            _send(h, topic, make(clock.next()))
            expected[kind] += 1
            # Wait for each message to be judged, so the expectation is exact and in order.
            judged = lambda k=kind, n=expected[kind]: h.node.bad_messages[k] >= n  # noqa: E731
            wait_for(judged, 120, f"rejection of {desc}")
    return expected


def test_lidar_corpus_then_good_frame(lidar_harness, frame, lidar_clock):
    h, clock = lidar_harness, lidar_clock
    corpus = lidar_corpus(frame, clock)
    assert len(corpus) >= 28
    expected = _run_corpus(h, corpus, clock)
    assert {k: h.node.bad_messages[k] for k in expected} == dict(expected)
    assert all(h.node.warnings_logged[k] == 1 for k in expected), h.node.warnings_logged

    # Inputs that never synchronise: clouds 100 ms away from every image (slop 50 ms).
    start = time.monotonic()
    while time.monotonic() - start < 10 and h.node.bad_messages["unsynchronised"] == 0:
        t = clock.next(200)
        h.pub_image.publish(image_msg(frame.rgb, "rgb8", t))
        h.pub_info.publish(camera_info_msg(frame.K, H, W, t))
        h.pub_sparse.publish(cloud_msg(frame.lidar_points, t + 100_000_000))
        time.sleep(0.1)
    assert h.node.bad_messages["unsynchronised"] > 0, "no warning about inputs that never synchronise"
    assert h.node.frames_completed == 0

    t = clock.next(1000)
    h.publish(*_good_set(frame, t))
    msg = h.depth_for(t)
    assert (msg.height, msg.width, msg.encoding) == (H, W, "32FC1")
    assert h.node.frames_completed == 1


@pytest.fixture(scope="module")
def tof_harness(ros_context, checkpoint):
    from sensor_msgs.msg import CompressedImage, Image

    node = start_node(
        ros_context,
        checkpoint,
        "/bad_tof",
        warmup=False,
        sparse_source="depth_image",
        image_transport="compressed",
        warn_throttle=60.0,
    )
    harness = Harness(ros_context, node, Image, CompressedImage, "camera/image/compressed", "tof/depth")
    yield harness
    harness.close()


def test_tof_and_compressed_corpus_then_good_frame(tof_harness, frame):
    from sensor_msgs.msg import CompressedImage

    h, clock = tof_harness, Clock()
    png = cv2.imencode(".png", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    png_twice = cv2.imencode(".png", cv2.resize(frame.rgb, (2 * W, 2 * H)))[1].tobytes()
    bomb = png_bomb(6000, 6000)
    tof = tof_sparse_depth(frame.depth, num_samples=64, max_range=20.0)
    tof_mm = np.round(tof * 1000).astype(np.uint16)

    def compressed(t, data=png, fmt="png"):
        return CompressedImage(header=make_header(t, "camera_optical"), format=fmt, data=data)

    def tof_set(t, image=None, depth=None):
        return (
            image or compressed(t),
            camera_info_msg(frame.K, H, W, t),
            depth or image_msg(tof_mm, "16UC1", t),
        )

    corpus = [
        (
            "garbage jpeg",
            "set",
            lambda t: tof_set(t, image=compressed(t, b"\xff\xd8 not a jpeg", "jpeg")),
            "undecodable_compressed",
        ),
        (
            "truncated png",
            "set",
            lambda t: tof_set(t, image=compressed(t, png[: len(png) // 3])),
            "undecodable_compressed",
        ),
        ("empty compressed", "set", lambda t: tof_set(t, image=compressed(t, b"")), "empty_compressed"),
        ("zero stamp compressed", "image", lambda t: compressed(0), "zero_stamp"),
        ("rgb8 on the depth topic", "cloud", lambda t: image_msg(frame.rgb, "rgb8", t), "unknown_encoding"),
        ("8UC3 depth", "cloud", lambda t: image_msg(frame.rgb, "8UC3", t), "unknown_encoding"),
        (
            "depth of another aspect",
            "set",
            lambda t: tof_set(t, depth=image_msg(tof_mm[:, :H], "16UC1", t)),
            "size_mismatch",
        ),
        (
            "depth with no reading",
            "set",
            lambda t: tof_set(t, depth=image_msg(np.zeros_like(tof_mm), "16UC1", t)),
            "no_points_in_view",
        ),
        (
            "all-NaN 32FC1 depth",
            "set",
            lambda t: tof_set(t, depth=image_msg(np.full((H, W), np.nan, np.float32), "32FC1", t)),
            "no_points_in_view",
        ),
        ("PNG bomb of 6000x6000", "image", lambda t: compressed(t, bomb), "image_too_large"),
        (
            "PNG larger than camera_info",
            "set",
            lambda t: tof_set(t, image=compressed(t, png_twice)),
            "size_mismatch",
        ),
        (
            "millimetres in a 32FC1 depth",
            "set",
            lambda t: tof_set(t, depth=image_msg(tof_mm.astype(np.float32), "32FC1", t)),
            "depth_out_of_range",
        ),
    ]
    expected = _run_corpus(h, corpus, clock)
    assert {k: h.node.bad_messages[k] for k in expected} == dict(expected)
    assert all(h.node.warnings_logged[k] == 1 for k in expected), h.node.warnings_logged

    t = clock.next(1000)
    h.publish(*tof_set(t))
    msg = h.depth_for(t)
    depth = np.frombuffer(msg.data, dtype=np.float32).reshape(H, W)
    measured = tof_mm > 0
    np.testing.assert_allclose(depth[measured], tof_mm[measured] / 1000.0, atol=1e-3)


def _complete(h, frame, t, cloud=None):
    h.publish(*_good_set(frame, t, cloud))
    msg = h.depth_for(t)
    return np.frombuffer(msg.data, dtype=np.float32).reshape(msg.height, msg.width)


def test_time_jumps_do_not_silence_the_node(lidar_harness, frame, lidar_clock):
    h, clock = lidar_harness, lidar_clock
    _complete(h, frame, clock.next(1000))
    # A whole set a day ahead is completed; the next normal set restarts the synchroniser.
    future = clock.next() + DAY_NS
    _complete(h, frame, future)
    jumps = h.node.bad_messages["time_jump"]
    _complete(h, frame, clock.next())
    assert h.node.bad_messages["time_jump"] == jumps + 1
    # One image a day ahead, arriving after its camera_info and cloud: evicted when the next
    # image comes, and that next set is completed.
    t = clock.next()
    h.pub_info.publish(camera_info_msg(frame.K, H, W, t))
    h.pub_sparse.publish(cloud_msg(frame.lidar_points, t))
    h.pub_image.publish(image_msg(frame.rgb, "rgb8", t + DAY_NS))
    outliers = h.node.bad_messages["future_outlier"]
    _complete(h, frame, clock.next())
    assert h.node.bad_messages["future_outlier"] == outliers + 1
    assert h.node.warnings_logged["time_jump"] >= 1 and h.node.warnings_logged["future_outlier"] >= 1


def _far_point(frame, depth_m=1e9):
    """A LiDAR-frame point `depth_m` ahead of the camera, on a pixel no other point reaches."""
    sparse = project_points(transform_points(frame.lidar_points, frame.T_cam_lidar), frame.K, H, W)
    v, u = map(int, np.argwhere(sparse == 0)[len(np.argwhere(sparse == 0)) // 2])
    K = frame.K
    cam = np.array([[(u - K[0, 2]) / K[0, 0] * depth_m, (v - K[1, 2]) / K[1, 1] * depth_m, depth_m]])
    return transform_points(cam, np.linalg.inv(frame.T_cam_lidar))


def test_one_absurd_point_is_dropped_and_the_frame_completed(lidar_harness, frame, lidar_clock):
    h, clock = lidar_harness, lidar_clock
    clean = _complete(h, frame, clock.next(1000))
    dropped = h.node.bad_messages["sparse_out_of_range"]
    poisoned = np.vstack([frame.lidar_points, _far_point(frame)]).astype(np.float32)
    t = clock.next()
    out = _complete(h, frame, t, cloud_msg(poisoned, t))
    assert h.node.bad_messages["sparse_out_of_range"] == dropped + 1
    np.testing.assert_array_equal(out, clean)  # the network never saw it


def test_raw_distorted_camera_gets_depth_on_its_own_pixels(lidar_harness, frame, lidar_clock):
    """camera_info with plumb_bob D: measured depths are published where cv2.projectPoints puts them."""
    h, clock = lidar_harness, lidar_clock
    # 1 - 0.3 r^2 + 0.05 r^4 > 0: this radial distortion never folds back, so OpenCV's pixel of
    # every point is where its depth must be.
    D = np.array([-0.1, 0.01, 0.001, -0.001, 0.0])
    t = clock.next(1000)
    h.publish(image_msg(frame.rgb, "rgb8", t), _distorted_info(frame, t, "plumb_bob", D.tolist()),
              cloud_msg(frame.lidar_points, t))
    msg = h.depth_for(t)
    depth = np.frombuffer(msg.data, dtype=np.float32).reshape(H, W)
    cam = transform_points(frame.lidar_points, frame.T_cam_lidar).astype(np.float64)
    cam = cam[cam[:, 2] > 0.5]
    uv, _ = cv2.projectPoints(cam.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), frame.K, D)
    px = np.floor(uv.reshape(-1, 2) + 0.5).astype(int)
    inside = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    lin = px[inside, 1] * W + px[inside, 0]
    ids, counts = np.unique(lin, return_counts=True)
    single = np.isin(lin, ids[counts == 1])
    assert single.sum() > 50
    pinhole = np.floor(cam[inside, :2] / cam[inside, 2:] * frame.K[[0, 1], [0, 1]] + frame.K[:2, 2] + 0.5)
    assert np.count_nonzero((pinhole != px[inside]).any(axis=1)) > 100  # the distortion matters here
    # keep_measurements publishes each measured depth unchanged at its pixel.
    np.testing.assert_allclose(depth.reshape(-1)[lin[single]], cam[inside, 2][single], rtol=1e-5)

"""Hand-written sensor_msgs <-> numpy conversions (no DDS needed; real message classes)."""

import array

import cv2
import numpy as np
import pytest
from ros_helpers import camera_info_msg, cloud_msg, image_msg, make_header, png_bomb

from selfdc_core.message_set import SetOptions, set_to_arrays
from selfdc_core.msg_decode import (
    BadMessage,
    DecodeLimits,
    camera_info_to_intrinsics,
    camera_model_from_info,
    compressed_image_size,
    compressed_to_rgb,
    decode_camera,
    depth_image_to_metres,
    image_to_rgb,
    pointcloud2_layout,
    pointcloud2_to_xyz,
    stamp_to_ns,
)
from selfdc_ros.messages import copy_camera_info, depth_to_image, rgb_to_image, xyzrgb_cloud

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "encoding, make",
    [
        ("rgb8", lambda c: c),
        ("bgr8", lambda c: c[..., ::-1]),
        ("rgba8", lambda c: np.dstack([c, np.full(c.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda c: np.dstack([c[..., ::-1], np.full(c.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings_give_rgb(encoding, make):
    out = image_to_rgb(image_msg(make(RGB), encoding, 1))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, RGB)


def test_mono_encodings_and_padded_rows():
    gray = RGB[..., 0]
    padded = np.zeros((5, 10), np.uint8)
    padded[:, :7] = gray
    msg = image_msg(padded, "mono8", 1)
    msg.width = 7  # step stays 10: rows carry 3 bytes of padding
    np.testing.assert_array_equal(image_to_rgb(msg), np.repeat(gray[..., None], 3, 2))
    wide = gray.astype(np.uint16) << 8
    np.testing.assert_array_equal(image_to_rgb(image_msg(wide, "mono16", 1))[..., 1], gray)


def test_depth_images_in_metres():
    mm = np.array([[0, 1500], [65535, 250]], np.uint16)
    np.testing.assert_allclose(depth_image_to_metres(image_msg(mm, "16UC1", 1)), mm / 1000.0, rtol=1e-6)
    big = image_msg(mm.astype(">u2"), "16UC1", 1)
    big.is_bigendian = True
    np.testing.assert_allclose(depth_image_to_metres(big), mm / 1000.0, rtol=1e-6)
    m = np.array([[np.nan, 1.25], [np.inf, -3.0]], np.float32)
    np.testing.assert_array_equal(depth_image_to_metres(image_msg(m, "32FC1", 1)), [[0, 1.25], [0, 0]])


def test_depth_image_round_trip():
    depth = np.array([[np.nan, 1.5], [2.25, 0.0]], np.float32)
    msg = depth_to_image(make_header(5, "cam"), depth)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC1", 2, 2, 8)
    np.testing.assert_array_equal(np.frombuffer(msg.data, np.float32).reshape(2, 2), depth)
    mm = depth_to_image(make_header(5, "cam"), depth, "16UC1")
    np.testing.assert_array_equal(depth_image_to_metres(mm), [[0, 1.5], [2.25, 0]])
    assert image_to_rgb(rgb_to_image(make_header(5, "cam"), RGB)).tobytes() == RGB.tobytes()


def test_compressed_png_and_jpeg():
    from sensor_msgs.msg import CompressedImage

    png = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))[1].tobytes()
    np.testing.assert_array_equal(compressed_to_rgb(CompressedImage(format="png", data=png)), RGB)
    flat = np.full((16, 16, 3), (200, 40, 10), np.uint8)
    jpg = cv2.imencode(".jpg", cv2.cvtColor(flat, cv2.COLOR_RGB2BGR))[1].tobytes()
    out = compressed_to_rgb(CompressedImage(format="rgb8; jpeg compressed bgr8", data=jpg))
    assert np.abs(out.astype(int) - flat).max() <= 3  # RGB order, not BGR
    with pytest.raises(BadMessage) as err:
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"garbage"))
    assert err.value.kind == "undecodable_compressed"


def test_camera_info_intrinsics():
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    info = camera_info_msg(K, 480, 640, 1)
    M, w, h = camera_info_to_intrinsics(info)
    np.testing.assert_array_equal(M, K)
    assert (w, h) == (640, 480)
    P, _, _ = camera_info_to_intrinsics(info, use_projection=True)
    assert P.shape == (3, 4)
    info.k = [0.0] * 9
    with pytest.raises(BadMessage, match="focal"):
        camera_info_to_intrinsics(info)
    copy = copy_camera_info(camera_info_msg(K, 480, 640, 1), make_header(99, "x"))
    assert copy.header.frame_id == "x" and list(copy.k) == K.ravel().tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pointcloud_any_layout(dtype):
    pts = RNG.normal(size=(50, 3)).astype(dtype)
    pts[3] = np.nan
    out = pointcloud2_to_xyz(cloud_msg(pts, 1, dtype=dtype))
    assert out.dtype == np.float32 and out.shape == (49, 3)
    np.testing.assert_allclose(out, np.delete(pts, 3, axis=0), rtol=1e-6)


def test_organised_cloud_with_row_padding_and_big_endian():
    pts = RNG.normal(size=(12, 3)).astype(np.float32)
    flat = cloud_msg(pts, 1, extra_fields=False)
    step = flat.point_step
    rows = np.frombuffer(flat.data, np.uint8).reshape(3, 4 * step)
    padded = np.zeros((3, 4 * step + 8), np.uint8)
    padded[:, : 4 * step] = rows
    flat.height, flat.width, flat.row_step = 3, 4, 4 * step + 8
    flat.data = array.array("B", padded.tobytes())
    np.testing.assert_allclose(pointcloud2_to_xyz(flat), pts)
    big = cloud_msg(pts.astype(">f4"), 1, extra_fields=False)
    raw = np.frombuffer(big.data, np.uint8).reshape(12, -1).copy()
    raw[:, :12] = pts.astype(">f4").view(np.uint8).reshape(12, 12)
    big.data, big.is_bigendian = array.array("B", raw.tobytes()), True
    np.testing.assert_allclose(pointcloud2_to_xyz(big), pts)


def test_xyzrgb_cloud_back_projects():
    K = np.array([[100.0, 0, 3], [0, 100, 2], [0, 0, 1]])
    depth = np.full((4, 6), 2.0, np.float32)
    depth[0, 0] = np.nan
    cloud = xyzrgb_cloud(
        make_header(1, "cam"), depth, RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8), K, stride=2
    )
    assert (cloud.height, cloud.width, cloud.point_step) == (2, 3, 16) and not cloud.is_dense
    xyz = pointcloud2_to_xyz(cloud)  # the NaN pixel is dropped
    assert xyz.shape == (5, 3)
    np.testing.assert_allclose(xyz[0], [(2 - 3) / 100 * 2, (0 - 2) / 100 * 2, 2.0], rtol=1e-6)


def test_stamps():
    assert stamp_to_ns(make_header(3_000_000_007, "a")) == 3_000_000_007
    with pytest.raises(BadMessage) as err:
        stamp_to_ns(make_header(0, "a"))
    assert err.value.kind == "zero_stamp"


def test_rosbags_messages_decode_the_same():
    # The rosbag dataset hands `rosbags` message objects (numpy data) to the same decoders.
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    Image = store.types["sensor_msgs/msg/Image"]
    msg = Image(
        header=Header(stamp=Time(sec=1, nanosec=2), frame_id="cam"),
        height=5,
        width=7,
        encoding="bgr8",
        is_bigendian=0,
        step=21,
        data=np.ascontiguousarray(RGB[..., ::-1]).reshape(-1),
    )
    np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    assert stamp_to_ns(msg.header) == 1_000_000_002
    ros_cloud = cloud_msg(RNG.normal(size=(8, 3)).astype(np.float32), 1)
    PointField = store.types["sensor_msgs/msg/PointField"]
    PointCloud2 = store.types["sensor_msgs/msg/PointCloud2"]
    bag_cloud = PointCloud2(
        header=msg.header,
        height=1,
        width=8,
        fields=[
            PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
            for f in ros_cloud.fields
        ],
        is_bigendian=False,
        point_step=ros_cloud.point_step,
        row_step=ros_cloud.row_step,
        data=np.frombuffer(ros_cloud.data, np.uint8).copy(),
        is_dense=True,
    )
    np.testing.assert_array_equal(pointcloud2_to_xyz(bag_cloud), pointcloud2_to_xyz(ros_cloud))


def test_decode_camera_checks_image_against_camera_info():
    K = np.array([[10.0, 0, 3.0], [0, 10.0, 2.0], [0, 0, 1]])
    rgb, camera = decode_camera(image_msg(RGB, "rgb8", 1), camera_info_msg(K, 5, 7, 1), compressed=False)
    np.testing.assert_array_equal(rgb, RGB)
    np.testing.assert_allclose(camera.matrix, K)
    assert (camera.width, camera.height, camera.model) == (7, 5, "none")
    with pytest.raises(BadMessage) as err:
        decode_camera(image_msg(RGB, "rgb8", 1), camera_info_msg(K, 6, 7, 1), compressed=False)
    assert err.value.kind == "size_mismatch"


def _set(points, K, T=None, h=5, w=7, **options):
    """set_to_arrays of an rgb8 image, its camera_info and a cloud of `points` (the sensor frame)."""
    msgs = (image_msg(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8", 1),
            camera_info_msg(K, h, w, 1), cloud_msg(np.asarray(points, np.float32), 1))
    return set_to_arrays(*msgs, SetOptions(**options), extrinsic=lambda *_: T)


def test_sparse_maps_need_a_point_in_view():
    K = np.array([[10.0, 0, 3.0], [0, 10.0, 2.0], [0, 0, 1]])
    T = np.eye(4)
    T[2, 3] = 1.0  # the sensor sits 1 m behind the camera
    sparse = _set([[0.0, 0.0, 1.0]], K, T).sparse
    assert sparse[2, 3] == pytest.approx(2.0) and np.count_nonzero(sparse) == 1
    with pytest.raises(BadMessage) as err:
        _set([[0.0, 0.0, -5.0]], K, T)  # behind the camera
    assert err.value.kind == "no_points_in_view"
    no_reading = image_msg(np.zeros((5, 7), np.uint16), "16UC1", 1)
    tof = (image_msg(RGB, "rgb8", 1), camera_info_msg(K, 5, 7, 1), no_reading)
    with pytest.raises(BadMessage) as err:
        set_to_arrays(*tof, SetOptions(sparse_is_cloud=False))
    assert err.value.kind == "no_points_in_view"


def test_absurd_depths_are_dropped_and_counted_before_anything_else():
    K = np.array([[10.0, 0, 3.0], [0, 10.0, 2.0], [0, 0, 1]])
    good = [[0.0, 0.0, 2.0], [0.2, 0.0, 2.0]]
    arrays = _set(good + [[-1e8, 0.0, 1e9]], K, max_depth=300.0)  # its own pixel, (2, 2)
    np.testing.assert_array_equal(arrays.sparse, _set(good, K).sparse)
    assert arrays.out_of_range == 1 and arrays.unit_hint is None
    with pytest.raises(BadMessage) as err:  # millimetres in a metre field: nothing left, and it says why
        _set([[0.0, 0.0, 2000.0], [0.2, 0.0, 2500.0]], K, max_depth=300.0)
    assert err.value.kind == "depth_out_of_range" and "millimetres" in str(err.value)
    with pytest.raises(ValueError, match="min_depth"):
        SetOptions(min_depth=5.0, max_depth=1.0)


def _png(rgb):
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_compressed_size_is_read_from_the_header_before_decoding():
    from sensor_msgs.msg import CompressedImage

    big = np.zeros((40, 60, 3), np.uint8)
    jpg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert compressed_image_size(CompressedImage(format="jpeg", data=jpg)) == (60, 40)
    assert compressed_image_size(CompressedImage(format="png", data=_png(big))) == (60, 40)
    bomb = CompressedImage(format="png", data=png_bomb(9000, 9000))
    assert len(bomb.data) < 200_000 and compressed_image_size(bomb) == (9000, 9000)
    for limits, kind in [(DecodeLimits(max_pixels=8000 * 8000), "image_too_large"),
                         (DecodeLimits(max_pixels=0), "compression_ratio")]:
        with pytest.raises(BadMessage) as err:
            compressed_to_rgb(bomb, limits)
        assert err.value.kind == kind and str(limits.max_pixels or 2000) in str(err.value)
    png = _png(RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8))  # a real frame passes both checks
    assert compressed_to_rgb(CompressedImage(format="png", data=png)).shape == (40, 60, 3)
    K = np.array([[10.0, 0, 3.0], [0, 10.0, 2.0], [0, 0, 1]])
    with pytest.raises(BadMessage) as err:  # the camera_info size is checked before decoding too
        decode_camera(bomb, camera_info_msg(K, 5, 7, 1), compressed=True, limits=DecodeLimits(0, 0))
    assert err.value.kind == "size_mismatch" and "9000x9000" in str(err.value)
    with pytest.raises(BadMessage) as err:
        compressed_to_rgb(CompressedImage(format="bmp", data=b"BM" + bytes(60)))
    assert err.value.kind == "undecodable_compressed" and "neither PNG nor JPEG" in str(err.value)


def test_raw_images_over_the_pixel_limit_are_rejected_from_their_fields():
    msg = image_msg(RGB, "rgb8", 1)
    msg.width, msg.height, msg.step = 20000, 20000, 60000  # the data is not even that large
    with pytest.raises(BadMessage) as err:
        image_to_rgb(msg)
    assert err.value.kind == "image_too_large" and "20000x20000" in str(err.value)
    with pytest.raises(ValueError, match="max_pixels"):
        DecodeLimits(max_pixels=-1)


def test_duplicate_or_overlapping_cloud_fields_are_rejected():
    from sensor_msgs.msg import PointField

    pts = RNG.normal(size=(5, 3)).astype(np.float32)
    msg = cloud_msg(pts, 1)  # x y z intensity ring
    msg.fields = list(msg.fields) + [PointField(name="x", offset=12, datatype=PointField.FLOAT32, count=1)]
    with pytest.raises(BadMessage) as err:
        pointcloud2_layout(msg)
    assert err.value.kind == "cloud_duplicate_field" and "['x']" in str(err.value)
    msg = cloud_msg(pts, 1)
    msg.fields[1].offset = 2  # y overlaps x
    with pytest.raises(BadMessage) as err:
        pointcloud2_layout(msg)
    assert err.value.kind == "cloud_ambiguous_field" and "'x' and 'y'" in str(err.value)
    msg = cloud_msg(pts, 1)
    msg.fields[2].count = 3
    with pytest.raises(BadMessage) as err:
        pointcloud2_layout(msg)
    assert err.value.kind == "cloud_ambiguous_field"


def test_camera_info_distortion_is_read():
    K = np.array([[100.0, 0, 32], [0, 100, 24], [0, 0, 1]])
    info = camera_info_msg(K, 48, 64, 1)
    assert camera_model_from_info(info).model == "none"  # all-zero D: a pinhole
    info.d = [0.1, -0.05, 0.001, 0.002, 0.0]
    camera = camera_model_from_info(info)
    assert camera.model == "plumb_bob" and camera.ignored_distortion is None
    np.testing.assert_array_equal(camera.D, info.d)
    rectified = camera_model_from_info(info, use_projection=True)
    assert rectified.model == "none" and "use_projection_matrix" in rectified.ignored_distortion
    for model, d, kind in [("kannala_brandt", [0.1] * 4, "unsupported_distortion"),
                           ("plumb_bob", [0.1] * 3, "camera_info_bad_distortion"),
                           ("plumb_bob", [float("nan")] * 5, "camera_info_not_finite")]:
        info.distortion_model, info.d = model, d
        with pytest.raises(BadMessage) as err:
            camera_model_from_info(info)
        assert err.value.kind == kind
    assert camera_model_from_info(info, distortion="ignore").model == "none"  # d is not read

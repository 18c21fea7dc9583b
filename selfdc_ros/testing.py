"""ROS 2 message builders shared by the ROS tests and the node benchmark.

They write real sensor_msgs in the layouts drivers use (padded PointCloud2, strided Image), so the
node's decoders are exercised on the same bytes a robot would send.
"""

from __future__ import annotations

import array

import numpy as np


def stamp_msg(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(ns: int, frame_id: str):
    from std_msgs.msg import Header

    return Header(stamp=stamp_msg(ns), frame_id=frame_id)


def _bytes(arr: np.ndarray) -> array.array:
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).tobytes())
    return out


def image_msg(arr: np.ndarray, encoding: str, ns: int, frame_id: str = "camera_optical"):
    from sensor_msgs.msg import Image

    arr = np.ascontiguousarray(arr)
    msg = Image(
        header=make_header(ns, frame_id),
        height=arr.shape[0],
        width=arr.shape[1],
        encoding=encoding,
        is_bigendian=False,
        # Not arr.strides[0]: numpy may report any stride for a dimension of length 1.
        step=int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.itemsize,
    )
    msg.data = _bytes(arr)
    return msg


def camera_info_msg(K: np.ndarray, height: int, width: int, ns: int, frame_id: str = "camera_optical"):
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, dtype=np.float64)
    P = np.hstack([K, np.zeros((3, 1))])
    return CameraInfo(
        header=make_header(ns, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        k=K.ravel().tolist(),
        r=np.eye(3).ravel().tolist(),
        p=P.ravel().tolist(),
    )


def cloud_msg(
    points: np.ndarray, ns: int, frame_id: str = "lidar", dtype=np.float32, extra_fields: bool = True
):
    """PointCloud2 with x, y, z (+ intensity, ring when `extra_fields`) in a padded layout."""
    from sensor_msgs.msg import PointCloud2, PointField

    code = PointField.FLOAT32 if np.dtype(dtype) == np.float32 else PointField.FLOAT64
    size = np.dtype(dtype).itemsize
    names = ["x", "y", "z"]
    formats = [dtype] * 3
    offsets = [0, size, 2 * size]
    fields = [
        PointField(name=n, offset=o, datatype=code, count=1) for n, o in zip(names, offsets, strict=True)
    ]
    if extra_fields:
        names += ["intensity", "ring"]
        formats += [np.float32, np.uint16]
        offsets += [4 * size, 4 * size + 4]
        fields += [
            PointField(name="intensity", offset=4 * size, datatype=PointField.FLOAT32, count=1),
            PointField(name="ring", offset=4 * size + 4, datatype=PointField.UINT16, count=1),
        ]
    itemsize = offsets[-1] + np.dtype(formats[-1]).itemsize + 2  # trailing padding, as drivers do
    layout = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})
    data = np.zeros(len(points), dtype=layout)
    for k, n in enumerate("xyz"):
        data[n] = points[:, k]
    msg = PointCloud2(
        header=make_header(ns, frame_id),
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=itemsize,
        row_step=itemsize * len(points),
        is_dense=False,
    )
    msg.data = _bytes(data)
    return msg

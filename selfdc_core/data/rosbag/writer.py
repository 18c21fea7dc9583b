"""Record synthetic scenes as a real rosbag2 (sqlite3 or mcap), as a robot would have recorded them.

Topics (the node's defaults): /camera/image (rgb8 Image, or JPEG/PNG CompressedImage on
/camera/image/compressed), /camera/camera_info, /lidar/points (PointCloud2 x,y,z,intensity in
the LiDAR frame) or /tof/depth (16UC1 mm, registered to the camera), /camera/depth_gt (32FC1 m,
the renderer's ground truth) and /tf_static (base_link -> camera_link -> camera_optical_frame,
base_link -> lidar_link). The LiDAR is stamped `lidar_delay_s` after the camera, as an
unsynchronised sensor is.

    python -m selfdc_core.data.rosbag.writer out/warehouse_bag --frames 40 --environment warehouse
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore

from selfdc_core.data.sampling import file_rng
from selfdc_core.data.synthetic import render_frame, tof_sparse_depth

from .reader import TYPESTORES

__all__ = ["BagWriter", "SyntheticBag", "write_synthetic_bag"]

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
CAMERA_FRAME, LIDAR_FRAME = "camera_optical_frame", "lidar_link"
# camera_link (x forward, y left, z up) -> optical frame (z forward, x right, y down), REP 103
R_LINK_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
T_BASE_CAMERA_LINK = np.array([[1.0, 0, 0, 0.25], [0, 1.0, 0, 0.0], [0, 0, 1.0, 0.9], [0, 0, 0, 1.0]])


def rotation_to_quaternion(R: np.ndarray) -> list[float]:
    """(x, y, z, w) of a rotation matrix (Shepperd's method: branch on the largest component)."""
    R = np.asarray(R, dtype=np.float64)
    trace = np.trace(R)
    candidates = np.array([trace, R[0, 0], R[1, 1], R[2, 2]])
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    else:
        i, j, m = k - 1, k % 3, (k + 1) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[m, m])
        q = [0.0, 0.0, 0.0, (R[m, j] - R[j, m]) / s]
        q[i] = s / 4
        q[j] = (R[j, i] + R[i, j]) / s
        q[m] = (R[m, i] + R[i, m]) / s
    return [float(v) for v in q]


class BagWriter:
    """Thin typed layer over rosbags' Writer: one method per message kind, numpy in."""

    def __init__(self, path, storage: str = "sqlite3", distro: str = "kilted", version: int = 9):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        if distro not in TYPESTORES:
            raise ValueError(f"distro must be one of {sorted(TYPESTORES)}, got {distro!r}")
        self.ts = get_typestore(TYPESTORES[distro])
        self.writer = Writer(Path(path), version=version, storage_plugin=STORAGES[storage])
        self._conns: dict[str, object] = {}
        self.t = self.ts.types

    def __enter__(self) -> BagWriter:
        self.writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()

    def _header(self, stamp_ns: int, frame_id: str):
        stamp = self.t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000),
                                                      nanosec=int(stamp_ns % 1_000_000_000))
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def write(self, topic: str, msgtype: str, msg, log_time_ns: int) -> None:
        if topic not in self._conns:
            self._conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.ts)
        self.writer.write(self._conns[topic], int(log_time_ns), self.ts.serialize_cdr(msg, msgtype))

    def image(self, topic, stamp_ns, array: np.ndarray, encoding: str, frame_id=CAMERA_FRAME, log_ns=None):
        arr = np.ascontiguousarray(array)
        h, w = arr.shape[:2]
        msg = self.t["sensor_msgs/msg/Image"](
            header=self._header(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
            step=arr.strides[0], data=arr.reshape(-1).view(np.uint8),
        )
        self.write(topic, "sensor_msgs/msg/Image", msg, log_ns or stamp_ns)

    def compressed_image(self, topic, stamp_ns, rgb: np.ndarray, fmt: str = "jpeg", frame_id=CAMERA_FRAME,
                         log_ns=None):
        ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"cannot encode the image as {fmt}")
        msg = self.t["sensor_msgs/msg/CompressedImage"](
            header=self._header(stamp_ns, frame_id), format=f"rgb8; {fmt} compressed bgr8",
            data=buf.reshape(-1),
        )
        self.write(topic, "sensor_msgs/msg/CompressedImage", msg, log_ns or stamp_ns)

    def camera_info(self, topic, stamp_ns, K: np.ndarray, height: int, width: int, frame_id=CAMERA_FRAME,
                    log_ns=None):
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        P = np.hstack([K, np.zeros((3, 1))])
        roi = self.t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                        do_rectify=False)
        msg = self.t["sensor_msgs/msg/CameraInfo"](
            header=self._header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
            d=np.zeros(5), k=K.reshape(-1), r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0,
            binning_y=0, roi=roi,
        )
        self.write(topic, "sensor_msgs/msg/CameraInfo", msg, log_ns or stamp_ns)

    def pointcloud(self, topic, stamp_ns, xyz: np.ndarray, frame_id=LIDAR_FRAME, log_ns=None):
        """x, y, z, intensity as float32 (a common driver layout: 16 bytes per point)."""
        n = len(xyz)
        points = np.zeros((n, 4), dtype="<f4")
        points[:, :3] = xyz
        points[:, 3] = np.linalg.norm(xyz, axis=1)  # any per-point channel, to exercise field layouts
        field_t = self.t["sensor_msgs/msg/PointField"]
        fields = [field_t(name=name, offset=4 * i, datatype=7, count=1) for i, name in enumerate("xyz")]
        fields.append(field_t(name="intensity", offset=12, datatype=7, count=1))
        msg = self.t["sensor_msgs/msg/PointCloud2"](
            header=self._header(stamp_ns, frame_id), height=1, width=n, fields=fields, is_bigendian=False,
            point_step=16, row_step=16 * n, data=points.reshape(-1).view(np.uint8), is_dense=True,
        )
        self.write(topic, "sensor_msgs/msg/PointCloud2", msg, log_ns or stamp_ns)

    def tf_static(self, stamp_ns: int, transforms: Iterable[tuple[str, str, np.ndarray]]):
        """(parent, child, T_parent_child) edges, in one tf2_msgs/TFMessage on /tf_static."""
        t = self.t
        items = []
        for parent, child, T in transforms:
            x, y, z, w = rotation_to_quaternion(T[:3, :3])
            tr = t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](
                    x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                rotation=t["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w),
            )
            items.append(t["geometry_msgs/msg/TransformStamped"](
                header=self._header(stamp_ns, parent), child_frame_id=child, transform=tr))
        msg = t["tf2_msgs/msg/TFMessage"](transforms=items)
        self.write("/tf_static", "tf2_msgs/msg/TFMessage", msg, stamp_ns)


@dataclass
class SyntheticBag:
    path: Path
    image_stamps: list[int]  # ns, of the frames whose image was written
    sparse_stamps: list[int]
    T_cam_lidar: np.ndarray
    frames: list = field(default_factory=list)  # the SyntheticFrames, when keep_frames


def _write_tf_static(bag: BagWriter, stamp: int, T_cam_lidar: np.ndarray) -> None:
    """base_link -> camera_link -> camera optical frame, and base_link -> LiDAR, on /tf_static."""
    T_link_optical = np.eye(4)
    T_link_optical[:3, :3] = R_LINK_OPTICAL
    T_base_optical = T_BASE_CAMERA_LINK @ T_link_optical
    bag.tf_static(stamp, [
        ("base_link", "camera_link", T_BASE_CAMERA_LINK),
        ("camera_link", CAMERA_FRAME, T_link_optical),
        ("base_link", LIDAR_FRAME, T_base_optical @ T_cam_lidar),
    ])


def _check_bag_options(path, sparse: str, compressed: str | None) -> None:
    if sparse not in ("pointcloud", "depth_image"):
        raise ValueError(f"sparse must be 'pointcloud' or 'depth_image', got {sparse!r}")
    if compressed not in (None, "jpeg", "png"):
        raise ValueError(f"compressed must be null, 'jpeg' or 'png', got {compressed!r}")
    if Path(path).exists():
        raise FileExistsError(f"{path} exists; rosbag2 writers never overwrite a recording")


def write_synthetic_bag(
    path,
    num_frames: int,
    *,
    seed: int = 0,
    environment: str = "room",
    height: int = 96,
    width: int = 128,
    lidar_beams: int = 32,
    storage: str = "sqlite3",
    distro: str = "kilted",
    compressed: str | None = None,
    sparse: str = "pointcloud",
    tof_zones: int = 64,
    with_gt: bool = True,
    tf_static: bool = True,
    rate_hz: float = 10.0,
    lidar_delay_s: float = 0.004,
    start_ns: int = 1_700_000_000_000_000_000,
    drop_images: Iterable[int] = (),
    keep_frames: bool = False,
) -> SyntheticBag:
    """Render `num_frames` frames of `environment` and record them as the rosbag2 directory `path`.

    compressed: None (raw Image on /camera/image), "jpeg" or "png" (CompressedImage on
        /camera/image/compressed).
    sparse: "pointcloud" (/lidar/points) or "depth_image" (a `tof_zones` ToF on /tof/depth, 16UC1 mm).
    drop_images: frame indices recorded without their camera image (their LiDAR sweep has no partner).
    """
    _check_bag_options(path, sparse, compressed)
    drop = set(drop_images)
    period = int(round(1e9 / rate_hz))
    delay = int(round(lidar_delay_s * 1e9))
    out = SyntheticBag(Path(path), [], [], np.eye(4))
    with BagWriter(path, storage, distro) as bag:
        for i in range(num_frames):
            frame = render_frame(seed, i, height, width, environment, lidar_beams=lidar_beams,
                                 with_lidar=sparse == "pointcloud")
            t = start_ns + i * period
            if i == 0 and sparse == "pointcloud":
                out.T_cam_lidar = frame.T_cam_lidar
                if tf_static:
                    _write_tf_static(bag, t - period, frame.T_cam_lidar)
            if keep_frames:
                out.frames.append(frame)
            if i not in drop:
                _write_image(bag, t, frame.rgb, compressed)
                out.image_stamps.append(t)
            bag.camera_info("/camera/camera_info", t, frame.K, height, width)
            if with_gt:
                bag.image("/camera/depth_gt", t, frame.depth.astype(np.float32), "32FC1")
            if sparse == "pointcloud":
                bag.pointcloud("/lidar/points", t + delay, frame.lidar_points)
            else:
                tof = tof_sparse_depth(frame.depth, tof_zones, rng=file_rng(f"{environment}/{seed}/{i}"))
                bag.image("/tof/depth", t + delay, np.round(tof * 1000).astype(np.uint16), "16UC1")
            out.sparse_stamps.append(t + delay)
    return out


def _write_image(bag: BagWriter, stamp: int, rgb: np.ndarray, compressed: str | None) -> None:
    """The camera image: raw rgb8 on /camera/image, or jpeg/png on /camera/image/compressed."""
    if compressed:
        bag.compressed_image("/camera/image/compressed", stamp, rgb, compressed)
    else:
        bag.image("/camera/image", stamp, rgb, "rgb8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Record synthetic camera + LiDAR frames as a rosbag2.")
    parser.add_argument("path", help="output rosbag2 directory (must not exist)")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--environment", default="room")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=228)
    parser.add_argument("--width", type=int, default=304)
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap")
    parser.add_argument("--sparse", choices=("pointcloud", "depth_image"), default="pointcloud")
    parser.add_argument("--compressed", choices=("jpeg", "png"), default=None)
    args = parser.parse_args(argv)
    bag = write_synthetic_bag(args.path, args.frames, seed=args.seed, environment=args.environment,
                              height=args.height, width=args.width, storage=args.storage, sparse=args.sparse,
                              compressed=args.compressed)
    print(f"wrote {bag.path} ({len(bag.image_stamps)} frames, {args.storage})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

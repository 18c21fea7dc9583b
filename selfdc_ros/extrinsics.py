"""The LiDAR -> camera transform: static from parameters, or looked up with tf2."""

from __future__ import annotations

import numpy as np

from selfdc_core.geometry import check_rigid_transform, make_transform

try:  # tf2_ros comes with a full ROS distribution; without it the extrinsic is a parameter
    import tf2_ros
except ImportError:
    tf2_ros = None

__all__ = ["ExtrinsicError", "StaticExtrinsic", "TfExtrinsic", "make_extrinsic_provider", "tf2_available"]


class ExtrinsicError(ValueError):
    """The transform for a frame is not available (yet)."""


def tf2_available() -> bool:
    return tf2_ros is not None


class StaticExtrinsic:
    """A fixed T_cam_lidar (p_cam = T @ p_lidar)."""

    def __init__(self, T: np.ndarray):
        self.T = check_rigid_transform(np.asarray(T, dtype=np.float64).reshape(4, 4), "extrinsic.matrix")
        self.is_identity = bool(np.allclose(self.T, np.eye(4)))

    def lookup(self, camera_frame: str, sensor_frame: str, stamp) -> np.ndarray:
        return self.T

    def close(self) -> None:
        pass


class TfExtrinsic:
    """T_cam_sensor from tf2 (static or dynamic), at the sensor message's stamp."""

    def __init__(self, node, timeout_s: float):
        from rclpy.duration import Duration

        self._buffer = tf2_ros.Buffer()
        self._listener = tf2_ros.TransformListener(self._buffer, node)
        self._timeout = Duration(seconds=float(timeout_s))
        self.is_identity = False

    def close(self) -> None:
        self._listener.unregister()

    def lookup(self, camera_frame: str, sensor_frame: str, stamp) -> np.ndarray:
        try:
            tf = self._buffer.lookup_transform(camera_frame, sensor_frame, stamp, timeout=self._timeout)
        except Exception as exc:  # tf2 raises several unrelated exception types
            raise ExtrinsicError(f"no transform {sensor_frame!r} -> {camera_frame!r}: {exc}") from exc
        t, q = tf.transform.translation, tf.transform.rotation
        return make_transform([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


def make_extrinsic_provider(node, params: dict):
    """The provider chosen by `extrinsic.source`; ValueError with the fix when it cannot work.

    'auto' is tf2 when tf2_ros imports (a ROS distribution), otherwise translation + rotation.
    """
    source = params["extrinsic.source"]
    if source == "auto":
        source = "tf" if tf2_ros is not None else "quaternion"
    if source == "tf":
        if tf2_ros is None:
            raise ValueError(
                "extrinsic.source is 'tf' but tf2_ros is not importable; source a ROS 2 distribution "
                "or set extrinsic.source to 'quaternion' or 'matrix'"
            )
        return TfExtrinsic(node, params["extrinsic.tf_timeout"])
    if source == "matrix":
        return StaticExtrinsic(np.asarray(params["extrinsic.matrix"], dtype=np.float64).reshape(4, 4))
    return StaticExtrinsic(make_transform(params["extrinsic.translation"], params["extrinsic.rotation"]))

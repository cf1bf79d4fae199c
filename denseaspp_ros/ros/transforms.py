"""Camera and vehicle poses from TF, where ``tf2_ros`` is installed (any ROS 2 install; not a PyPI wheel).

The math is the odometry path's: a vehicle pose is a ``Pose2D`` (position and the quaternion's
yaw) looked up at the image's stamp, and a camera pose is the body pose of the images' optical
frame (``CameraPose.from_optical``). A lookup that fails raises ``PoseUnavailable`` with TF's
reason, as missing odometry does.
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from ..costmap import CameraPose, Pose2D, PoseUnavailable, yaw_of_quaternion
from ..costmap.pose import rotation_of_quaternion

try:
    import tf2_ros
except ImportError:  # these machines' PyPI wheels have no tf2_ros: poses come from parameters and odometry
    tf2_ros = None


def tf_available() -> bool:
    return tf2_ros is not None


class TransformSource:
    """A TF buffer filled by a listener on ``node``, looked up at image stamps within a tolerance."""

    def __init__(self, node: Node, tolerance_s: float) -> None:
        if tf2_ros is None:
            raise PoseUnavailable("tf2_ros is not installed (source a ROS 2 install that has it)")
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)
        self.tolerance_s = tolerance_s

    def close(self) -> None:
        """Drop the /tf subscriptions (older tf2_ros has no unregister: its node goes with ours)."""
        unregister = getattr(self.listener, "unregister", None)
        if unregister is not None:
            unregister()

    def vehicle_pose(self, world_frame: str, vehicle_frame: str, stamp_ns: int) -> Pose2D:
        """The vehicle in ``world_frame`` at the stamp (``odom`` -> ``base_link``)."""
        transform = self._lookup(world_frame, vehicle_frame, stamp_ns)
        t, q = transform.translation, transform.rotation
        return Pose2D(t.x, t.y, yaw_of_quaternion(q.x, q.y, q.z, q.w))

    def camera_pose(self, vehicle_frame: str, optical_frame: str, stamp_ns: int) -> CameraPose:
        """The camera body's pose in the vehicle frame, from its images' (optical) frame."""
        transform = self._lookup(vehicle_frame, optical_frame, stamp_ns)
        t, q = transform.translation, transform.rotation
        return CameraPose.from_optical((t.x, t.y, t.z), rotation_of_quaternion(q.x, q.y, q.z, q.w))

    def _lookup(self, target: str, source: str, stamp_ns: int):
        """``source`` in ``target`` at the stamp; the newest transform instead when it is within the tolerance."""
        if not source:
            raise PoseUnavailable(f"the frame has no header.frame_id to look up in TF (to {target})")
        try:
            return self.buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns)).transform
        except tf2_ros.ExtrapolationException as error:
            newest = self._newest(target, source)
            if newest is None or abs(stamp_ns - _stamp_ns(newest)) > self.tolerance_s * 1e9:
                raise PoseUnavailable(f"TF {source} -> {target}: {error}") from None
            return newest.transform
        except tf2_ros.TransformException as error:
            raise PoseUnavailable(f"TF {source} -> {target}: {error}") from None

    def _newest(self, target: str, source: str):
        try:
            return self.buffer.lookup_transform(target, source, Time(), Duration())
        except tf2_ros.TransformException:
            return None


def _stamp_ns(transform) -> int:
    return transform.header.stamp.sec * 1_000_000_000 + transform.header.stamp.nanosec

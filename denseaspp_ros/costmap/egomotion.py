"""Where the vehicle was when a frame was taken, and the world-fixed window the grid lives in.

With odometry the costmap keeps its cells in the odometry's frame (``odom``, REP 105), so what was
seen stays where it is in the world while the vehicle drives. Poses are kept for a few seconds
and interpolated at each image's stamp (position linearly, heading along the shortest arc). The
grid is a window around the vehicle that moves the way Nav2's rolling window does: translation
only, snapped to whole cells, axis-aligned; cells that leave it are forgotten, cells that enter it
are unknown, cells that stay keep their content at the same world position.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DenseASPPError
from ..frames import stamp_ns
from .grid import GridSpec

POSE_HISTORY_S = 5.0  # how far back poses are kept


class PoseUnavailable(DenseASPPError):
    """No pose can be given for a stamp: odometry is missing, late, or older than the frame."""


class OdometryRefused(DenseASPPError):
    """An odometry message that is not taken: ``kind`` is invalid (a pose that is no pose), frame
    (another frame than the track's) or future (stamped ahead of the clock)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Pose2D:
    """The vehicle (its base frame) in the world frame: position in metres, heading in radians."""

    x: float
    y: float
    yaw: float

    def transform(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame points into the world frame."""
        cos, sin = math.cos(self.yaw), math.sin(self.yaw)
        return self.x + cos * x - sin * y, self.y + sin * x + cos * y


def yaw_of_quaternion(x: float, y: float, z: float, w: float) -> float:
    """Heading (rotation about z) of a quaternion of any length, as tf2's getYaw gives for its unit
    quaternion: 1 - 2(y² + z²) is written w² + x² - y² - z², so a quaternion scaled by 2 (not
    normalised by its publisher) gives 90 degrees, not 127."""
    return math.atan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)


def odometry_pose(message: Any) -> Pose2D:
    """The vehicle's pose in a nav_msgs/Odometry (rclpy's or a bag reader's: the same fields);
    ``OdometryRefused`` for a position that is not finite or a quaternion that is no rotation."""
    position, orientation = message.pose.pose.position, message.pose.pose.orientation
    quaternion = (orientation.x, orientation.y, orientation.z, orientation.w)
    if not all(math.isfinite(value) for value in (position.x, position.y, position.z)):
        raise OdometryRefused("invalid", f"odometry position ({position.x}, {position.y}, {position.z}) is not finite")
    norm = math.sqrt(sum(value * value for value in quaternion))
    if not math.isfinite(norm) or norm < 1e-6:
        raise OdometryRefused("invalid", f"odometry orientation {quaternion} (x, y, z, w) is not a rotation")
    return Pose2D(position.x, position.y, yaw_of_quaternion(*quaternion))


class OdometryTrack:
    """The odometry a costmap is anchored to: poses of one frame, checked, in a ``PoseBuffer``.

    Poses of two frames (odom and map on one topic) interpolated together would put the vehicle
    between them, so the track keeps the frame it was given (``costmap.global_frame``) or the
    first it accepts, and refuses others. A message stamped more than ``max_ahead_s`` ahead of the
    clock is refused too (a wrong clock, not late odometry). Refusals are counted by kind.
    """

    def __init__(self, frame_id: str = "", max_ahead_s: float | None = None, history_s: float | None = POSE_HISTORY_S) -> None:
        self.required_frame = frame_id
        self.frame_id = frame_id  # the frame every pose is in: given, or the first accepted
        self.max_ahead_ns = None if max_ahead_s is None else round(max_ahead_s * 1e9)
        self.poses = PoseBuffer(history_s)
        self.refused: dict[str, int] = {}

    def add(self, message: Any, now_ns: int | None = None) -> tuple[int, Pose2D]:
        """Take one nav_msgs/Odometry (``now_ns``: the clock, None for a bag read after the fact);
        its (stamp, pose), or ``OdometryRefused`` (counted)."""
        try:
            stamp, frame = stamp_ns(message.header), message.header.frame_id or "odom"
            if self.frame_id and frame != self.frame_id:
                origin = "costmap.global_frame" if self.required_frame else "the first accepted"
                raise OdometryRefused(
                    "frame", f"odometry in frame {frame!r}, not {self.frame_id!r} ({origin}): poses of two frames are never interpolated together"
                )
            if now_ns is not None and self.max_ahead_ns is not None and stamp - now_ns > self.max_ahead_ns:
                raise OdometryRefused(
                    "future", f"odometry stamped {(stamp - now_ns) / 1e9:.3f} s ahead of the clock "
                    f"(tolerated: {self.max_ahead_ns / 1e9:g} s): the publisher's clock or this node's is wrong",
                )
            pose = odometry_pose(message)
        except OdometryRefused as error:
            self.refused[error.kind] = self.refused.get(error.kind, 0) + 1
            raise
        self.frame_id = frame
        self.poses.add(stamp, pose)
        return stamp, pose

    def clear(self) -> None:
        """Forget every pose (time went back), and the frame unless it was given."""
        self.poses.clear()
        self.frame_id = self.required_frame


def interpolate(before: tuple[int, Pose2D], after: tuple[int, Pose2D], stamp: int) -> Pose2D:
    """The pose at ``stamp`` (ns) between two stamped poses: linear position, shortest-arc heading."""
    (t0, p0), (t1, p1) = before, after
    if t1 == t0:
        return p1
    share = (stamp - t0) / (t1 - t0)
    turn = math.remainder(p1.yaw - p0.yaw, math.tau)  # the shortest way round
    return Pose2D(p0.x + share * (p1.x - p0.x), p0.y + share * (p1.y - p0.y), math.remainder(p0.yaw + share * turn, math.tau))


class PoseBuffer:
    """The last few seconds of odometry, looked up at image stamps.

    A stamp between two poses is interpolated; one outside the buffer by at most ``tolerance``
    takes the nearest pose; anything else raises ``PoseUnavailable`` with the reason.
    """

    def __init__(self, history_s: float | None = POSE_HISTORY_S) -> None:
        self.history_ns = None if history_s is None else round(history_s * 1e9)  # None: keep every pose (a bag's)
        self._stamps: list[int] = []
        self._poses: list[Pose2D] = []

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest(self) -> int | None:
        return self._stamps[-1] if self._stamps else None

    def add(self, stamp: int, pose: Pose2D) -> None:
        """Keep ``pose`` at ``stamp`` (ns); an older stamp than the newest one starts over (time went back)."""
        if self._stamps and stamp < self._stamps[-1]:
            self.clear()
        self._stamps.append(stamp)
        self._poses.append(pose)
        cut = 0 if self.history_ns is None else bisect.bisect_left(self._stamps, stamp - self.history_ns)
        if cut:
            del self._stamps[:cut], self._poses[:cut]

    def clear(self) -> None:
        self._stamps.clear()
        self._poses.clear()

    def at(self, stamp: int, tolerance_s: float) -> Pose2D:
        if not self._stamps:
            raise PoseUnavailable("no odometry received yet")
        tolerance = round(tolerance_s * 1e9)
        index = bisect.bisect_left(self._stamps, stamp)
        if index == len(self._stamps):
            late = stamp - self._stamps[-1]
            if late > tolerance:
                raise PoseUnavailable(f"odometry is {late / 1e9:.3f} s behind the frame (transform_tolerance {tolerance_s:g} s)")
            return self._poses[-1]
        if self._stamps[index] == stamp:
            return self._poses[index]
        if index == 0:
            early = self._stamps[0] - stamp
            if early > tolerance:
                raise PoseUnavailable(f"the frame is {early / 1e9:.3f} s older than the odometry kept")
            return self._poses[0]
        return interpolate((self._stamps[index - 1], self._poses[index - 1]), (self._stamps[index], self._poses[index]), stamp)


@dataclass(frozen=True)
class RollingWindow:
    """The grid's place in the world: ``grid`` (world frame) is ``size`` cells centred on the vehicle."""

    grid: GridSpec  # origin in the world frame, frame_id the world frame

    @classmethod
    def around(cls, pose: Pose2D, shape: GridSpec, frame_id: str) -> RollingWindow:
        """The window of ``shape``'s size and resolution centred on ``pose``, its corner snapped to whole cells."""
        resolution = shape.resolution
        corner_x = math.floor((pose.x - shape.width * resolution / 2) / resolution) * resolution
        corner_y = math.floor((pose.y - shape.height * resolution / 2) / resolution) * resolution
        return cls(GridSpec(resolution, shape.width * resolution, shape.height * resolution, corner_x, corner_y, frame_id))

    def shift_to(self, other: RollingWindow) -> tuple[int, int]:
        """(columns, rows) the content moves by from this window to ``other`` (whole cells)."""
        resolution = self.grid.resolution
        return (round((self.grid.origin_x - other.grid.origin_x) / resolution),
                round((self.grid.origin_y - other.grid.origin_y) / resolution))


def scroll(values: np.ndarray, columns: int, rows: int, fill: float | int) -> np.ndarray:
    """``values`` (height, width) moved by whole cells: what leaves is dropped, what enters is ``fill``."""
    height, width = values.shape
    moved = np.full_like(values, fill)
    if abs(columns) >= width or abs(rows) >= height:
        return moved
    source_rows = slice(max(0, -rows), height - max(0, rows))
    target_rows = slice(max(0, rows), height - max(0, -rows))
    source_columns = slice(max(0, -columns), width - max(0, columns))
    target_columns = slice(max(0, columns), width - max(0, -columns))
    moved[target_rows, target_columns] = values[source_rows, source_columns]
    return moved

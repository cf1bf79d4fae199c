"""The costmap inside a node: camera models from camera_info or parameters, the fused grid, its publishers.

Shared by segmentation_node (fed with the masks it has just computed, no serialisation) and
semantic_costmap_node (fed with mask messages). Camera geometry comes from the camera's latest
CameraInfo when one has arrived, else from ``<camera>.intrinsics``; a camera without a pose or
intrinsics does not contribute, which is logged once.

Time is the node's clock (ROS time, so ``use_sim_time`` replays work): cells decay against it,
a frame stamped further ahead of it than ``costmap.max_stamp_skew`` (or before 1970, or not at
all) is refused, and a timer republishes the grid while nothing arrives, so cells decay to
unknown on the clock instead of the last grid standing forever.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from nav_msgs.msg import Odometry, OccupancyGrid
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from ..costmap import (
    AspectMismatch, CameraModel, CameraPose, OdometryRefused, OdometryTrack, Pose2D, PoseUnavailable, SemanticCostmap, bird_eye_image, load_cost_table,
)
from ..errors import DenseASPPError
from ..labels import LabelSet
from ..serving.health import HealthLimits, odometry_health
from ..serving.stamps import FrameRefused, StampRejected, check_costmap_stamp
from ..serving.stats import RATE_WINDOW_S
from .camera_info import camera_model_from_info
from .conversions import obstacle_cloud_msg, occupancy_grid_msg, rgb8_msg
from .names import COSTMAP_COLOR_TOPIC, COSTMAP_OBSTACLES_TOPIC, COSTMAP_TOPIC
from .runner import CameraLifecycleNode
from .transforms import TransformSource, tf_available
from ..serving.settings import Calibration, CostmapOutputSettings

# Nav2's map/costmap subscribers use reliable + transient local: a late subscriber gets the last grid.
COSTMAP_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
# Odometry comes at 50-100 Hz from reliable or best-effort publishers: best effort takes both, and
# the depth absorbs a burst while the executor is busy.
ODOMETRY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)


@dataclass
class _CameraState:
    calibration: Calibration
    model: CameraModel | None = None  # from the CameraInfo of info_key, or the parameters
    info_key: tuple | None = None  # the CameraInfo the current model came from
    problem: str | None = None  # why the camera does not contribute, reported once per cause


class CostmapOutput:
    """Projects masks into one grid and publishes it, for the cameras given at construction.

    Thread-safe: segmentation_node updates it from its inference worker while the republishing
    timer runs on the executor.
    """

    def __init__(
        self, node: CameraLifecycleNode, settings: CostmapOutputSettings, label_set: LabelSet, cameras: dict[str, Calibration]
    ) -> None:
        self.node, self.settings = node, settings
        table = load_cost_table(settings.classes_file or None, label_set)
        anchored = bool(settings.odometry_topic or settings.global_frame)
        self.costmap = SemanticCostmap(table, settings.fusion, anchored=anchored)
        # The vehicle in the odometry's frame, with odometry_topic: costmap.global_frame when set, else the first accepted.
        self.odometry = OdometryTrack(settings.global_frame, settings.max_stamp_skew)
        self._world_frame = "" if settings.odometry_topic else settings.global_frame  # odometry's comes with it
        self._odometry_refusals: deque[tuple[float, str]] = deque(maxlen=1000)  # (monotonic s, why) of recent messages
        self._tf: TransformSource | None = None  # created last: nothing after it can fail and leak its subscriptions
        self._pose_refusals: deque[tuple[float, str]] = deque(maxlen=1000)  # (monotonic s, why) of recent frames
        self._cameras = {name: _CameraState(calibration) for name, calibration in cameras.items()}
        self._lock = threading.Lock()
        self._active = False
        self._last_publish_ns: int | None = None
        self._clock_ns = 0  # the newest time seen on the node's clock, to notice it jumping back
        self._stamps: dict[str, int] = {}  # camera -> newest accepted stamp, exact for the grid's header
        self._publishers = {"costmap": node.create_lifecycle_publisher(OccupancyGrid, COSTMAP_TOPIC, COSTMAP_QOS)}
        if settings.publish_color:
            self._publishers["color"] = node.create_lifecycle_publisher(Image, COSTMAP_COLOR_TOPIC, OUTPUT_QOS)
        if settings.publish_obstacles:
            self._publishers["obstacles"] = node.create_lifecycle_publisher(PointCloud2, COSTMAP_OBSTACLES_TOPIC, OUTPUT_QOS)
        # Republish while no frame comes, so what was seen decays to unknown on the clock. The timer
        # runs on steady time: a ROS-time timer would stop when a replay's clock jumps back or pauses.
        self._period_s = min(max(self.costmap.decay_time / 2, 0.1), 1.0)
        self._timer = node.create_timer(self._period_s, self._republish, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._tf = _transforms(node, settings, cameras)
        for name, state in self._cameras.items():
            if state.calibration.camera_pose is None and self._tf is None:
                self._report(
                    name, state,
                    f"camera {name} has no {name}.pose (and tf2_ros, to take it from TF, is not installed): "
                    "it does not contribute to the costmap",
                )

    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        self._active = True

    def deactivate(self) -> None:
        self._active = False

    def wanted(self) -> bool:
        """Someone subscribes to the grid or its views (transient local: the grid is kept for later ones)."""
        return any(publisher.get_subscription_count() > 0 for publisher in self._publishers.values())

    def contributes(self, camera: str) -> bool:
        state = self._cameras.get(camera)
        return state is not None and (state.calibration.camera_pose is not None or self._tf is not None)

    def _observe_clock(self, now: int) -> bool:
        """Track the clock; False while it has not started (use_sim_time before the first /clock).

        A clock that jumps back (a looped bag, a restarted simulator) would leave every cell "fresh"
        until it caught up again: the grid's memory is dropped instead.
        """
        if now <= 0:
            self.node.throttled.warn(("clock",), "waiting for /clock: use_sim_time is true and no clock has arrived, "
                                                 "so the costmap cannot age what it sees (is the bag played with --clock?)")
            return False
        if now < self._clock_ns:
            self.costmap.clear()
            self._stamps.clear()
            self.odometry.clear()
            if self._tf is not None:
                self._tf.buffer.clear()  # rclpy's buffer keeps the old times and would refuse the new ones
            if self._last_publish_ns is not None:
                # The latched grid still holds what was forgotten: the timer's next tick replaces it,
                # even when the jump was noticed by a frame that is then refused.
                self._last_publish_ns = 0
            self.node.get_logger().warning(
                f"the clock jumped back {(self._clock_ns - now) / 1e9:.3f} s: the costmap forgot what it had seen"
            )
        self._clock_ns = now
        return True

    def update(
        self, camera: str, train_ids: np.ndarray, stamp: int, camera_info: CameraInfo | None,
        confidence: np.ndarray | None = None, frame_id: str = "", free: bool = True, no_free: np.ndarray | None = None,
        forget_free: bool = False,
    ) -> bool:
        """Fold one mask, of the frame stamped ``stamp`` (ns) in ``frame_id`` (its image's), in;
        False when the camera cannot contribute (reported once, not raised). ``free`` False (the
        frame is withheld): only its obstacles are folded in; ``no_free``: pixels that vote no ground;
        ``forget_free`` (the camera is in FAULT): what it called free before goes unknown.

        Raises ``StampRejected`` for a frame whose stamp cannot be trusted, ``FrameRefused`` for a mask
        of another aspect ratio than its camera's (either changes nothing).
        """
        state = self._cameras[camera]
        if not self.contributes(camera):
            return False
        with self._lock:
            now = self._now_ns()
            if not self._observe_clock(now):
                return False  # no time yet to age anything by; not the camera's fault
            check_costmap_stamp(
                stamp, now, self.settings.max_stamp_skew, self.costmap.decay_time,
                "costmap.map_decay_time" if self.costmap.anchored else "costmap.decay_time",
            )
            try:
                self._define(camera, state, camera_info, train_ids.shape, self._camera_pose(state, frame_id, stamp))
            except PoseUnavailable as error:  # from TF: said once, the details throttled (they name times)
                grid_frame = self.settings.fusion.grid.frame_id
                self._report(camera, state, f"camera {camera} does not contribute to the costmap while TF has no pose "
                                            f"of its frame {frame_id!r} in {grid_frame}")
                self.node.throttled.warn((camera, "tf"), f"{camera}: {error}")
                return False
            except DenseASPPError as error:
                self._report(camera, state, f"camera {camera} does not contribute to the costmap: {error}")
                return False
            if not self.costmap.has_camera(camera):
                self._report(
                    camera, state,
                    f"camera {camera} has neither camera_info nor {camera}.intrinsics: it does not contribute to the costmap",
                )
                return False
            pose = self._pose_at(stamp)
            try:
                projection = self.costmap.projection(camera, train_ids.shape)
            except AspectMismatch as error:
                self._report(camera, state, f"camera {camera}: {error}")
                raise FrameRefused("aspect", str(error)) from None
            if projection.visible_cells == 0:
                self._report(
                    camera, state,
                    f"camera {camera} sees no ground cell of the grid within costmap.max_range: check {camera}.pose "
                    "(a positive pitch looks down) and the grid's extent",
                )
                return False
            if state.problem is not None:
                self.node.get_logger().info(f"camera {camera} contributes to the costmap again")
                state.problem = None
            self.costmap.update(
                camera, train_ids, stamp / 1e9, confidence, pose=pose, world_frame=self._world_frame, free=free, no_free=no_free,
                forget_free=forget_free,
            )
            self._stamps[camera] = max(stamp, self._stamps.get(camera, 0))
        return True

    def odometry_snapshot(self) -> dict:
        """What /diagnostics says of the odometry: its age on the node's clock and the frames it failed."""
        with self._lock:
            newest = self.odometry.poses.newest
            horizon = time.monotonic() - RATE_WINDOW_S
            recent = [why for when, why in self._pose_refusals if when >= horizon]
            bad_messages = [why for when, why in self._odometry_refusals if when >= horizon]
            return {
                "topic": self.settings.odometry_topic,
                "frame_id": self._world_frame or None,
                "poses_kept": len(self.odometry.poses),
                "age_s": None if newest is None else (self._now_ns() - newest) / 1e9,
                "refused_recent": len(recent),
                "last_refusal": recent[-1] if recent else None,
                **{f"messages_refused.{kind}": count for kind, count in sorted(self.odometry.refused.items())},
                "messages_refused_recent": len(bad_messages),
                "last_message_refusal": bad_messages[-1] if bad_messages else None,
            }

    def odometry_status(self, limits: HealthLimits, *, active: bool) -> DiagnosticStatus:
        """The odometry's line of the node's /diagnostics."""
        snapshot = self.odometry_snapshot()
        values = {key: value for key, value in snapshot.items() if not key.startswith("last_")}
        return self.node.diagnostic_status("odometry", odometry_health(snapshot, limits, active=active), values)

    def listen_to_odometry(self, node) -> None:
        """Subscribe ``node`` (while it is active) to costmap.odometry_topic, when there is one."""
        if self.settings.odometry_topic:
            node.listen(Odometry, self.settings.odometry_topic, self.on_odometry, ODOMETRY_QOS)

    def on_odometry(self, msg: Odometry) -> None:
        """Keep the vehicle's pose (its odometry frame, usually odom) for the frames that follow; a
        message that is no pose, of another frame or from the future is refused, counted and logged."""
        with self._lock:
            try:
                self.odometry.add(msg, self._now_ns())
            except OdometryRefused as error:
                self._odometry_refusals.append((time.monotonic(), str(error)))
                self.node.throttled.warn(("odometry", error.kind), f"odometry refused: {error}")
                return
            self._world_frame = self.odometry.frame_id

    def _camera_pose(self, state: _CameraState, frame_id: str, stamp: int) -> CameraPose:
        """``C.pose``, else the body pose of the images' frame in costmap.frame_id from TF at the stamp."""
        if state.calibration.camera_pose is not None:
            return state.calibration.camera_pose
        return self._tf.camera_pose(self.settings.fusion.grid.frame_id, frame_id, stamp)

    def _pose_at(self, stamp: int) -> Pose2D | None:
        """The vehicle at the image's stamp (odometry, or TF from costmap.global_frame); a frame
        without one is refused, not guessed."""
        if not self.costmap.anchored:
            return None
        try:
            if self.settings.odometry_topic:
                return self.odometry.poses.at(stamp, self.settings.transform_tolerance)
            return self._tf.vehicle_pose(self.settings.global_frame, self.settings.fusion.grid.frame_id, stamp)
        except PoseUnavailable as error:
            self._pose_refusals.append((time.monotonic(), str(error)))
            raise StampRejected("odometry", f"no vehicle pose at its stamp: {error}") from None

    def _define(
        self, camera: str, state: _CameraState, info: CameraInfo | None, mask_shape: tuple[int, int], pose: CameraPose
    ) -> None:
        """(Re)define the camera: its model from its CameraInfo (rebuilt when that changed), else from
        the parameters; its pose as given (the costmap rebuilds its tables only when either changed)."""
        calibration = state.calibration
        if info is not None:
            key = (tuple(info.k), tuple(info.d), info.distortion_model, info.width, info.height,
                   info.binning_x, info.binning_y, info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height)
            if key != state.info_key:
                state.model = camera_model_from_info(info)  # raises on zeros in K and the like, before anything changes
                state.info_key = key
        elif calibration.intrinsics and state.model is None:
            width, height = calibration.image_size or (mask_shape[1], mask_shape[0])
            state.model = CameraModel.from_intrinsics(calibration.intrinsics, width, height)
        if state.model is not None:
            self.costmap.set_camera(camera, state.model, pose)

    def _report(self, camera: str, state: _CameraState, problem: str) -> None:
        if state.problem != problem:
            state.problem = problem
            self.node.get_logger().warning(problem)

    def _now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def publish(self) -> None:
        """Publish the fused grid as it is now on the node's clock (and its views), when active."""
        if not self._active:
            return
        # One lock from snapshot to publication: the worker and the timer cannot publish out of order.
        with self._lock:
            now = self._now_ns()
            if not self._observe_clock(now):
                return
            if self.costmap.anchored and self.costmap.window is None:
                return  # no pose yet: the grid has no place in the world
            horizon = now - round(self.costmap.decay_time * 1e9)
            snapshot = self.costmap.snapshot(now / 1e9)
            self._last_publish_ns = now
            # Stamped like the newest image still fresh (exactly), or now when all has decayed.
            stamp = max((s for s in self._stamps.values() if s >= horizon), default=now)
            header = Header(frame_id=snapshot.grid.frame_id)  # the vehicle's frame, or odom when anchored
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            self._publishers["costmap"].publish(occupancy_grid_msg(snapshot, header))
            if "color" in self._publishers:
                self._publishers["color"].publish(rgb8_msg(header, bird_eye_image(snapshot)))
            if "obstacles" in self._publishers:
                self._publishers["obstacles"].publish(obstacle_cloud_msg(snapshot, header))

    def _republish(self) -> None:
        """The timer: publish the decaying grid when no frame brought a publication for a period."""
        last = self._last_publish_ns
        if last is None:
            return  # nothing was ever seen: no grid to decay
        now = self._now_ns()
        if now < last or (now - last) / 1e9 >= 0.9 * self._period_s:  # a clock that went back: publish() resets
            self.publish()

    def destroy(self) -> None:
        self._active = False
        if self._tf is not None:
            self._tf.close()
        self.node.destroy_timer(self._timer)
        for publisher in self._publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self._publishers.clear()


def _transforms(node: CameraLifecycleNode, settings: CostmapOutputSettings, cameras: dict[str, Calibration]) -> TransformSource | None:
    """A TF listener when something is to come from TF and tf2_ros is there; a vehicle pose that
    can come from nowhere else is a configuration error, said at configure."""
    vehicle_from_tf = bool(settings.global_frame) and not settings.odometry_topic
    cameras_from_tf = any(calibration.camera_pose is None for calibration in cameras.values())
    if vehicle_from_tf and not tf_available():
        raise DenseASPPError(
            f"costmap.global_frame {settings.global_frame!r} takes the vehicle's pose from TF, but tf2_ros is not "
            "installed: give costmap.odometry_topic instead (or run where tf2_ros is)"
        )
    if (vehicle_from_tf or cameras_from_tf) and tf_available():
        return TransformSource(node, settings.transform_tolerance)
    return None

"""The costmap inside a node: camera models from camera_info or parameters, the fused grid, its messages.

Shared by segmentation_node (fed with the masks it has just computed, no serialisation) and
semantic_costmap_node (fed with mask messages). Camera geometry comes from the camera's latest
CameraInfo when one has arrived, else from ``<camera>.intrinsics``; a camera without a pose or
intrinsics does not contribute, which is logged once.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.lifecycle import LifecycleNode
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from ..costmap import CameraModel, SemanticCostmap, Snapshot, bird_eye_image, load_cost_table
from ..errors import DenseASPPError
from ..labels import LabelSet
from .conversions import rgb8_msg
from .settings import Calibration, CostmapConfig

# Nav2's map/costmap subscribers use reliable + transient local: a late subscriber gets the last grid.
COSTMAP_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)
_CLOUD_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="class_id", offset=12, datatype=PointField.UINT32, count=1),
]
_CLOUD_POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("class_id", "<u4")])


def camera_model_from_info(info: CameraInfo) -> CameraModel:
    """The geometry of the images a camera publishes, from its CameraInfo (binning and ROI applied)."""
    roi = info.roi
    return CameraModel.from_camera_info(
        info.k, info.d, info.distortion_model, info.width, info.height,
        binning=(info.binning_x, info.binning_y),
        roi=(roi.x_offset, roi.y_offset, roi.width, roi.height),
    )


def occupancy_grid_msg(snapshot: Snapshot, header: Header) -> OccupancyGrid:
    grid = snapshot.grid
    msg = OccupancyGrid(header=header)
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(grid.resolution)
    msg.info.width, msg.info.height = grid.width, grid.height
    msg.info.origin.position.x, msg.info.origin.position.y = float(grid.origin_x), float(grid.origin_y)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(np.ascontiguousarray(snapshot.costs).tobytes())
    msg.data = data
    return msg


def obstacle_cloud_msg(snapshot: Snapshot, header: Header) -> PointCloud2:
    """The cells an obstacle's ground contact decided, as x y z (z = 0) + class_id points."""
    cells, classes = snapshot.contact_cells()
    x, y = snapshot.grid.cell_centers(cells)
    points = np.zeros(len(cells), _CLOUD_POINT)
    points["x"], points["y"], points["class_id"] = x, y, classes
    msg = PointCloud2(
        header=header, height=1, width=len(cells), fields=_CLOUD_FIELDS, is_bigendian=False,
        point_step=_CLOUD_POINT.itemsize, row_step=_CLOUD_POINT.itemsize * len(cells), is_dense=True,
    )
    data = array.array("B")
    data.frombytes(points.tobytes())
    msg.data = data
    return msg


@dataclass
class _CameraState:
    calibration: Calibration
    info_key: tuple | None = None  # the CameraInfo the current model came from
    problem: str | None = None  # why the camera does not contribute, reported once per cause


class CostmapOutput:
    """Projects masks into one grid and publishes it, for the cameras given at construction."""

    def __init__(self, node: LifecycleNode, config: CostmapConfig, label_set: LabelSet, cameras: dict[str, Calibration]) -> None:
        self.node, self.config = node, config
        self.costmap = SemanticCostmap(load_cost_table(config.classes_file or None, label_set), config.settings)
        self._cameras = {name: _CameraState(calibration) for name, calibration in cameras.items()}
        self._newest: Header | None = None
        self._publishers = {"costmap": node.create_lifecycle_publisher(OccupancyGrid, "~/costmap", COSTMAP_QOS)}
        if config.publish_color:
            self._publishers["color"] = node.create_lifecycle_publisher(Image, "~/costmap_color", OUTPUT_QOS)
        if config.publish_obstacles:
            self._publishers["obstacles"] = node.create_lifecycle_publisher(PointCloud2, "~/costmap_obstacles", OUTPUT_QOS)
        for name, state in self._cameras.items():
            if state.calibration.pose is None:
                self._report(name, state, f"camera {name} has no {name}.pose: it does not contribute to the costmap")

    def wanted(self) -> bool:
        """Someone subscribes to the grid or its views (transient local: the grid is kept for later ones)."""
        return any(publisher.get_subscription_count() > 0 for publisher in self._publishers.values())

    def contributes(self, camera: str) -> bool:
        state = self._cameras.get(camera)
        return state is not None and state.calibration.pose is not None

    def update(
        self, camera: str, train_ids: np.ndarray, header: Header, camera_info: CameraInfo | None,
        confidence: np.ndarray | None = None,
    ) -> bool:
        """Fold one mask in; False when the camera cannot contribute (reported once, not raised)."""
        state = self._cameras[camera]
        if state.calibration.pose is None:
            return False
        try:
            self._define(camera, state, camera_info, train_ids.shape)
        except DenseASPPError as error:
            self._report(camera, state, f"camera {camera} does not contribute to the costmap: {error}")
            return False
        if not self.costmap.has_camera(camera):
            self._report(
                camera, state,
                f"camera {camera} has neither camera_info nor {camera}.intrinsics: it does not contribute to the costmap",
            )
            return False
        projection = self.costmap.projection(camera, train_ids.shape)
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
        self.costmap.update(camera, train_ids, _seconds(header), confidence)
        if self._newest is None or _seconds(header) >= _seconds(self._newest):
            self._newest = header
        return True

    def _define(self, camera: str, state: _CameraState, info: CameraInfo | None, mask_shape: tuple[int, int]) -> None:
        """(Re)build the camera's model when its CameraInfo changed; fall back to the parameters."""
        calibration = state.calibration
        if info is not None:
            key = (tuple(info.k), tuple(info.d), info.distortion_model, info.width, info.height,
                   info.binning_x, info.binning_y, info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height)
            if key != state.info_key:
                model = camera_model_from_info(info)  # raises on zeros in K and the like, before anything changes
                self.costmap.set_camera(camera, model, calibration.pose)
                state.info_key = key
            return
        if calibration.intrinsics is not None and not self.costmap.has_camera(camera):
            width, height = calibration.image_size or (mask_shape[1], mask_shape[0])
            self.costmap.set_camera(camera, CameraModel.from_intrinsics(calibration.intrinsics, width, height), calibration.pose)

    def _report(self, camera: str, state: _CameraState, problem: str) -> None:
        if state.problem != problem:
            state.problem = problem
            self.node.get_logger().warning(problem)

    def publish(self) -> None:
        """Publish the fused grid (and its views) stamped with the newest contributing image."""
        if self._newest is None:
            return
        snapshot = self.costmap.snapshot()
        header = Header(stamp=self._newest.stamp, frame_id=self.config.settings.grid.frame_id)
        self._publishers["costmap"].publish(occupancy_grid_msg(snapshot, header))
        if "color" in self._publishers:
            self._publishers["color"].publish(rgb8_msg(header, bird_eye_image(snapshot)))
        if "obstacles" in self._publishers:
            self._publishers["obstacles"].publish(obstacle_cloud_msg(snapshot, header))

    def destroy(self) -> None:
        for publisher in self._publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self._publishers.clear()


def _seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9

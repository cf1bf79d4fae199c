"""Semantic costmap: class masks of calibrated cameras -> one navigation grid (no ROS imports)."""

from .camera import CameraModel, CameraModelError
from .costs import CostTable, CostTableError, default_cost_table_path, load_cost_table
from .egomotion import (
    OdometryRefused, OdometryTrack, Pose2D, PoseBuffer, PoseUnavailable, RollingWindow, odometry_pose, yaw_of_quaternion,
)
from .fusion import CostmapSettings, SemanticCostmap, Snapshot
from .grid import GridError, GridSpec
from .pose import CameraPose
from .projection import RULES, AspectMismatch, GroundProjection, ProjectionError, project_pixels
from .render import bird_eye_image

__all__ = [
    "RULES",
    "AspectMismatch",
    "CameraModel",
    "CameraModelError",
    "CameraPose",
    "CostTable",
    "CostTableError",
    "CostmapSettings",
    "GridError",
    "GridSpec",
    "GroundProjection",
    "OdometryRefused",
    "OdometryTrack",
    "Pose2D",
    "PoseBuffer",
    "PoseUnavailable",
    "ProjectionError",
    "RollingWindow",
    "SemanticCostmap",
    "Snapshot",
    "bird_eye_image",
    "default_cost_table_path",
    "load_cost_table",
    "odometry_pose",
    "project_pixels",
    "yaw_of_quaternion",
]

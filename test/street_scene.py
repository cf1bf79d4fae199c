"""A flat street rendered by ray casting through the package's camera model: ground truth for costmap tests.

The expected cells follow from the scene's geometry (where the car's box stands), not from the
projection code under test.
"""

from __future__ import annotations

import math

import numpy as np

from denseaspp_ros.costmap import CameraModel, CameraPose, GridSpec, load_cost_table
from denseaspp_ros.labels import CITYSCAPES

ROAD, SIDEWALK, TERRAIN, CAR, SKY = (CITYSCAPES.class_names.index(n) for n in ("road", "sidewalk", "terrain", "car", "sky"))
TABLE = load_cost_table(None, CITYSCAPES)
WIDTH, HEIGHT = 640, 320
FOCAL = 400.0
CAMERA = CameraModel.from_intrinsics([FOCAL, FOCAL, 319.5, 159.5], WIDTH, HEIGHT)
HEIGHT_M, PITCH = 1.5, 0.1
FRONT = CameraPose(0.0, 0.0, HEIGHT_M, 0.0, PITCH, 0.0)
GRID = GridSpec(resolution=0.1, length_x=40.0, length_y=20.0, origin_x=-10.0, origin_y=-10.0)


def row_of_ground_point(distance: float) -> float:
    """Closed form: image row of the ground point ``distance`` m straight ahead of the camera."""
    below_horizontal = math.atan2(HEIGHT_M, distance)
    return CAMERA.K[1, 2] + FOCAL * math.tan(below_horizontal - PITCH)


def render(
    camera: CameraModel, pose: CameraPose, car: tuple[float, float, float, float] | None = None, ground: int = ROAD
) -> np.ndarray:
    """Class mask of a flat street seen by ``camera``: ``ground`` everywhere, sky above the horizon,
    and optionally a car: an axis-aligned box (x_near, x_far, half_width, height) in the vehicle frame."""
    u, v = np.meshgrid(np.arange(camera.width, dtype=float), np.arange(camera.height, dtype=float))
    rays = camera.normalize(np.stack([u.ravel(), v.ravel()], 1)) @ pose.optical_to_vehicle().T
    mask = np.full(rays.shape[0], SKY, np.uint8)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(rays[:, 2] < 0, -pose.z / rays[:, 2], np.inf)
        mask[np.isfinite(t_ground)] = ground
        if car is not None:
            x_near, x_far, half_width, height = car
            hit = np.zeros(len(rays), bool)
            best = np.full(len(rays), np.inf)
            # The box's faces: the near face (x = x_near), both sides (y = +-half_width) and the top.
            for axis, value in ((0, x_near), (1, half_width), (1, -half_width), (2, height)):
                t = (value - pose.position[axis]) / rays[:, axis]
                point = pose.position + t[:, None] * rays
                inside = (
                    (t > 0)
                    & (point[:, 0] >= x_near - 1e-9) & (point[:, 0] <= x_far + 1e-9)
                    & (np.abs(point[:, 1]) <= half_width + 1e-9)
                    & (point[:, 2] >= -1e-9) & (point[:, 2] <= height + 1e-9)
                )
                closer = inside & (t < best)
                best[closer] = t[closer]
                hit |= inside
            mask[hit & (best < t_ground)] = CAR
    return mask.reshape(camera.height, camera.width)


CAR_BOX = (12.0, 16.5, 0.9, 1.5)  # a car 12 m ahead, 1.8 m wide, 1.5 m tall


def quaternion_of(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix whose trace is above -1 (as TF would carry it)."""
    w = math.sqrt(max(0.0, 1 + np.trace(rotation))) / 2
    return ((rotation[2, 1] - rotation[1, 2]) / (4 * w), (rotation[0, 2] - rotation[2, 0]) / (4 * w),
            (rotation[1, 0] - rotation[0, 1]) / (4 * w), w)

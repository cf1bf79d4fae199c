"""Where a camera sits on the vehicle: REP 103 body pose in the vehicle frame, and its optical frame.

``C.pose: [x, y, z, roll, pitch, yaw]`` is the pose of the camera's *body* frame (x forward,
y left, z up) in the vehicle frame (``base_link``, REP 105), with roll, pitch and yaw applied as
R = Rz(yaw) Ry(pitch) Rx(roll) (fixed axes x, y, z: the convention of tf2 and URDF). A positive
pitch tilts the lens down. Image pixels live in the *optical* frame (z forward, x right, y down),
a fixed rotation of the body frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .camera import CameraModelError, check_finite

# Columns: the optical frame's x (right), y (down) and z (forward) axes in body coordinates.
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraPose:
    """Body-frame pose of a camera in the vehicle frame: metres and radians."""

    x: float
    y: float
    z: float
    roll: float
    pitch: float
    yaw: float

    @classmethod
    def from_list(cls, values: Sequence[float], what: str = "pose") -> CameraPose:
        numbers = check_finite(values, what)
        if len(numbers) != 6:
            raise CameraModelError(f"{what} must be [x, y, z, roll, pitch, yaw], got {len(numbers)} values: {numbers}")
        return cls(*numbers)

    @classmethod
    def from_optical(cls, translation: Sequence[float], optical_to_vehicle: np.ndarray) -> CameraPose:
        """The body pose of a camera whose optical frame (its images' header frame) lies at
        ``translation`` with rotation ``optical_to_vehicle`` in the vehicle frame: what TF gives."""
        body = np.asarray(optical_to_vehicle, np.float64) @ OPTICAL_TO_BODY.T
        pitch = math.asin(max(-1.0, min(1.0, -body[2, 0])))  # R = Rz(yaw) Ry(pitch) Rx(roll)
        if abs(math.cos(pitch)) < 1e-6:  # looking straight down or up: roll and yaw turn alike, take it as yaw
            roll, yaw = 0.0, math.atan2(-body[0, 1], body[1, 1])
        else:
            roll, yaw = math.atan2(body[2, 1], body[2, 2]), math.atan2(body[1, 0], body[0, 0])
        x, y, z = (float(v) for v in translation)
        return cls(x, y, z, roll, pitch, yaw)

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def body_to_vehicle(self) -> np.ndarray:
        """Rotation taking body-frame vectors to the vehicle frame."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        return rz @ ry @ rx

    def optical_to_vehicle(self) -> np.ndarray:
        """Rotation taking optical-frame rays (pixels) to the vehicle frame."""
        return self.body_to_vehicle() @ OPTICAL_TO_BODY


def rotation_of_quaternion(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The rotation matrix of a unit quaternion (geometry_msgs order x, y, z, w)."""
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if not math.isfinite(norm) or norm < 1e-9:
        raise CameraModelError(f"quaternion ({x}, {y}, {z}, {w}) is not a rotation")
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])

"""The one frame type of the core: a camera image with its facts, made once by an adapter.

Adapters (ROS messages via ``image_messages``, bags, image folders, synthetic drives) produce
``Frame``s; the engine, evaluation, the costmap and the writers consume them, so nobody derives a
stamp, a channel order or a label conversion again. No ROS imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def stamp_ns(header: Any) -> int:
    """A std_msgs/Header's stamp (rclpy's or rosbags') as integer nanoseconds: negative before
    1970, 0 when unstamped. Plain integers: rclpy's Time refuses stamps before 1970."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


@dataclass(frozen=True)
class Frame:
    """One image: its pixels in the order they came, when and by which camera it was taken, and
    its ground truth when the source has one."""

    pixels: np.ndarray  # HxWx3 uint8
    bgr: bool  # channel order of pixels (OpenCV decodes to BGR; raw rgb8 stays RGB: no swap on the host)
    stamp_ns: int = 0  # header stamp in integer nanoseconds (0: unstamped)
    frame_id: str = ""  # the optical frame of the camera (header.frame_id)
    name: str = ""  # where it came from: a path relative to its split, or the stamp as text
    labels: np.ndarray | None = None  # HxW uint8 trainIds of the frame, for evaluation and training

    def rgb(self) -> np.ndarray:
        """The pixels in RGB order (a contiguous copy only when they are BGR)."""
        return np.ascontiguousarray(self.pixels[..., ::-1]) if self.bgr else self.pixels

"""A synthetic drive: the ego vehicle moves along its lane, one rendered frame per camera period.

The default camera is the one `config/params.yaml` gives segmentation_node's front camera
(Cityscapes' intrinsics and mounting), scaled to the requested image size, so a drive's bag can
be replayed into the node as it is configured out of the box.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..costmap import CameraModel, CameraPose, GridSpec
from .render import Frame, Renderer
from .scene import Scene, generate_scene

# config/params.yaml's front camera (Cityscapes' car): [fx, fy, cx, cy] at 2048x1024, and mounting.
DEFAULT_INTRINSICS = (2262.52, 2265.3, 1096.98, 513.14)
DEFAULT_CALIBRATED_SIZE = (2048, 1024)
DEFAULT_MOUNT = CameraPose(1.7, 0.1, 1.22, 0.0, 0.05, 0.0)
# A fixed start time, so every drive (and bag) of a seed is byte-for-byte reproducible.
START_STAMP_NS = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class DriveConfig:
    frames: int = 50
    seed: int = 0
    size: tuple[int, int] = (256, 512)  # (height, width)
    fps: float = 10.0
    speed: float = 8.0  # m/s
    intrinsics: tuple[float, float, float, float] | None = None  # at ``size``; None: the default camera scaled
    mount: CameraPose = DEFAULT_MOUNT
    grid: GridSpec = field(default_factory=GridSpec)
    noise: float = 2.0  # sensor noise, standard deviation in 8-bit levels

    def camera(self) -> CameraModel:
        height, width = self.size
        if self.intrinsics is not None:
            return CameraModel.from_intrinsics(self.intrinsics, width, height)
        return CameraModel.from_intrinsics(DEFAULT_INTRINSICS, *DEFAULT_CALIBRATED_SIZE).scaled_to(width, height)

    @property
    def length(self) -> float:
        """Metres driven."""
        return self.frames * self.speed / self.fps

    def stamp_ns(self, index: int) -> int:
        return START_STAMP_NS + round(index * 1e9 / self.fps)


@dataclass(frozen=True)
class DriveFrame:
    index: int
    stamp_ns: int
    ego_x: float  # the vehicle's true position along the street (odom x, metres; y and heading stay 0)
    frame: Frame
    ground_truth: np.ndarray  # (grid height, grid width) uint8 trainIds around the vehicle


def drive(config: DriveConfig) -> Iterator[DriveFrame]:
    """Render the drive frame by frame (nothing is kept: memory does not grow with its length)."""
    scene: Scene = generate_scene(config.seed, config.length)
    renderer = Renderer(config.camera(), config.mount, seed=config.seed, noise=config.noise)
    for index in range(config.frames):
        ego_x = index * config.speed / config.fps
        yield DriveFrame(
            index,
            config.stamp_ns(index),
            ego_x,
            renderer.render(scene, ego_x),
            renderer.ground_truth_grid(scene, ego_x, config.grid),
        )

"""A synthetic drive: the ego vehicle moves along its lane, one rendered frame per camera period.

The default camera is the one `config/params.yaml` gives segmentation_node's front camera
(Cityscapes' intrinsics and mounting), scaled to the requested image size, so a drive's bag can
be replayed into the node as it is configured out of the box.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..costmap import CameraModel, CameraPose, GridSpec, Pose2D
from ..labels import IGNORE_INDEX
from .faults import Delivered, Fault, FaultInjector
from .render import Frame, Renderer
from .scene import Scene, generate_scene

# config/params.yaml's front camera (Cityscapes' car): [fx, fy, cx, cy] at 2048x1024, and mounting.
DEFAULT_INTRINSICS = (2262.52, 2265.3, 1096.98, 513.14)
DEFAULT_CALIBRATED_SIZE = (2048, 1024)
DEFAULT_MOUNT = CameraPose(1.7, 0.1, 1.22, 0.0, 0.05, 0.0)
# A fixed start time, so every drive (and bag) of a seed is byte-for-byte reproducible.
START_STAMP_NS = 1_700_000_000 * 1_000_000_000
MAP_FRAME = "odom"  # the world frame of the drive's odometry and of its true map (REP 105)


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
    odometry_noise: float = 0.0  # odometry's position jitter, standard deviation in metres
    odometry_drift: float = 0.0  # odometry's heading error per metre driven, radians (it bends the path it reports)
    faults: tuple[Fault, ...] = ()  # what goes wrong with the camera, and when (``faults.parse_faults``)

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

    def odometry(self, distance: float, rng: np.random.Generator) -> Pose2D:
        """What wheel odometry reports after ``distance`` metres of the straight drive: its heading
        error grows by ``odometry_drift`` per metre (the path it integrates bends), plus jitter."""
        heading = self.odometry_drift * distance
        if heading:
            x, y = math.sin(heading) / self.odometry_drift, (1.0 - math.cos(heading)) / self.odometry_drift
        else:
            x, y = distance, 0.0
        if self.odometry_noise:
            x, y = x + rng.normal(0.0, self.odometry_noise), y + rng.normal(0.0, self.odometry_noise)
        return Pose2D(x, y, heading)


@dataclass(frozen=True)
class DriveFrame:
    index: int
    stamp_ns: int
    ego_x: float  # the vehicle's true position along the street (odom x, metres; y and heading stay 0)
    odometry: Pose2D  # what odometry reports (the true pose unless the drive has odometry noise or drift)
    frame: Frame  # what the camera should see: the truth
    ground_truth: np.ndarray  # (grid height, grid width) uint8 trainIds around the vehicle
    camera: Delivered  # what the camera delivers: ``frame.rgb`` and ``stamp_ns`` unless a fault is active

    @property
    def faults(self) -> tuple[str, ...]:
        """The fault kinds active in this frame (the truth a health monitor is scored against)."""
        return self.camera.faults


def drive(config: DriveConfig) -> Iterator[DriveFrame]:
    """Render the drive frame by frame (nothing is kept: memory does not grow with its length)."""
    scene: Scene = generate_scene(config.seed, config.length, config.speed)
    renderer = Renderer(config.camera(), config.mount, seed=config.seed, noise=config.noise)
    odometry_rng = np.random.default_rng([config.seed, 1])
    injector = FaultInjector(config.faults, config.seed, config.size, config.noise)
    for index in range(config.frames):
        ego_x = index * config.speed / config.fps
        now = scene.at(index / config.fps)  # the traffic where it is at this frame
        frame = renderer.render(now, ego_x)
        stamp = config.stamp_ns(index)
        yield DriveFrame(
            index,
            stamp,
            ego_x,
            config.odometry(ego_x, odometry_rng),
            frame,
            renderer.ground_truth_grid(now, ego_x, config.grid),
            injector.deliver(frame.rgb, stamp, index / config.fps),
        )


def truth_map(config: DriveConfig, margin: float = 40.0) -> tuple[np.ndarray, GridSpec]:
    """The drive's true classes (trainIds) in odom, base_link at the first frame, over the whole
    drive and ``margin`` metres around it: what an accumulated map is scored against.

    What stands still is exact; a cell any mover covered during the drive is unknown (255), since
    no one class was true there for the whole drive (the per-frame grids have the movers exact).
    """
    grid = GridSpec(config.grid.resolution, config.length + 2 * margin, 2 * margin, -margin, -margin, MAP_FRAME)
    renderer = Renderer(config.camera(), config.mount, seed=config.seed, noise=0.0)
    scene = generate_scene(config.seed, config.length, config.speed)
    static = renderer.ground_truth_grid(scene.static(), 0.0, grid)
    movers = scene.movers()
    bare = renderer.ground_truth_grid(movers.static(), 0.0, grid)  # the ground alone
    swept = np.zeros(static.shape, bool)
    for index in range(config.frames):
        swept |= renderer.ground_truth_grid(movers.at(index / config.fps), 0.0, grid) != bare
    return np.where(swept, IGNORE_INDEX, static).astype(np.uint8), grid

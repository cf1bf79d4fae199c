"""The nodes' settings, each declared once (no ROS imports).

``ros/settings.py`` declares these as ROS parameters and reads them back; the commands that
segment take their engine flags from ``EngineSettings`` and ``NodeSettings.max_image_pixels``;
``config/*.yaml`` and the README's table are checked against them by the tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..costmap import CameraPose, CostmapSettings
from ..declarations import SettingError, group, setting, validate
from ..image_messages import MAX_IMAGE_PIXELS
from ..inference.backends import BackendSettings
from ..inference.segmenter import PRECISIONS
from ..model import AUTO_MODEL, MODEL_NAMES
from ..model.checkpoint import MAX_INPUT_SIDE
from ..ros.names import SEGMENTATION_NODE  # a name, no ROS import
from .camera_health import HealthSettings
from .health import HealthLimits

RELIABILITIES = ("best_effort", "reliable")
OUTPUT_KINDS = ("mask", "mask_color", "overlay", "confidence")


def number_list(name: str, raw: Any, count: int, meaning: str) -> tuple[float, ...] | None:
    """``count`` finite numbers, or None for an empty value.

    Any sequence rclpy hands over: a list from YAML, an ``array('d')`` or ``array('q')`` from a
    parameter set at run time.
    """
    if raw is None or (isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) == 0):
        return None
    if isinstance(raw, str) or not isinstance(raw, Sequence) or len(raw) != count:
        raise SettingError(f"{name} must be {meaning} ({count} numbers) or empty, got {raw!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise SettingError(f"{name} must hold numbers, got {raw!r}")
    if not all(math.isfinite(v) for v in raw):
        raise SettingError(f"{name} must be finite numbers, got {list(raw)}")
    return tuple(float(v) for v in raw)


def pose_values(name: str, raw: Any) -> tuple[float, ...] | None:
    """``<camera>.pose``: six finite numbers with the camera above the ground, or None for empty."""
    pose = number_list(name, raw, 6, "[x, y, z, roll, pitch, yaw]")
    if pose is not None and pose[2] <= 0:
        raise SettingError(f"{name}: z = {pose[2]} m puts the camera at or below the ground (z must be > 0)")
    return pose


def intrinsics_values(name: str, raw: Any) -> tuple[float, ...] | None:
    """``<camera>.intrinsics``: [fx, fy, cx, cy] with positive focal lengths, or None for empty."""
    intrinsics = number_list(name, raw, 4, "[fx, fy, cx, cy]")
    if intrinsics is not None and (intrinsics[0] <= 0 or intrinsics[1] <= 0):
        raise SettingError(f"{name}: fx and fy must be positive, got {list(intrinsics)}")
    return intrinsics


def camera_names(name: str, names: Sequence[str]) -> None:
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise SettingError(f"{name} must be distinct names made of letters, digits and _, got {list(names)}")


@dataclass(frozen=True)
class EngineSettings:
    """The node's ``model.*`` parameters; the commands that segment share their flags."""

    name: str = setting(
        AUTO_MODEL, "network variant: auto (identified from the weights), DenseASPP121/161/169/201 or MobileNetDenseASPP",
        choices=(AUTO_MODEL, *MODEL_NAMES),
    )
    weights: str = setting(
        "weights/denseASPP161.pkl",
        "checkpoint (.pkl of the release, .pt or .safetensors); demo = the synthetic-world demo weights; empty = none",
    )
    labels: str = setting("cityscapes", "class set: cityscapes or a label set YAML file (sets the class count)")
    device: str = setting("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    precision: str = setting(
        "auto", "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16 (torch on CUDA), int8 (openvino)",
        choices=("auto", *PRECISIONS, "int8"),
    )
    input_height: int = setting(
        0, "network input height in pixels; 0 = the size the weights declare (demo: 384x768), else the camera's",
        low=0, high=MAX_INPUT_SIDE,
    )
    input_width: int = setting(
        0, "network input width in pixels; 0 = as for input_height (set both or neither)",
        low=0, high=MAX_INPUT_SIDE,
    )
    multiscale: bool = setting(False, "multi-scale + flip inference (about 12x the compute)")
    runtime: BackendSettings = group(BackendSettings, flatten=True)

    def __post_init__(self) -> None:
        validate(self)
        if (self.input_height == 0) != (self.input_width == 0):
            raise SettingError("set both model.input_height and model.input_width, or neither (0)")

    @property
    def input_size(self) -> tuple[int, int] | None:
        return (self.input_height, self.input_width) if self.input_height else None


@dataclass(frozen=True)
class PublishSettings:
    """``publish.*``: which images each camera publishes, and their QoS."""

    mask: bool = setting(True, "publish ~/<camera>/mask (mono8 trainIds)")
    mask_color: bool = setting(True, "publish ~/<camera>/mask_color (rgb8 palette)")
    overlay: bool = setting(False, "publish ~/<camera>/overlay (image blended with the palette)")
    confidence: bool = setting(False, "publish ~/<camera>/confidence (mono8, max softmax probability x 255)")
    reliability: str = setting("reliable", "QoS reliability of the outputs: reliable or best_effort", choices=RELIABILITIES)
    depth: int = setting(1, "QoS history depth of the outputs", low=1, high=100)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(kind for kind in OUTPUT_KINDS if getattr(self, kind))


@dataclass(frozen=True)
class DiagnosticsSettings:
    """``diagnostics.*``: how often /diagnostics is published, and when a camera turns WARN/ERROR."""

    period: float = setting(1.0, "seconds between /diagnostics messages", low=0.1, high=60.0)
    limits: HealthLimits = group(HealthLimits, flatten=True)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class CostmapOutputSettings:
    """The ``costmap.*`` parameters: how the grid is filled (``fusion``) and what a node publishes of it."""

    fusion: CostmapSettings = group(CostmapSettings, flatten=True)
    max_stamp_skew: float = setting(
        0.5, "frames stamped further ahead of this node's clock are refused (seconds)", low=0.0, high=3600.0
    )
    odometry_topic: str = setting(
        "", "nav_msgs/Odometry of the vehicle: the grid is kept in its frame (odom) as a window that follows the "
        "vehicle; empty = a vehicle-centric grid in costmap.frame_id",
    )
    global_frame: str = setting(
        "", "without odometry_topic: the world frame (e.g. odom) whose TF to costmap.frame_id places the vehicle; "
        "needs tf2_ros; empty = none",
    )
    transform_tolerance: float = setting(
        0.1, "an image stamp this far outside the odometry (or TF) kept still takes the nearest pose (seconds)",
        low=0.0, high=10.0,
    )
    classes_file: str = setting("", "class -> cost table (costmap.yaml); empty = the built-in table of the label set")
    publish_color: bool = setting(False, "publish ~/costmap_color: rgb8 bird's-eye image of the classes")
    publish_obstacles: bool = setting(False, "publish ~/costmap_obstacles: PointCloud2 of obstacle ground contacts")

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class NodeCostmapSettings:
    """segmentation_node's ``costmap.*``: the costmap's own settings, and whether there is one."""

    enabled: bool = setting(True, "publish ~/costmap: the masks of the cameras with a pose, projected onto the ground")
    output: CostmapOutputSettings = group(CostmapOutputSettings, flatten=True)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class Calibration:
    """``<camera>.pose``/``intrinsics``/``image_width``/``image_height``: what the costmap knows of a
    camera from parameters (camera_info, when it comes, wins). Empty lists mean unknown."""

    pose: tuple[float, ...] = setting(
        (), "[x, y, z, roll, pitch, yaw] of the camera body (REP 103) in costmap.frame_id; empty = from TF "
        "(the images' frame) where tf2_ros is installed, else no costmap",
        check=pose_values, element=float,
    )
    intrinsics: tuple[float, ...] = setting(
        (), "[fx, fy, cx, cy] used while no camera_info arrives; empty = none", check=intrinsics_values, element=float
    )
    image_width: int = setting(0, "image width the intrinsics are for; 0 = the masks' width", low=0, high=65535)
    image_height: int = setting(0, "image height the intrinsics are for; 0 = the masks' height", low=0, high=65535)

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "pose", tuple(float(v) for v in self.pose))
        object.__setattr__(self, "intrinsics", tuple(float(v) for v in self.intrinsics))
        if (self.image_width == 0) != (self.image_height == 0):
            raise SettingError("set both image_width and image_height of a camera, or neither (0)")

    @property
    def camera_pose(self) -> CameraPose | None:
        return CameraPose(*self.pose) if self.pose else None

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) the intrinsics are for; None: the masks' size."""
        return (self.image_width, self.image_height) if self.image_width else None


@dataclass(frozen=True)
class CameraSettings:
    """``<camera>.*`` of segmentation_node."""

    image_topic: str = setting(
        "{camera}/image_raw", "sensor_msgs/Image (or CompressedImage) topic; relative names resolve in the node's namespace"
    )
    compressed: bool = setting(False, "subscribe to sensor_msgs/CompressedImage (jpeg/png) instead of Image")
    camera_info_topic: str = setting("", "sensor_msgs/CameraInfo topic checked against the images; empty = none")
    reliability: str = setting(
        "best_effort", "QoS reliability of the input: best_effort (sensor data) or reliable", choices=RELIABILITIES
    )
    depth: int = setting(1, "QoS history depth of the input", low=1, high=100)
    calibration: Calibration = group(Calibration, flatten=True)
    name: str = ""  # the camera's name, from ``cameras``

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class NodeSettings:
    """segmentation_node's parameters (each camera's are ``cameras``' ``CameraSettings``)."""

    model: EngineSettings = group(EngineSettings)
    allow_untrained: bool = setting(False, "allow configuring without weights (random masks: tests and benchmarks only)")
    max_batch: int = setting(4, "most frames (one per camera) run as one batch", low=1, high=64)
    max_image_pixels: int = setting(
        MAX_IMAGE_PIXELS, "larger images (by their declared size) are refused before decoding", low=1, high=2**31 - 1
    )
    cameras: tuple[str, ...] = setting(
        ("front",), "camera names; each gets <name>.image_topic etc. (read once at start-up)", check=camera_names
    )
    publish: PublishSettings = group(PublishSettings)
    overlay_alpha: float = setting(0.5, "weight of the palette in the overlay", low=0.0, high=1.0)
    diagnostics: DiagnosticsSettings = group(DiagnosticsSettings)
    camera_health: HealthSettings = group(HealthSettings)
    autostart: bool = setting(True, "configure and activate on start-up (no lifecycle manager needed)")
    costmap: NodeCostmapSettings = group(NodeCostmapSettings)
    camera_settings: tuple[CameraSettings, ...] = field(default=())  # one per camera, read with them

    def __post_init__(self) -> None:
        validate(self)
        if not self.publish.outputs and not self.costmap.enabled:
            raise SettingError("every publish.* output and the costmap are disabled: nothing to do")


@dataclass(frozen=True)
class CostmapCameraSettings:
    """``<camera>.*`` of semantic_costmap_node."""

    mask_topic: str = setting(
        f"{SEGMENTATION_NODE}/{{camera}}/mask",
        "sensor_msgs/Image mono8 class ids (trainIds of the label set); relative names resolve in the node's namespace",
    )
    camera_info_topic: str = setting("", "sensor_msgs/CameraInfo of the camera; empty = use intrinsics")
    calibration: Calibration = group(Calibration, flatten=True)
    name: str = ""

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class CostmapNodeSettings:
    """semantic_costmap_node's parameters (each camera's are ``CostmapCameraSettings``)."""

    cameras: tuple[str, ...] = setting(
        ("front",), "camera names; each gets <name>.mask_topic etc. (read once at start-up)", check=camera_names
    )
    labels: str = setting("cityscapes", "class set of the masks: cityscapes or a label set YAML file")
    autostart: bool = setting(True, "configure and activate on start-up (no lifecycle manager needed)")
    costmap: CostmapOutputSettings = group(CostmapOutputSettings)
    diagnostics: DiagnosticsSettings = group(DiagnosticsSettings)
    camera_settings: tuple[CostmapCameraSettings, ...] = field(default=())

    def __post_init__(self) -> None:
        validate(self)

"""The node's parameters: names, defaults, descriptions and ranges, read into typed settings.

The names are a stable interface (launch files and YAML configurations use them); they are
declared up front so ``ros2 param list/describe`` shows them before the node is configured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from ..costmap import CameraPose, CostmapSettings, GridSpec
from ..costmap.projection import RULES
from ..errors import DenseASPPError
from ..image_messages import MAX_IMAGE_PIXELS
from ..serving.health import HealthLimits

RELIABILITIES = ("best_effort", "reliable")
OUTPUT_KINDS = ("mask", "mask_color", "overlay", "confidence")


def _integer(low: int, high: int) -> dict[str, Any]:
    return {"integer_range": [IntegerRange(from_value=low, to_value=high, step=1)]}


def _floating(low: float, high: float) -> dict[str, Any]:
    return {"floating_point_range": [FloatingPointRange(from_value=low, to_value=high, step=0.0)]}


# The costmap library's own defaults, declared once (costmap/), are the parameters' defaults.
_GRID, _FUSION = GridSpec(), CostmapSettings()

# name: (default, description, extra descriptor fields)
# The grid and its rules: shared by segmentation_node and semantic_costmap_node.
COSTMAP_PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "costmap.frame_id": (_GRID.frame_id, "frame of the grid and of the camera poses (the vehicle, REP 105)", {}),
    "costmap.resolution": (_GRID.resolution, "cell size in metres", _floating(0.005, 100.0)),
    "costmap.length_x": (_GRID.length_x, "grid extent along x in metres", _floating(0.01, 10000.0)),
    "costmap.length_y": (_GRID.length_y, "grid extent along y in metres", _floating(0.01, 10000.0)),
    "costmap.origin_x": (_GRID.origin_x, "x of the outer corner of cell (0, 0) in costmap.frame_id, metres", {}),
    "costmap.origin_y": (_GRID.origin_y, "y of the outer corner of cell (0, 0) in costmap.frame_id, metres", {}),
    "costmap.max_range": (_FUSION.max_range, "ground points farther than this from the camera are ignored, metres", _floating(0.1, 10000.0)),
    "costmap.decay_time": (_FUSION.decay_time, "seconds after which a cell no camera sees again returns to unknown", _floating(0.01, 3600.0)),
    "costmap.max_stamp_skew": (
        0.5, "frames stamped further ahead of this node's clock are refused (seconds)", _floating(0.0, 3600.0)
    ),
    "costmap.classes_file": ("", "class -> cost table (costmap.yaml); empty = the built-in table of the label set", {}),
    "costmap.rule": (_FUSION.rule, "cost of a cell from its pixels: max (highest cost wins) or majority (by pixel count)", {}),
    "costmap.occluded_unknown": (_FUSION.occluded_unknown, "cells in view whose ground is hidden become unknown at once (else they decay)", {}),
    "costmap.publish_color": (False, "publish ~/costmap_color: rgb8 bird's-eye image of the classes", {}),
    "costmap.publish_obstacles": (False, "publish ~/costmap_obstacles: PointCloud2 of obstacle ground contacts", {}),
}

NODE_PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "model.name": (
        "auto", "network variant: auto (identified from the weights), DenseASPP121/161/169/201 or MobileNetDenseASPP", {}
    ),
    "model.weights": (
        "weights/denseASPP161.pkl",
        "checkpoint (.pkl of the release, .pt or .safetensors); demo = the synthetic-world demo weights; empty = none",
        {},
    ),
    "model.labels": ("cityscapes", "class set: cityscapes or a label set YAML file (sets the class count)", {}),
    "model.device": ("auto", "auto (CUDA when available), cpu, cuda or cuda:N", {}),
    "model.precision": ("auto", "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16", {}),
    "model.input_height": (0, "network input height in pixels; 0 = the camera's resolution", _integer(0, 8192)),
    "model.input_width": (0, "network input width in pixels; 0 = the camera's resolution", _integer(0, 8192)),
    "model.multiscale": (False, "multi-scale + flip inference (about 12x the compute)", {}),
    "allow_untrained": (False, "allow configuring without weights (random masks: tests and benchmarks only)", {}),
    "max_batch": (4, "most frames (one per camera) run as one batch", _integer(1, 64)),
    "max_image_pixels": (
        MAX_IMAGE_PIXELS, "larger images (by their declared size) are refused before decoding", _integer(1, 2**31 - 1)
    ),
    "cameras": (["front"], "camera names; each gets <name>.image_topic etc. (read once at start-up)", {}),
    "publish.mask": (True, "publish ~/<camera>/mask (mono8 trainIds)", {}),
    "publish.mask_color": (True, "publish ~/<camera>/mask_color (rgb8 palette)", {}),
    "publish.overlay": (False, "publish ~/<camera>/overlay (image blended with the palette)", {}),
    "publish.confidence": (False, "publish ~/<camera>/confidence (mono8, max softmax probability x 255)", {}),
    "publish.reliability": ("reliable", "QoS reliability of the outputs: reliable or best_effort", {}),
    "publish.depth": (1, "QoS history depth of the outputs", _integer(1, 100)),
    "overlay_alpha": (0.5, "weight of the palette in the overlay", _floating(0.0, 1.0)),
    "diagnostics.period": (1.0, "seconds between /diagnostics messages", _floating(0.1, 60.0)),
    "diagnostics.silence_timeout": (2.0, "WARN when a camera sends nothing for this long (ERROR after 5x)", _floating(0.1, 3600.0)),
    "diagnostics.max_latency": (1.0, "WARN when p95 latency exceeds this many seconds (ERROR above 2x)", _floating(0.001, 3600.0)),
    "diagnostics.max_error_fraction": (
        0.1, "WARN when more of a camera's frames fail over the last 5 s (ERROR when all do)", _floating(0.0, 1.0)
    ),
    "autostart": (True, "configure and activate on start-up (no lifecycle manager needed)", {}),
    "costmap.enabled": (True, "publish ~/costmap: the masks of the cameras with a pose, projected onto the ground", {}),
    **COSTMAP_PARAMETERS,
}


def camera_parameters(camera: str) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    return {
        f"{camera}.image_topic": (
            f"{camera}/image_raw", "sensor_msgs/Image (or CompressedImage) topic; relative names resolve in the node's namespace", {}
        ),
        f"{camera}.compressed": (False, "subscribe to sensor_msgs/CompressedImage (jpeg/png) instead of Image", {}),
        f"{camera}.camera_info_topic": ("", "sensor_msgs/CameraInfo topic checked against the images; empty = none", {}),
        f"{camera}.reliability": ("best_effort", "QoS reliability of the input: best_effort (sensor data) or reliable", {}),
        f"{camera}.depth": (1, "QoS history depth of the input", _integer(1, 100)),
        **calibration_parameters(camera),
    }


def calibration_parameters(camera: str) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    """Where a camera sits and, without camera_info, how it sees: what the costmap needs of it."""
    # An empty list cannot carry a type, so these are dynamically typed and checked when read.
    untyped = {"dynamic_typing": True}
    return {
        f"{camera}.pose": (
            [], "[x, y, z, roll, pitch, yaw] of the camera body (REP 103) in costmap.frame_id; empty = no costmap", untyped
        ),
        f"{camera}.intrinsics": ([], "[fx, fy, cx, cy] used while no camera_info arrives; empty = none", untyped),
        f"{camera}.image_width": (0, "image width the intrinsics are for; 0 = the masks' width", _integer(0, 65535)),
        f"{camera}.image_height": (0, "image height the intrinsics are for; 0 = the masks' height", _integer(0, 65535)),
    }


def declare(node: Node, parameters: dict[str, tuple[Any, str, dict[str, Any]]]) -> None:
    for name, (default, description, extra) in parameters.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description, **extra))


@dataclass(frozen=True)
class Calibration:
    """What the costmap knows of a camera from parameters (camera_info, when it comes, wins)."""

    pose: CameraPose | None
    intrinsics: tuple[float, float, float, float] | None
    image_size: tuple[int, int] | None  # (width, height) the intrinsics are for; None = the masks' size


@dataclass(frozen=True)
class CostmapOutputSettings:
    """The ``costmap.*`` parameters: how the grid is filled (``fusion``) and what a node publishes of it."""

    fusion: CostmapSettings
    classes_file: str
    publish_color: bool
    publish_obstacles: bool
    max_stamp_skew: float


@dataclass(frozen=True)
class CameraSettings:
    name: str
    image_topic: str
    compressed: bool
    camera_info_topic: str
    reliability: str
    depth: int
    calibration: Calibration


@dataclass(frozen=True)
class NodeSettings:
    model_name: str
    weights: str
    labels: str
    device: str
    precision: str
    input_size: tuple[int, int] | None
    multiscale: bool
    allow_untrained: bool
    max_batch: int
    max_image_pixels: int
    cameras: tuple[CameraSettings, ...]
    outputs: tuple[str, ...]
    output_reliability: str
    output_depth: int
    overlay_alpha: float
    diagnostics_period: float
    health: HealthLimits
    costmap: CostmapOutputSettings | None  # None: costmap.enabled is false


class SettingsError(ValueError):
    """A parameter value the node cannot work with."""


def read_settings(node: Node) -> NodeSettings:
    """Read and cross-check the declared parameters (ranges are enforced by ROS itself)."""

    def value(name: str) -> Any:
        return node.get_parameter(name).value

    def checked(name: str) -> Any:
        """A value that passes the same check as a change at run time."""
        chosen = value(name)
        check_parameter(name, chosen)
        return chosen

    height, width = value("model.input_height"), value("model.input_width")
    if (height == 0) != (width == 0):
        raise SettingsError("set both model.input_height and model.input_width, or neither (0)")
    cameras = tuple(
        CameraSettings(
            name=camera,
            image_topic=value(f"{camera}.image_topic"),
            compressed=value(f"{camera}.compressed"),
            camera_info_topic=value(f"{camera}.camera_info_topic"),
            reliability=checked(f"{camera}.reliability"),
            depth=value(f"{camera}.depth"),
            calibration=read_calibration(node, camera),
        )
        for camera in camera_names(node)
    )
    outputs = tuple(kind for kind in OUTPUT_KINDS if value(f"publish.{kind}"))
    costmap = read_costmap_output_settings(node) if value("costmap.enabled") else None
    if not outputs and costmap is None:
        raise SettingsError("every publish.* output and the costmap are disabled: nothing to do")
    return NodeSettings(
        model_name=value("model.name"),
        weights=value("model.weights"),
        labels=value("model.labels"),
        device=value("model.device"),
        precision=value("model.precision"),
        input_size=(height, width) if height else None,
        multiscale=value("model.multiscale"),
        allow_untrained=value("allow_untrained"),
        max_batch=value("max_batch"),
        max_image_pixels=value("max_image_pixels"),
        cameras=cameras,
        outputs=outputs,
        output_reliability=checked("publish.reliability"),
        output_depth=value("publish.depth"),
        overlay_alpha=value("overlay_alpha"),
        diagnostics_period=value("diagnostics.period"),
        health=HealthLimits(
            silence_timeout=value("diagnostics.silence_timeout"),
            max_latency=value("diagnostics.max_latency"),
            max_error_fraction=value("diagnostics.max_error_fraction"),
        ),
        costmap=costmap,
    )


def read_costmap_output_settings(node: Node) -> CostmapOutputSettings:
    """The costmap.* parameters, checked together (a grid that cannot exist is refused here)."""

    def value(name: str) -> Any:
        return node.get_parameter(f"costmap.{name}").value

    try:
        grid = GridSpec(
            resolution=value("resolution"),
            length_x=value("length_x"),
            length_y=value("length_y"),
            origin_x=value("origin_x"),
            origin_y=value("origin_y"),
            frame_id=value("frame_id"),
        )
        fusion = CostmapSettings(
            grid=grid,
            max_range=value("max_range"),
            decay_time=value("decay_time"),
            rule=value("rule"),
            occluded_unknown=value("occluded_unknown"),
        )
    except DenseASPPError as error:
        raise SettingsError(str(error)) from None
    return CostmapOutputSettings(
        fusion, value("classes_file"), value("publish_color"), value("publish_obstacles"), value("max_stamp_skew")
    )


def read_calibration(node: Node, camera: str) -> Calibration:
    """``<camera>.pose``/``intrinsics``/``image_width``/``image_height``: empty lists mean unknown."""

    pose = pose_values(f"{camera}.pose", node.get_parameter(f"{camera}.pose").value)
    intrinsics = intrinsics_values(f"{camera}.intrinsics", node.get_parameter(f"{camera}.intrinsics").value)
    width = node.get_parameter(f"{camera}.image_width").value
    height = node.get_parameter(f"{camera}.image_height").value
    if (width == 0) != (height == 0):
        raise SettingsError(f"set both {camera}.image_width and {camera}.image_height, or neither (0)")
    return Calibration(CameraPose(*pose) if pose else None, intrinsics, (width, height) if width else None)


def number_list(name: str, raw: Any, count: int, meaning: str) -> tuple[float, ...] | None:
    """``count`` finite numbers, or None for an empty value.

    Any sequence rclpy hands over: a list from YAML, an ``array('d')`` or ``array('q')`` from a
    parameter set at run time.
    """
    if raw is None or (isinstance(raw, Sequence) and not isinstance(raw, str) and len(raw) == 0):
        return None
    if isinstance(raw, str) or not isinstance(raw, Sequence) or len(raw) != count:
        raise SettingsError(f"{name} must be {meaning} ({count} numbers) or empty, got {raw!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        raise SettingsError(f"{name} must hold numbers, got {raw!r}")
    if not all(math.isfinite(v) for v in raw):
        raise SettingsError(f"{name} must be finite numbers, got {list(raw)}")
    return tuple(float(v) for v in raw)


def pose_values(name: str, raw: Any) -> tuple[float, ...] | None:
    """``<camera>.pose``: six finite numbers with the camera above the ground, or None for empty."""
    pose = number_list(name, raw, 6, "[x, y, z, roll, pitch, yaw]")
    if pose is not None and pose[2] <= 0:
        raise SettingsError(f"{name}: z = {pose[2]} m puts the camera at or below the ground (z must be > 0)")
    return pose


def intrinsics_values(name: str, raw: Any) -> tuple[float, ...] | None:
    """``<camera>.intrinsics``: [fx, fy, cx, cy] with positive focal lengths, or None for empty."""
    intrinsics = number_list(name, raw, 4, "[fx, fy, cx, cy]")
    if intrinsics is not None and (intrinsics[0] <= 0 or intrinsics[1] <= 0):
        raise SettingsError(f"{name}: fx and fy must be positive, got {list(intrinsics)}")
    return intrinsics


def check_parameter(name: str, value: Any) -> None:
    """The checks of one parameter that need no other (ranges are ROS's): for changes at run time.

    Raises ``SettingsError`` with the reason; read_settings applies the same rules at configure.
    """
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "reliability" and value not in RELIABILITIES:
        raise SettingsError(f"{name} must be one of {', '.join(RELIABILITIES)}, got {value!r}")
    if leaf == "pose":
        pose_values(name, value)
    elif leaf == "intrinsics":
        intrinsics_values(name, value)
    elif name == "costmap.rule" and value not in RULES:
        raise SettingsError(f"costmap.rule must be {' or '.join(RULES)}, got {value!r}")


def camera_names(node: Node) -> list[str]:
    names = list(node.get_parameter("cameras").value)
    if not names or len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise SettingsError(f"cameras must be distinct names made of letters, digits and _, got {names}")
    return names

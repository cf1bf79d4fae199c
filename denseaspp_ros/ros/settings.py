"""The node's parameters: names, defaults, descriptions and ranges, read into typed settings.

The names are a stable interface (launch files and YAML configurations use them); they are
declared up front so ``ros2 param list/describe`` shows them before the node is configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

RELIABILITIES = ("best_effort", "reliable")
OUTPUT_KINDS = ("mask", "mask_color", "overlay", "confidence")


def _integer(low: int, high: int) -> dict[str, Any]:
    return {"integer_range": [IntegerRange(from_value=low, to_value=high, step=1)]}


def _floating(low: float, high: float) -> dict[str, Any]:
    return {"floating_point_range": [FloatingPointRange(from_value=low, to_value=high, step=0.0)]}


# name: (default, description, extra descriptor fields)
NODE_PARAMETERS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "model.name": ("DenseASPP161", "network variant: DenseASPP121/161/169/201 or MobileNetDenseASPP", {}),
    "model.weights": ("", "checkpoint (.pkl of the release, project .pt or .safetensors); empty = none", {}),
    "model.labels": ("cityscapes", "class set: cityscapes or a label set YAML file (sets the class count)", {}),
    "model.device": ("auto", "auto (CUDA when available), cpu, cuda or cuda:N", {}),
    "model.precision": ("auto", "auto (fp16 on CUDA, fp32 on CPU), fp32, fp16 or bf16", {}),
    "model.input_height": (0, "network input height in pixels; 0 = the camera's resolution", _integer(0, 8192)),
    "model.input_width": (0, "network input width in pixels; 0 = the camera's resolution", _integer(0, 8192)),
    "model.multiscale": (False, "multi-scale + flip inference (about 12x the compute)", {}),
    "allow_untrained": (False, "allow configuring without weights (random masks: tests and benchmarks only)", {}),
    "max_batch": (4, "most frames (one per camera) run as one batch", _integer(1, 64)),
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
    "autostart": (True, "configure and activate on start-up (no lifecycle manager needed)", {}),
}


def camera_parameters(camera: str) -> dict[str, tuple[Any, str, dict[str, Any]]]:
    return {
        f"{camera}.image_topic": (f"/{camera}/image_raw", "sensor_msgs/Image (or CompressedImage) topic", {}),
        f"{camera}.compressed": (False, "subscribe to sensor_msgs/CompressedImage (jpeg/png) instead of Image", {}),
        f"{camera}.camera_info_topic": ("", "sensor_msgs/CameraInfo topic checked against the images; empty = none", {}),
        f"{camera}.reliability": ("best_effort", "QoS reliability of the input: best_effort (sensor data) or reliable", {}),
        f"{camera}.depth": (1, "QoS history depth of the input", _integer(1, 100)),
    }


def declare(node: Node, parameters: dict[str, tuple[Any, str, dict[str, Any]]]) -> None:
    for name, (default, description, extra) in parameters.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description, **extra))


@dataclass(frozen=True)
class CameraSettings:
    name: str
    image_topic: str
    compressed: bool
    camera_info_topic: str
    reliability: str
    depth: int


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
    cameras: tuple[CameraSettings, ...]
    outputs: tuple[str, ...]
    output_reliability: str
    output_depth: int
    overlay_alpha: float
    diagnostics_period: float
    silence_timeout: float
    max_latency: float


class SettingsError(ValueError):
    """A parameter value the node cannot work with."""


def read_settings(node: Node) -> NodeSettings:
    """Read and cross-check the declared parameters (ranges are enforced by ROS itself)."""

    def value(name: str) -> Any:
        return node.get_parameter(name).value

    def reliability(name: str) -> str:
        chosen = value(name)
        if chosen not in RELIABILITIES:
            raise SettingsError(f"{name} must be one of {', '.join(RELIABILITIES)}, got {chosen!r}")
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
            reliability=reliability(f"{camera}.reliability"),
            depth=value(f"{camera}.depth"),
        )
        for camera in camera_names(node)
    )
    outputs = tuple(kind for kind in OUTPUT_KINDS if value(f"publish.{kind}"))
    if not outputs:
        raise SettingsError("every publish.* output is disabled: nothing to do")
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
        cameras=cameras,
        outputs=outputs,
        output_reliability=reliability("publish.reliability"),
        output_depth=value("publish.depth"),
        overlay_alpha=value("overlay_alpha"),
        diagnostics_period=value("diagnostics.period"),
        silence_timeout=value("diagnostics.silence_timeout"),
        max_latency=value("diagnostics.max_latency"),
    )


def camera_names(node: Node) -> list[str]:
    names = list(node.get_parameter("cameras").value)
    if not names or len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
        raise SettingsError(f"cameras must be distinct names made of letters, digits and _, got {names}")
    return names

"""The nodes' settings (``serving/settings.py``) as ROS parameters: declared, described, read back.

The names are a stable interface (launch files and YAML configurations use them); they are
declared up front so ``ros2 param list/describe`` shows them before the node is configured.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter as RosParameter
from rclpy.node import Node

from ..declarations import Parameter, build, parameters

_INT_LIMIT = 2**63 - 1
# The array type of an empty list: rclpy would take [] for a byte array.
_ARRAY_TYPES = {float: RosParameter.Type.DOUBLE_ARRAY, int: RosParameter.Type.INTEGER_ARRAY,
                str: RosParameter.Type.STRING_ARRAY, bool: RosParameter.Type.BOOL_ARRAY}


def descriptor(parameter: Parameter) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows; ROS enforces the range itself, the rest is checked on set."""
    declaration, default = parameter.declaration, parameter.default
    description = parameter.description
    if declaration.choices is not None:
        description += f" (one of: {', '.join(map(str, declaration.choices))})"
    extra: dict[str, Any] = {}
    bounded = declaration.low is not None or declaration.high is not None
    if bounded and isinstance(default, int) and not isinstance(default, bool):
        low = -_INT_LIMIT if declaration.low is None else int(declaration.low)
        high = _INT_LIMIT if declaration.high is None else int(declaration.high)
        extra["integer_range"] = [IntegerRange(from_value=low, to_value=high, step=1)]
    elif bounded and isinstance(default, float):
        low = -float("inf") if declaration.low is None else float(declaration.low)
        high = float("inf") if declaration.high is None else float(declaration.high)
        extra["floating_point_range"] = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    if parameter.empty_sequence:
        extra["dynamic_typing"] = True  # rcl hands `[]` over as "not set", which a static type refuses
    return ParameterDescriptor(description=description, **extra)


def declare(node: Node, declared: dict[str, Parameter]) -> None:
    for parameter in declared.values():
        default = list(parameter.default) if isinstance(parameter.default, tuple) else parameter.default
        value = node.declare_parameter(parameter.name, default, descriptor(parameter))
        if parameter.empty_sequence and value.type_ in (RosParameter.Type.BYTE_ARRAY, RosParameter.Type.NOT_SET):
            # rclpy takes an empty list for a byte array and rcl an empty YAML list (`pose: []`,
            # `-p pose:=[]`) for "not set": give the empty list its element type, which
            # `ros2 param describe` shows and `ros2 param dump` writes so that it loads back.
            node.set_parameters([RosParameter(parameter.name, _ARRAY_TYPES[parameter.declaration.element], [])])


def read(node: Node, settings_type: type, prefix: str = "", **context: str) -> Any:
    """``settings_type`` from the node's declared parameters, every value checked."""
    names = parameters(settings_type, prefix, **context)
    return build(settings_type, {name: node.get_parameter(name).value for name in names}, prefix, **context)


def read_cameras(node: Node, settings_type: type, cameras: list[str]) -> tuple[Any, ...]:
    """One ``settings_type`` per camera, from ``<camera>.*``, with the camera's name."""
    return tuple(replace(read(node, settings_type, f"{camera}.", camera=camera), name=camera) for camera in cameras)

"""One declaration per setting.

A field of a settings dataclass carries its default, what it means and the values it may take.
The ROS parameters (names, descriptors, checks of changes at run time), the command-line flags and
the documented YAML files are derived from it or checked against it, so no setting is typed twice.

    @dataclass(frozen=True)
    class PublishSettings:
        depth: int = setting(1, "QoS history depth of the outputs", low=1, high=100)

Nested settings are groups: ``publish: PublishSettings = group(PublishSettings)`` names its
settings ``publish.depth``; a flattened group keeps the inner names (``costmap.resolution`` comes
from the grid inside the costmap's settings).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import DenseASPPError

_DECLARATION = "denseaspp_ros.declaration"
_GROUP = "denseaspp_ros.group"  # value: whether the group's names are flattened into its parent's


class SettingError(DenseASPPError):
    """A value a setting cannot take; the message names the setting."""


@dataclass(frozen=True)
class Declaration:
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    check: Callable[[str, Any], None] | None = None  # further rules: raises SettingError naming the setting
    parse: Callable[[str], Any] | None = None  # a command-line spelling other than the value's own (HxW)
    metavar: str | None = None
    element: type | None = None  # of a sequence: what an empty default cannot show


def setting(
    default: Any,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Iterable[Any] | None = None,
    check: Callable[[str, Any], None] | None = None,
    parse: Callable[[str], Any] | None = None,
    metavar: str | None = None,
    element: type | None = None,
) -> Any:
    """A dataclass field that is a setting. Sequences are tuples (settings are immutable values);
    an empty one names its ``element`` type, which ROS declares and every value is checked against."""
    if isinstance(default, list):
        raise TypeError("a setting's sequence default is a tuple")
    if isinstance(default, tuple):
        element = element or (type(default[0]) if default else None)
        if element is None:
            raise TypeError("an empty sequence default names its element type")
    declaration = Declaration(
        description, low, high, None if choices is None else tuple(choices), check, parse, metavar, element
    )
    return field(default=default, metadata={_DECLARATION: declaration})


def group(settings_type: type, *, flatten: bool = False) -> Any:
    """A dataclass field holding nested settings, named ``<field>.<setting>`` unless ``flatten``."""
    return field(default_factory=settings_type, metadata={_GROUP: flatten})


@dataclass(frozen=True)
class Parameter:
    """A setting under its full name, as ROS, the command line and YAML files see it."""

    name: str
    default: Any
    declaration: Declaration

    @property
    def description(self) -> str:
        return self.declaration.description

    @property
    def flag(self) -> str:
        return "--" + self.name.rsplit(".", 1)[-1].replace("_", "-")

    @property
    def empty_sequence(self) -> bool:
        """An empty sequence by default: rcl hands an empty YAML list over as "not set"."""
        return isinstance(self.default, tuple) and not self.default

    def convert(self, value: Any) -> Any:
        """``value`` in the setting's own type, checked: YAML and ROS give lists, ints for floats."""
        value = self._typed(value)
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """The setting's own rules (those needing no other setting); raises SettingError."""
        declaration = self.declaration
        if declaration.choices is not None and value not in declaration.choices:
            raise SettingError(f"{self.name} must be one of {', '.join(map(str, declaration.choices))}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = declaration.low, declaration.high
            if (low is not None and not value >= low) or (high is not None and not value <= high):
                raise SettingError(f"{self.name} must be {_range(low, high)}, got {value}")
        if declaration.check is not None:
            declaration.check(self.name, value)

    def _typed(self, value: Any) -> Any:
        default = self.default
        if default is None:  # an optional text
            if value is None or isinstance(value, str):
                return value
            raise SettingError(f"{self.name} must be text, got {value!r}")
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
        elif isinstance(default, int):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif isinstance(default, float):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif isinstance(default, str):
            if isinstance(value, str):
                return value
        elif isinstance(default, tuple):
            if value is None:  # rcl's "not set": how an empty list (`pose: []`, `-p pose:=[]`) arrives
                return ()
            if isinstance(value, Sequence) and not isinstance(value, str):
                return self._sequence(value)
        raise SettingError(f"{self.name} must be {_kind(default)}, got {value!r}")

    def _sequence(self, value: Sequence) -> tuple:
        element = Parameter(f"{self.name} element", self.declaration.element(), Declaration(""))
        return tuple(element._typed(v) for v in value)


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` (``512x1024``) as (height, width): how every size is written on the command line."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected HxW such as 512x1024, got {text!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"sizes must be positive, got {text!r}")
    return height, width


def format_size(size: tuple[int, int]) -> str:
    """(height, width) as ``HxW``, the form ``parse_size`` reads: in headers, reports and logs."""
    return f"{size[0]}x{size[1]}"


def _range(low: float | None, high: float | None) -> str:
    if high is None:
        return f"at least {low:g}"
    if low is None:
        return f"at most {high:g}"
    return f"within [{low:g}, {high:g}]"


def _kind(default: Any) -> str:
    kinds = {bool: "true or false", int: "an integer", float: "a number", str: "text", tuple: "a list"}
    return kinds[type(default)]


def parameters(settings_type: type, prefix: str = "", **context: str) -> dict[str, Parameter]:
    """Every setting of ``settings_type`` by full name, in declaration order.

    ``context`` fills placeholders of text defaults (``{camera}/image_raw`` for each camera).
    """
    found: dict[str, Parameter] = {}
    for item in fields(settings_type):
        if _GROUP in item.metadata:
            inner = prefix if item.metadata[_GROUP] else f"{prefix}{item.name}."
            found.update(parameters(item.default_factory, inner, **context))
        elif _DECLARATION in item.metadata:
            default = item.default
            if context and isinstance(default, str):
                default = default.format(**context)
            found[prefix + item.name] = Parameter(prefix + item.name, default, item.metadata[_DECLARATION])
    return found


def build(settings_type: type, values: Mapping[str, Any], prefix: str = "", **context: str) -> Any:
    """``settings_type`` from ``values`` by full name, each value converted and checked; a missing
    name keeps its default. Rules across settings are the dataclass's own (``__post_init__``)."""
    arguments: dict[str, Any] = {}
    for item in fields(settings_type):
        if _GROUP in item.metadata:
            inner = prefix if item.metadata[_GROUP] else f"{prefix}{item.name}."
            arguments[item.name] = build(item.default_factory, values, inner, **context)
        elif _DECLARATION in item.metadata and prefix + item.name in values:
            default = item.default
            if context and isinstance(default, str):
                default = default.format(**context)
            parameter = Parameter(prefix + item.name, default, item.metadata[_DECLARATION])
            arguments[item.name] = parameter.convert(values[parameter.name])
    return settings_type(**arguments)


def validate(settings: Any) -> None:
    """Convert and check the settings' own fields in place: for ``__post_init__``, so settings built
    in code obey the same rules as those read from ROS, a file or the command line."""
    for item in fields(settings):
        if _DECLARATION in item.metadata:
            parameter = Parameter(item.name, item.default, item.metadata[_DECLARATION])
            object.__setattr__(settings, item.name, parameter.convert(getattr(settings, item.name)))


def add_flags(
    parser: argparse.ArgumentParser,
    settings_type: type,
    names: Iterable[str] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    unset: bool = False,
) -> None:
    """Command-line flags for the settings ``names`` (all when None): ``--batch-size`` for
    ``batch_size``, or the spelling ``flags`` gives (``--model`` for ``model.name``).

    Flags default to the declared default (``defaults`` overrides some), or to None with ``unset``
    so that only the flags given override another source (a configuration file).
    """
    declared = parameters(settings_type)
    for name in declared if names is None else names:
        parameter = declared[name]
        default = None if unset else (defaults or {}).get(name, parameter.default)
        flag = (flags or {}).get(name, parameter.flag)
        kind = _flag_kind(parameter)
        parser.add_argument(flag, dest=flag[2:].replace("-", "_"), default=default, help=_help(parameter, default), **kind)


def _help(parameter: Parameter, default: Any) -> str:
    if default is None:
        default = parameter.default  # unset: what applies when no other source sets it
    if default in (None, "", ()):
        return parameter.description
    if isinstance(default, tuple):
        default = " ".join(map(str, default))
    return f"{parameter.description} (default: {default})"


def _flag_kind(parameter: Parameter) -> dict[str, Any]:
    declaration, default = parameter.declaration, parameter.default
    if isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if declaration.parse is not None:
        return {"type": _checked(parameter, declaration.parse), "metavar": declaration.metavar}
    if isinstance(default, tuple) and default:
        element = type(default[0])  # names come as many as given, numbers as many as the default has
        return {"type": element, "nargs": "+" if element is str else len(default), "metavar": declaration.metavar}
    if declaration.choices is not None:
        return {"choices": declaration.choices}
    parse = str if default is None else type(default)
    return {"type": _checked(parameter, parse), "metavar": declaration.metavar}


def _checked(parameter: Parameter, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: the flag's text parsed, then the setting's own rules."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error) or f"invalid value {text!r}") from None
        try:
            parameter.check(value)
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error).replace(parameter.name, parameter.flag, 1)) from None
        return value

    convert.__name__ = parse.__name__  # argparse names the type in its own errors
    return convert

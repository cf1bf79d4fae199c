"""One declaration per setting: names, checks, flags and ROS descriptors all come from the field."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from denseaspp_ros.declarations import SettingError, add_flags, build, group, parameters, parse_size, setting, validate
from denseaspp_ros.serving.settings import CameraSettings, NodeSettings
from denseaspp_ros.train.config import TrainConfig, load_config
from denseaspp_ros.errors import DenseASPPError


@dataclass(frozen=True)
class Inner:
    depth: int = setting(1, "history depth", low=1, high=100)
    rule: str = setting("max", "how", choices=("max", "majority"))


@dataclass(frozen=True)
class Outer:
    rate: float = setting(2.5, "per second", low=0.0)
    inner: Inner = group(Inner)
    flat: Inner = group(Inner, flatten=True)
    sizes: tuple[int, ...] = setting((4, 8), "two sizes")
    topic: str = setting("{camera}/image", "where")

    def __post_init__(self) -> None:
        validate(self)


def test_groups_are_named_by_their_field_unless_flattened_and_context_fills_defaults():
    declared = parameters(Outer, "cam.", camera="cam")
    assert list(declared) == ["cam.rate", "cam.inner.depth", "cam.inner.rule", "cam.depth", "cam.rule", "cam.sizes", "cam.topic"]
    assert declared["cam.topic"].default == "cam/image"
    assert declared["cam.inner.depth"].flag == "--depth"


def test_build_converts_what_yaml_and_ros_hand_over_and_names_the_setting_it_refuses():
    built = build(Outer, {"rate": 3, "inner.depth": 7, "sizes": [1, 2]})
    assert built.rate == 3.0 and isinstance(built.rate, float)  # an integer where a float is declared
    assert built.inner.depth == 7 and built.flat.depth == 1 and built.sizes == (1, 2)
    with pytest.raises(SettingError, match=r"inner\.depth must be within \[1, 100\], got 0"):
        build(Outer, {"inner.depth": 0})
    with pytest.raises(SettingError, match=r"^rule must be one of max, majority, got 'loud'"):
        build(Outer, {"rule": "loud"})
    with pytest.raises(SettingError, match=r"rate must be a number, got 'fast'"):
        build(Outer, {"rate": "fast"})
    with pytest.raises(SettingError, match=r"sizes element must be an integer, got 1.5"):
        build(Outer, {"sizes": [1.5, 2]})
    with pytest.raises(SettingError, match="rate must be at least 0"):
        build(Outer, {"rate": float("nan")})  # NaN is in no range


def test_settings_built_in_code_obey_the_same_rules():
    with pytest.raises(SettingError, match="rate must be at least 0, got -1"):
        Outer(rate=-1.0)
    assert Outer(sizes=[3, 4]).sizes == (3, 4)  # converted in place, so settings stay hashable values
    with pytest.raises(SettingError, match="set both model.input_height and model.input_width"):
        NodeSettings(model=NodeSettings().model.__class__(input_height=256))


def test_flags_are_derived_with_the_same_checks_and_spellings():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser, Outer, ["rate", "inner.depth", "rule", "sizes"], flags={"rule": "--cost-rule"})
    args = parser.parse_args(["--rate", "4", "--depth", "9", "--cost-rule", "majority", "--sizes", "5", "6"])
    assert (args.rate, args.depth, args.cost_rule, args.sizes) == (4.0, 9, "majority", [5, 6])
    assert parser.parse_args([]).rate == 2.5
    with pytest.raises(argparse.ArgumentError, match="--depth must be within"):
        parser.parse_args(["--depth", "101"])
    unset = argparse.ArgumentParser()
    add_flags(unset, Outer, ["rate"], unset=True)
    assert unset.parse_args([]).rate is None  # left to another source
    assert "(default: 2.5)" in unset.format_help()  # still says what applies


def test_every_train_option_is_a_flag_and_a_config_key_checked_the_same_way(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser, TrainConfig, unset=True)
    flags = {action.dest for action in parser._actions} - {"help"}
    assert flags == set(parameters(TrainConfig))
    config = tmp_path / "train.yaml"
    config.write_text("data: somewhere\nsteps: 0\n")
    with pytest.raises(DenseASPPError, match="training configuration: steps must be at least 1, got 0"):
        load_config(config, {})
    config.write_text("data: somewhere\ncrop: 64x32\n")  # the command line's spelling is not YAML's
    with pytest.raises(DenseASPPError, match="crop must be a list"):
        load_config(config, {})
    assert load_config(config, {"crop": (64, 32)}).crop == (64, 32)  # a flag wins over the file
    assert parse_size("512X1024") == (512, 1024)


def test_camera_settings_take_the_camera_name_into_their_defaults():
    declared = parameters(CameraSettings, "left.", camera="left")
    assert declared["left.image_topic"].default == "left/image_raw"
    assert declared["left.pose"].empty_sequence and declared["left.pose"].default == ()
    with pytest.raises(SettingError, match="left.pose: z = -1.0 m puts the camera at or below the ground"):
        build(CameraSettings, {"left.pose": [0, 0, -1, 0, 0, 0]}, "left.", camera="left")


def test_ros_descriptors_carry_ranges_choices_and_dynamic_typing():
    pytest.importorskip("rclpy", reason="rclpy is not installed (the ROS 2 wheels come with make)")
    from rcl_interfaces.msg import ParameterDescriptor

    from denseaspp_ros.ros.settings import descriptor

    declared = parameters(NodeSettings)
    depth = descriptor(declared["publish.depth"])
    assert isinstance(depth, ParameterDescriptor)
    assert (depth.integer_range[0].from_value, depth.integer_range[0].to_value) == (1, 100)
    alpha = descriptor(declared["overlay_alpha"]).floating_point_range[0]
    assert (alpha.from_value, alpha.to_value) == (0.0, 1.0)
    assert "(one of: best_effort, reliable)" in descriptor(declared["publish.reliability"]).description
    pose = descriptor(parameters(CameraSettings, "front.", camera="front")["front.pose"])
    assert pose.dynamic_typing and not pose.floating_point_range

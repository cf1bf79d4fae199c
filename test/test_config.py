"""The shipped configuration files and the README agree with the parameters the node declares.

config/params.yaml lists every parameter at its declared default, so the documented defaults
cannot drift from the code; config/multi_camera.yaml only uses declared names with values of the
declared types (ROS refuses a float where an integer is declared, and the other way round); both
load through the real rcl YAML parser into a SegmentationNode; the Fast DDS profile is accepted by
the Fast DDS the node runs on and does carry full-resolution best-effort images.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.parameter import Parameter

from denseaspp_ros.ros import costmap_node
from denseaspp_ros.ros.node import SegmentationNode
from denseaspp_ros.declarations import parameters as declared_settings
from denseaspp_ros.serving.settings import CameraSettings, CostmapCameraSettings, CostmapNodeSettings, NodeSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
PARAMETER_FILES = ["params.yaml", "multi_camera.yaml"]
FASTDDS_PROFILE = CONFIG / "fastdds_large_images.xml"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_parameters(file_name: str) -> dict:
    """Dotted parameter name -> value, as ROS reads the file."""
    document = yaml.safe_load((CONFIG / file_name).read_text())
    # "/**" rather than the node's name: rclpy (Humble) matches only "/**" and the exact
    # fully qualified name, so a named section would be ignored under namespace:=...
    assert list(document) == ["/**"], f"{file_name}: one '/**' section expected, got {list(document)}"
    assert list(document["/**"]) == ["ros__parameters"]
    return _flatten(document["/**"]["ros__parameters"])


def declared_parameters(cameras: list[str], settings_type: type = NodeSettings, camera_type: type = CameraSettings) -> dict:
    """Parameter name -> declared default as YAML writes it (lists, not tuples), for these cameras."""
    declared = dict(declared_settings(settings_type))
    for camera in cameras:
        declared.update(declared_settings(camera_type, f"{camera}.", camera=camera))
    return {name: list(p.default) if isinstance(p.default, tuple) else p.default for name, p in declared.items()}


DEFAULT_CAMERAS = list(NodeSettings().cameras)


# The example calibration of the front camera: declared empty (a camera has no pose until told).
EXAMPLE_VALUES = {"front.pose", "front.intrinsics", "front.image_width", "front.image_height"}


def _same_type(value, default) -> bool:
    if isinstance(default, list) and not default:  # dynamically typed number lists (pose, intrinsics)
        return isinstance(value, list) and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
    if isinstance(default, list):
        return isinstance(value, list) and all(type(item) is type(default[0]) for item in value)
    return type(value) is type(default)  # bool is not an int here, 1 is not a float


@pytest.mark.parametrize("file_name", PARAMETER_FILES)
def test_every_key_is_a_declared_parameter_of_the_declared_type(file_name):
    parameters = load_parameters(file_name)
    cameras = parameters.get("cameras", DEFAULT_CAMERAS)
    declared = declared_parameters(cameras)
    unknown = sorted(set(parameters) - set(declared))
    assert not unknown, f"{file_name}: not parameters of segmentation_node: {unknown}"
    for name, value in parameters.items():
        default = declared[name]
        assert _same_type(value, default), (
            f"{file_name}: {name} is {type(value).__name__} {value!r}, declared {type(default).__name__} {default!r}"
        )


def test_params_yaml_lists_every_parameter_at_its_default():
    parameters = load_parameters("params.yaml")
    declared = declared_parameters(DEFAULT_CAMERAS)
    assert sorted(parameters) == sorted(declared), "params.yaml must list exactly the declared parameters"
    differing = {
        name: (value, declared[name])
        for name, value in parameters.items()
        if value != declared[name] and name not in EXAMPLE_VALUES
    }
    assert not differing, f"params.yaml (value, declared default): {differing}"
    assert parameters["front.pose"] and parameters["front.intrinsics"], "the default launch must publish a costmap"


def test_params_yaml_comments_every_parameter():
    commented = 0
    for line in (CONFIG / "params.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or stripped.endswith(":") or not stripped:
            continue  # comments, sections
        commented += 1
        # model.weights carries its explanation on the lines above it
        assert "#" in stripped or stripped.startswith("weights:"), f"no comment on: {line}"
    assert commented == len(declared_parameters(DEFAULT_CAMERAS))


def test_multi_camera_example_shows_three_cameras_batched():
    parameters = load_parameters("multi_camera.yaml")
    cameras = parameters["cameras"]
    assert cameras == ["front", "left", "right"]
    assert parameters["max_batch"] == len(cameras)
    assert [parameters[f"{camera}.compressed"] for camera in cameras].count(True) == 1
    assert {parameters[f"{camera}.reliability"] for camera in cameras} == {"best_effort", "reliable"}
    assert all(parameters[f"{camera}.camera_info_topic"] for camera in cameras)
    topics = [parameters[f"{camera}.image_topic"] for camera in cameras]
    assert len(set(topics)) == len(topics)


def _readme_ros_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## ROS 2\n(.*?)(?=^## )", readme, flags=re.S | re.M)
    assert match, "README.md has no '## ROS 2' section"
    return match.group(1)


def test_readme_parameter_table_matches_the_declared_defaults():
    lines = _readme_ros_section().splitlines()
    start = lines.index("| name | default | meaning |") + 2  # past the header and the rule
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        name, default, _ = (cell.strip().strip("`") for cell in line.strip("|").split("|"))
        rows[name] = yaml.safe_load(default)
    declared = declared_parameters(["<camera>"])
    assert sorted(rows) == sorted(declared), "README parameter table must list exactly the declared parameters"
    differing = {name: (value, declared[name]) for name, value in rows.items() if value != declared[name]}
    assert not differing, f"README (value, declared default): {differing}"


# --- the files through rclpy ---------------------------------------------------------------------


@pytest.fixture
def context():
    """A private rclpy context (conftest keeps discovery on this machine, in a private domain)."""
    context = Context()
    rclpy.init(args=[], context=context)
    yield context
    context.try_shutdown()


def test_segmentation_node_takes_multi_camera_yaml_as_parameter_overrides(context):
    parameters = load_parameters("multi_camera.yaml")
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    node = SegmentationNode(context=context, parameter_overrides=overrides)
    try:
        for name, value in parameters.items():
            assert node.get_parameter(name).value == value, name
        assert node.get_parameter("left.compressed").value is True
        assert node.get_parameter("overlay_alpha").value == NodeSettings().overlay_alpha  # not in the file
        assert node.segmenter is None  # constructing does not configure: no model was loaded
    finally:
        node.destroy_node()


@pytest.mark.parametrize("file_name", PARAMETER_FILES)
def test_parameter_files_load_through_rcl_under_a_namespace(context, file_name):
    """What `ros2 launch ... namespace:=car1` does: rcl parses the file, '/**' matches the node."""
    parameters = load_parameters(file_name)
    arguments = ["--ros-args", "--params-file", str(CONFIG / file_name)]
    node = SegmentationNode(context=context, namespace="/car1", cli_args=arguments)
    try:
        assert node.get_fully_qualified_name() == "/car1/segmentation_node"
        for name, value in parameters.items():
            assert node.get_parameter(name).value == value, name
    finally:
        node.destroy_node()


# --- the Fast DDS profile ------------------------------------------------------------------------


def test_fastdds_profile_has_a_default_participant_with_a_64_mb_shared_memory_segment():
    root = ET.parse(FASTDDS_PROFILE).getroot()  # raises on malformed XML

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    elements = {}
    for element in root.iter():
        elements.setdefault(local(element.tag), []).append(element)
    assert local(root.tag) == "dds"
    descriptors = {}
    for descriptor in elements["transport_descriptor"]:
        fields = {local(child.tag): (child.text or "").strip() for child in descriptor}
        descriptors[fields["transport_id"]] = fields
    kinds = {fields["type"]: fields for fields in descriptors.values()}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert int(kinds["SHM"]["segment_size"]) == 64 * 1024 * 1024
    (participant,) = elements["participant"]
    assert participant.get("is_default_profile") == "true"
    rtps = {local(child.tag): child for child in participant.find("{*}rtps")}
    assert rtps["useBuiltinTransports"].text.strip() == "false"
    assert [child.text.strip() for child in rtps["userTransports"]] == list(descriptors)


def _fastdds_only():
    from rclpy.utilities import get_rmw_implementation_identifier

    if not get_rmw_implementation_identifier().startswith("rmw_fastrtps"):
        pytest.skip("the profile is for Fast DDS (rmw_fastrtps_cpp)")


_PROBE = "import rclpy; rclpy.init(); rclpy.create_node('probe').destroy_node(); rclpy.shutdown()"


def _with_profile(path: Path | None) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_DEFAULT_PROFILES_FILE")}
    if path is not None:
        environment["FASTDDS_DEFAULT_PROFILES_FILE"] = environment["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(path)
    return environment


def _probe(profile: Path) -> subprocess.CompletedProcess:
    """Start a node in a fresh process with ``profile`` as Fast DDS's default profiles file."""
    return subprocess.run(
        [sys.executable, "-c", _PROBE], env=_with_profile(profile), capture_output=True, text=True, timeout=60
    )


def test_fastdds_accepts_the_profile(tmp_path):
    _fastdds_only()
    run = _probe(FASTDDS_PROFILE)
    assert run.returncode == 0, run.stderr
    assert "XMLPARSER" not in run.stdout + run.stderr, run.stdout + run.stderr
    # The check sees parser errors: the same profile with a misspelt element is reported.
    broken = tmp_path / "broken.xml"
    broken.write_text(FASTDDS_PROFILE.read_text().replace("segment_size>", "segment_sise>"))
    run = _probe(broken)
    assert "XMLPARSER" in run.stdout + run.stderr


_IMAGES = 30
_SUBSCRIBER = f"""
import time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("large_image_subscriber")
sizes = []
node.create_subscription(Image, "large_images", lambda m: sizes.append(len(m.data)), qos_profile_sensor_data)
print("ready", flush=True)
deadline = time.monotonic() + 20
while len(sizes) < {_IMAGES} and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
print(len(sizes), min(sizes, default=0), flush=True)
"""
_PUBLISHER = f"""
import time, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("large_image_publisher")
publisher = node.create_publisher(Image, "large_images", qos_profile_sensor_data)
image = Image(height=1024, width=2048, encoding="rgb8", step=2048 * 3, data=bytes(2048 * 1024 * 3))
deadline = time.monotonic() + 10
while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
for _ in range({_IMAGES}):
    publisher.publish(image)
    time.sleep(0.05)
time.sleep(2)  # the samples live in this process's shared-memory segment until read
"""


def test_full_resolution_best_effort_images_get_through_with_the_profile():
    """2048x1024 rgb8 (6 MB) at 20 Hz, sensor-data QoS, between two processes.

    Measured with Fast DDS 3.2: 0 of 100 images arrive with the default 512 KB segment (or when
    only the subscriber uses the profile), 100 of 100 with it.
    """
    _fastdds_only()
    if not Path("/dev/shm").is_dir() or shutil.disk_usage("/dev/shm").free < 256 * 1024 * 1024:
        pytest.skip("needs /dev/shm with room for two 64 MB segments (docker run --shm-size=...)")
    environment = _with_profile(FASTDDS_PROFILE)
    subscriber = subprocess.Popen(
        [sys.executable, "-c", _SUBSCRIBER], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert subscriber.stdout.readline().strip() == "ready"
        subprocess.run([sys.executable, "-c", _PUBLISHER], env=environment, check=True, timeout=60)
        output, errors = subscriber.communicate(timeout=30)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    received, smallest = (int(value) for value in output.split())
    assert received >= 0.8 * _IMAGES, f"{received} of {_IMAGES} images arrived\n{errors}"
    assert smallest == 2048 * 1024 * 3


# --- config/costmap_node.yaml: semantic_costmap_node ------------------------------------------------


def test_costmap_node_yaml_lists_its_parameters_at_their_defaults_and_loads(context):
    parameters = load_parameters("costmap_node.yaml")
    declared = declared_parameters(parameters["cameras"], CostmapNodeSettings, CostmapCameraSettings)
    assert sorted(parameters) == sorted(declared), "costmap_node.yaml must list exactly the declared parameters"
    for name, value in parameters.items():
        assert _same_type(value, declared[name]), f"{name}: {value!r} vs declared {declared[name]!r}"
        assert value == declared[name] or name in EXAMPLE_VALUES, f"{name}: {value!r} is not the default {declared[name]!r}"
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    node = costmap_node.SemanticCostmapNode(context=context, parameter_overrides=overrides)
    try:
        assert node.get_parameter("front.pose").value == parameters["front.pose"]
    finally:
        node.destroy_node()


def test_empty_lists_load_from_yaml_and_the_command_line_and_keep_their_element_type(context, tmp_path):
    """rcl hands `pose: []` and `-p intrinsics:=[]` over as "not set", and rclpy takes an empty
    default for a byte array: both come out as empty double arrays, so configure succeeds and what
    `ros2 param dump` writes loads back."""
    from rclpy.lifecycle import TransitionCallbackReturn

    parameters = {"cameras": ["front", "rear"], "front": {"mask_topic": "/front/mask", "pose": [], "intrinsics": []},
                  "rear": {"mask_topic": "/rear/mask"}}
    file = tmp_path / "params.yaml"
    file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    arguments = ["--ros-args", "--params-file", str(file), "-p", "rear.intrinsics:=[]"]
    node = costmap_node.SemanticCostmapNode(context=context, cli_args=arguments)
    try:
        for name in ("front.pose", "front.intrinsics", "rear.pose", "rear.intrinsics"):
            parameter = node.get_parameter(name)
            assert parameter.type_ == Parameter.Type.DOUBLE_ARRAY and list(parameter.value) == [], name
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        node.destroy_node()

"""launch/seg.launch.py starts the node setup.py installs, with a config file setup.py installs.

`launch`/`launch_ros` come only with a ROS 2 installation (apt), so the first tests read the
launch file's syntax tree instead of importing it; the last one builds the real description where
launch_ros is installed.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from denseaspp_ros.ros.node import NODE_NAME

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "seg.launch.py"
REQUIRED_ARGUMENTS = {"params_file", "weights", "namespace", "use_sim_time", "log_level"}


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and _call_name(node) == name]


def _keywords(call: ast.Call) -> dict[str, ast.expr]:
    return {keyword.arg: keyword.value for keyword in call.keywords}


def _constant(node: ast.expr):
    assert isinstance(node, ast.Constant), f"expected a literal, got {ast.unparse(node)}"
    return node.value


@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


@pytest.fixture(scope="module")
def setup_py() -> dict:
    """Package name, console scripts and data_files (destination, glob pattern) of setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return constants[node.id]
        assert isinstance(node, ast.JoinedStr), ast.unparse(node)
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else str(constants[part.value.id]) for part in node.values
        )

    (setup_call,) = _calls(tree, "setup")
    arguments = _keywords(setup_call)
    data_files = []
    for entry in arguments["data_files"].elts:
        destination, sources = entry.elts
        if isinstance(sources, ast.Call) and _call_name(sources) == "glob":
            data_files.append((text(destination), text(sources.args[0])))
        else:
            data_files.extend((text(destination), text(source)) for source in sources.elts)
    scripts = {}
    for line in ast.literal_eval(arguments["entry_points"])["console_scripts"]:
        name, target = (part.strip() for part in line.split("="))
        scripts[name] = target
    return {"name": text(arguments["name"]), "console_scripts": scripts, "data_files": data_files}


def _installed_at(setup_py: dict, path: str) -> list[str]:
    return [destination for destination, pattern in setup_py["data_files"] if fnmatch.fnmatch(path, pattern)]


def test_package_name_agrees_between_setup_py_and_package_xml(setup_py):
    assert ET.parse(ROOT / "package.xml").getroot().findtext("name") == setup_py["name"] == "denseaspp_ros"


def test_launch_file_starts_the_installed_console_script_under_the_node_name(launch_tree, setup_py):
    (node_call,) = _calls(launch_tree, "Node")
    arguments = _keywords(node_call)
    package, executable = _constant(arguments["package"]), _constant(arguments["executable"])
    assert package == setup_py["name"]
    assert executable in setup_py["console_scripts"]
    assert setup_py["console_scripts"][executable] == "denseaspp_ros.ros.node:main"
    assert _constant(arguments["name"]) == NODE_NAME


def test_launch_file_is_installed(setup_py):
    assert _installed_at(setup_py, "launch/seg.launch.py") == [f"share/{setup_py['name']}/launch"]


def test_default_params_file_exists_and_is_installed_where_the_launch_file_looks(launch_tree, setup_py):
    (share_lookup,) = _calls(launch_tree, "get_package_share_directory")
    assert _constant(share_lookup.args[0]) == setup_py["name"]
    (join,) = [call for call in _calls(launch_tree, "join") if share_lookup in call.args]
    relative = "/".join(_constant(part) for part in join.args[1:])
    assert relative == "config/params.yaml"
    assert (ROOT / relative).is_file()
    installed = _installed_at(setup_py, relative)
    assert installed == [f"share/{setup_py['name']}/config"], f"{relative} is not installed by setup.py's data_files"


def test_every_config_file_is_installed(setup_py):
    files = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "config").iterdir())
    assert "config/fastdds_large_images.xml" in files
    for relative in files:
        assert _installed_at(setup_py, relative) == [f"share/{setup_py['name']}/config"], relative


def test_launch_arguments_are_declared_and_every_configuration_used_is_declared(launch_tree):
    declared = {_constant(call.args[0]) for call in _calls(launch_tree, "DeclareLaunchArgument")}
    assert REQUIRED_ARGUMENTS <= declared
    used = {_constant(call.args[0]) for call in _calls(launch_tree, "LaunchConfiguration")}
    assert used <= declared, f"LaunchConfiguration of undeclared arguments: {used - declared}"
    defaults = {
        _constant(call.args[0]): _constant(_keywords(call)["default_value"])
        for call in _calls(launch_tree, "DeclareLaunchArgument")
        if isinstance(_keywords(call).get("default_value"), ast.Constant)
    }
    assert defaults["use_sim_time"] == "false"
    assert defaults["weights"] == ""  # empty: the params file's model.weights stays in force


def test_weights_override_only_when_given(launch_tree):
    """An empty weights:= must not replace the params file's model.weights with ""."""
    assert ast.unparse(launch_tree).count("'model.weights'") == 1
    (conditional,) = [
        node for node in ast.walk(launch_tree) if isinstance(node, ast.If) and "'model.weights'" in ast.unparse(node)
    ]
    assert "weights" in ast.unparse(conditional.test), "model.weights must be set only when weights:= is given"


def _load_launch_module():
    spec = importlib.util.spec_from_file_location("seg_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_description_builds_with_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not installable here (ROS 2 apt packages only)")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch import LaunchContext
    from launch.actions import OpaqueFunction
    from launch_ros.actions import Node

    try:
        get_package_share_directory("denseaspp_ros")
    except PackageNotFoundError:
        pytest.skip("denseaspp_ros is not in the ament index (colcon build and source install/setup.bash)")
    description = _load_launch_module().generate_launch_description()
    arguments = {argument.name: argument for argument in description.get_launch_arguments()}
    assert REQUIRED_ARGUMENTS <= set(arguments)
    assert arguments["params_file"].default_value[0].perform(LaunchContext()).endswith("config/params.yaml")

    (node_factory,) = [entity for entity in description.entities if isinstance(entity, OpaqueFunction)]
    for weights in ("", "/weights/denseASPP161.pkl"):
        context = LaunchContext()
        for name, argument in arguments.items():
            context.launch_configurations[name] = argument.default_value[0].perform(context)
        context.launch_configurations["weights"] = weights
        (node,) = node_factory.visit(context)
        assert isinstance(node, Node)
        assert (node.node_package, node.node_executable) == ("denseaspp_ros", "segmentation_node")


# --- launch/costmap.launch.py: the standalone costmap node ---------------------------------------

COSTMAP_LAUNCH_FILE = ROOT / "launch" / "costmap.launch.py"


def test_costmap_launch_file_starts_the_standalone_node_with_its_installed_config(setup_py):
    from denseaspp_ros.ros.costmap_node import NODE_NAME as COSTMAP_NODE_NAME

    tree = ast.parse(COSTMAP_LAUNCH_FILE.read_text(), filename=str(COSTMAP_LAUNCH_FILE))
    (node_call,) = _calls(tree, "Node")
    arguments = _keywords(node_call)
    executable = _constant(arguments["executable"])
    assert _constant(arguments["package"]) == setup_py["name"]
    assert setup_py["console_scripts"][executable] == "denseaspp_ros.ros.costmap_node:main"
    assert _constant(arguments["name"]) == COSTMAP_NODE_NAME
    assert _installed_at(setup_py, "launch/costmap.launch.py") == [f"share/{setup_py['name']}/launch"]
    (share_lookup,) = _calls(tree, "get_package_share_directory")
    (join,) = [call for call in _calls(tree, "join") if share_lookup in call.args]
    relative = "/".join(_constant(part) for part in join.args[1:])
    assert relative == "config/costmap_node.yaml" and (ROOT / relative).is_file()
    declared = {_constant(call.args[0]) for call in _calls(tree, "DeclareLaunchArgument")}
    assert {"params_file", "namespace", "use_sim_time", "log_level"} <= declared
    used = {_constant(call.args[0]) for call in _calls(tree, "LaunchConfiguration")}
    assert used <= declared

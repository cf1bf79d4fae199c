"""launch/seg.launch.py starts the node setup.py installs, with a config file setup.py installs;
package.xml declares what the code imports.

`launch`/`launch_ros` come only with a ROS 2 installation (apt), so the first tests read the
launch file's syntax tree instead of importing it, or run it against stand-ins for those modules;
one builds the real description where launch_ros is installed.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
import inspect
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from denseaspp_ros.ros.node import NODE_NAME

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "seg.launch.py"
# launch argument -> the parameter it overrides, only when given (non-empty)
OVERRIDES = {"weights": "model.weights", "model": "model.name", "device": "model.device"}
REQUIRED_ARGUMENTS = {"params_file", "namespace", "use_sim_time", "log_level", *OVERRIDES}


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


def _runs_main_of(target: str, module: str) -> bool:
    """A console script's target ("package.module:function") runs `module`'s main: directly, or
    through a wrapper that names the module (denseaspp_ros.ros.entry)."""
    target_module, function = target.split(":")
    if target_module == module:
        return function == "main"
    source = inspect.getsource(getattr(importlib.import_module(target_module), function))
    return f'"{module}"' in source or f"'{module}'" in source


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
    assert _runs_main_of(setup_py["console_scripts"][executable], "denseaspp_ros.ros.node")
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
    for argument in OVERRIDES:
        assert defaults[argument] == "", argument  # empty: the params file's value stays in force


@pytest.mark.parametrize("argument, parameter", OVERRIDES.items())
def test_overrides_apply_only_when_given(launch_tree, argument, parameter):
    """An empty weights:= (model:=, device:=) must not replace the params file's value with ""."""
    assert ast.unparse(launch_tree).count(repr(parameter)) == 1, parameter
    (conditional,) = [
        node for node in ast.walk(launch_tree) if isinstance(node, ast.If) and repr(parameter) in ast.unparse(node)
    ]
    assert isinstance(conditional.test, ast.Name), ast.unparse(conditional.test)
    (assignment,) = [
        node
        for node in ast.walk(launch_tree)
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == conditional.test.id for target in node.targets
        )
    ]
    assert f"LaunchConfiguration({argument!r}).perform" in ast.unparse(assignment.value), (
        f"{parameter} must be set only when {argument}:= is given"
    )


class _Stand:
    """Stand-ins for the launch/launch_ros classes the launch file uses: they keep their arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Stand):
    def perform(self, context: dict) -> str:
        return context[self.args[0]]


def _stand_in_modules(share: str) -> dict[str, types.ModuleType]:
    modules = {}
    for name, attributes in {
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": lambda package: f"{share}/{package}"},
        "launch": {"LaunchDescription": _Stand},
        "launch.actions": {"DeclareLaunchArgument": _Stand, "OpaqueFunction": _Stand},
        "launch.substitutions": {"LaunchConfiguration": _LaunchConfiguration},
        "launch_ros": {},
        "launch_ros.actions": {"Node": _Stand},
    }.items():
        modules[name] = types.ModuleType(name)
        modules[name].__dict__.update(attributes)
    return modules


def _load_launch_module(path: Path = LAUNCH_FILE):
    spec = importlib.util.spec_from_file_location(path.name.split(".")[0] + "_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "given",
    [{}, {"weights": "/w/denseASPP161.pkl"}, {"model": "MobileNetDenseASPP", "device": "cpu"},
     {"weights": "demo", "model": "MobileNetDenseASPP", "device": "cuda:1"}],
)
def test_launch_arguments_reach_the_node(monkeypatch, given):
    """seg.launch.py run against stand-ins of launch/launch_ros: the Node it makes, for given arguments."""
    for name, module in _stand_in_modules("/opt/share").items():
        monkeypatch.setitem(sys.modules, name, module)
    description = _load_launch_module().generate_launch_description()
    (entities,) = description.args
    defaults = {
        entity.args[0]: entity.kwargs["default_value"] for entity in entities if "default_value" in entity.kwargs
    }
    assert defaults["params_file"] == "/opt/share/denseaspp_ros/config/params.yaml"
    (factory,) = [entity for entity in entities if "function" in entity.kwargs]
    context = {**defaults, "params_file": "/my/params.yaml", **given}
    (node,) = factory.kwargs["function"](context)
    assert (node.kwargs["package"], node.kwargs["executable"], node.kwargs["name"]) == (
        "denseaspp_ros", "segmentation_node", NODE_NAME
    )
    files, *overrides = node.kwargs["parameters"]
    assert files.perform(context) == "/my/params.yaml"
    merged = {}
    for entry in overrides:
        for key, value in entry.items():
            merged[key] = value.perform(context) if isinstance(value, _Stand) else value
    expected = {"use_sim_time": "false", **{OVERRIDES[argument]: value for argument, value in given.items()}}
    assert merged == expected
    # The node's own logger only: a bare --log-level debug turns on rcl's and rmw's too.
    assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "segmentation_node:=info"]
    (namespaced,) = factory.kwargs["function"]({**context, "namespace": "/car1/front", "log_level": "debug"})
    assert namespaced.kwargs["arguments"] == ["--ros-args", "--log-level", "car1.front.segmentation_node:=debug"]


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
    # (weights, model, device)
    for given in ("", "", ""), ("/weights/denseASPP161.pkl", "", ""), ("demo", "MobileNetDenseASPP", "cpu"):
        context = LaunchContext()
        for name, argument in arguments.items():
            context.launch_configurations[name] = argument.default_value[0].perform(context)
        context.launch_configurations.update(zip(OVERRIDES, given))
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
    assert _runs_main_of(setup_py["console_scripts"][executable], "denseaspp_ros.ros.costmap_node")
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


def test_costmap_launch_file_passes_its_arguments_to_the_node(monkeypatch):
    for name, module in _stand_in_modules("/opt/share").items():
        monkeypatch.setitem(sys.modules, name, module)
    (entities,) = _load_launch_module(COSTMAP_LAUNCH_FILE).generate_launch_description().args
    defaults = {entity.args[0]: entity.kwargs["default_value"] for entity in entities if entity.args}
    assert defaults["params_file"] == "/opt/share/denseaspp_ros/config/costmap_node.yaml"
    (factory,) = [entity for entity in entities if "function" in entity.kwargs]
    context = {**defaults, "namespace": "car1", "use_sim_time": "true", "log_level": "debug"}
    (node,) = factory.kwargs["function"](context)
    assert node.kwargs["arguments"] == ["--ros-args", "--log-level", "car1.semantic_costmap_node:=debug"]
    files, sim_time = node.kwargs["parameters"]
    assert files.perform(context) == defaults["params_file"]
    assert sim_time["use_sim_time"].perform(context) == "true"
    assert node.kwargs["namespace"].perform(context) == "car1"


# --- package.xml declares exactly what the code imports ------------------------------------------

# ROS 2 packages: the import name is the package name, its rosdep key.
ROS_PACKAGES = {
    "ament_index_python", "builtin_interfaces", "cv_bridge", "diagnostic_msgs", "geometry_msgs", "launch",
    "launch_ros", "lifecycle_msgs", "nav_msgs", "rcl_interfaces", "rclpy", "rosgraph_msgs", "sensor_msgs", "sensor_msgs_py",
    "std_msgs", "tf2_ros",
    "vision_msgs", "visualization_msgs",
}
# Python libraries: import name -> rosdep key (rosdistro's rosdep/python.yaml).
ROSDEP_KEYS = {
    "PIL": "python3-pil",
    "cv2": "python3-opencv",
    "matplotlib": "python3-matplotlib",
    "numpy": "python3-numpy",
    "pytest": "python3-pytest",
    "rosbags": "python3-rosbags-pip",
    "torch": "python3-torch",
    "tqdm": "python3-tqdm",
    "yaml": "python3-yaml",
}
# No rosdep key exists: import name -> the pip requirement setup.py must list instead.
PIP_ONLY = {"safetensors": "safetensors", "cityscapesscripts": "cityscapesscripts"}


def _catches_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        if handler.type is None:
            return True
        types_ = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names.update(ast.unparse(t) for t in types_)
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _top_level_imports(paths) -> dict[str, dict[str, list[str]]]:
    """{"required"|"optional": {top-level module: [file:line, ...]}}.

    Optional: inside a try that catches ImportError (the module may be missing)."""
    found = {"required": {}, "optional": {}}
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        optional = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.Try) and _catches_import_error(node)
            for statement in node.body
            for inner in ast.walk(statement)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            kind = "optional" if id(node) in optional else "required"
            for name in names:
                found[kind].setdefault(name.split(".")[0], []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _third_party(imports: dict[str, list[str]], local: set[str]) -> dict[str, list[str]]:
    return {
        name: where for name, where in imports.items() if name not in sys.stdlib_module_names and name not in local
    }


def _dependency(name: str, where: list[str]) -> str | None:
    """The rosdep key of an import (None: pip only), or a failure naming the table to extend."""
    if name in ROS_PACKAGES:
        return name
    if name in ROSDEP_KEYS:
        return ROSDEP_KEYS[name]
    if name in PIP_ONLY:
        return None
    pytest.fail(
        f"{name} (imported at {', '.join(where)}) has no entry in test_launch.py's ROS_PACKAGES/ROSDEP_KEYS/PIP_ONLY: "
        "add its rosdep key there and declare it in package.xml"
    )


@pytest.fixture(scope="module")
def package_xml() -> dict[str, set[str]]:
    root = ET.parse(ROOT / "package.xml").getroot()
    keys = {
        tag: {element.text.strip() for element in root.iter(tag)}
        for tag in ("depend", "exec_depend", "test_depend")
    }
    return {"exec": keys["depend"] | keys["exec_depend"], "test": keys["depend"] | keys["test_depend"]}


@pytest.fixture(scope="module")
def pip_requirements() -> dict[str, set[str]]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    (setup_call,) = _calls(tree, "setup")
    arguments = _keywords(setup_call)

    def names(requirements: list[str]) -> set[str]:
        return {_requirement_name(requirement) for requirement in requirements}

    extras = ast.literal_eval(arguments["extras_require"])
    return {"install": names(ast.literal_eval(arguments["install_requires"])), "test": names(extras["test"])}


def _requirement_name(requirement: str) -> str:
    for separator in "<>=!~[; ":
        requirement = requirement.split(separator)[0]
    return requirement.lower()


def test_package_xml_declares_exactly_what_the_package_and_launch_files_import(package_xml, pip_requirements):
    sources = sorted((ROOT / "denseaspp_ros").rglob("*.py")) + sorted((ROOT / "launch").glob("*.py"))
    imports = _top_level_imports(sources)
    required = _third_party(imports["required"], {"denseaspp_ros"})
    keys = {}
    for name, where in required.items():
        key = _dependency(name, where)
        if key is None:
            assert PIP_ONLY[name] in pip_requirements["install"], f"{name} (no rosdep key) is not in install_requires"
        else:
            assert key in package_xml["exec"], f"{name} (imported at {', '.join(where)}): declare <exec_depend>{key}"
            keys[key] = name
    assert package_xml["exec"] <= set(keys), f"declared but not imported: {sorted(package_xml['exec'] - set(keys))}"
    for name, where in _third_party(imports["optional"], {"denseaspp_ros"}).items():
        if name not in required:  # optional everywhere: must not become a hard dependency
            key = _dependency(name, where)
            assert key not in package_xml["exec"], f"{name} is optional ({', '.join(where)}): do not declare {key}"


def test_package_xml_declares_what_the_tests_import(package_xml, pip_requirements):
    tests = sorted((ROOT / "test").glob("*.py"))
    local = {"denseaspp_ros", *(path.stem for path in tests)}
    imports = _top_level_imports(tests)
    needed = set()
    for name, where in _third_party({**imports["optional"], **imports["required"]}, local).items():
        key = _dependency(name, where)
        if key is None:
            assert PIP_ONLY[name] in pip_requirements["install"] | pip_requirements["test"], name
        else:
            assert key in package_xml["exec"] | package_xml["test"], (
                f"{name} (imported at {', '.join(where)}): declare <test_depend>{key}"
            )
            needed.add(key)
    unused = package_xml["test"] - package_xml["exec"] - needed
    assert not unused, f"test_depend that no test imports: {sorted(unused)}"

"""Every command the README and the launch files show works as written: the documentation cannot rot.

`denseaspp ...` lines of the README's code blocks are parsed by the real command-line parser (every
flag, choice and value); inline `denseaspp ...` fragments must use flags and choices the command
has; `ros2 launch denseaspp_ros F ...` lines must name an installed launch file and only the
arguments it declares; `ros2 run denseaspp_ros X` an installed executable. Wherever the demo weights
are named with a network, it must be the network those weights are.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from pathlib import Path

import pytest

from denseaspp_ros.cli import build_parser
from denseaspp_ros.model import AUTO_MODEL, DEMO_WEIGHTS, MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
# A command, not the error it prints ("denseaspp infer: error: ...").
COMMAND = re.compile(r"((?:\.venv/bin/)?denseaspp [\w-]+\b(?!:)(?: [^;`]*)?|ros2 (?:launch|run) denseaspp_ros [^;`]*)")
# Placeholders the prose writes for a value: a valid value of the same kind stands in.
PLACEHOLDERS = {"HxW": "64x128", "N": "2", "R": "1.0", "$seed": "1"}


def _code_block_commands() -> list[tuple[str, str]]:
    """(where, command) of every command in the README's code blocks, continuation lines joined."""
    found, block, joined = [], None, ""
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if line.startswith("```"):
            block = None if block is not None else number
            continue
        if block is None:
            continue
        joined += re.sub(r"\s+#\s.*$", "", line)  # a trailing comment is prose
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        found += [(f"README.md:{number}", match.strip()) for match in COMMAND.findall(joined)]
        joined = ""
    return found


def _inline_commands() -> list[tuple[str, str]]:
    """(where, fragment) of inline `denseaspp ...` / `ros2 ...` code in the README's prose."""
    found, block = [], False
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if line.startswith("```"):
            block = not block
        elif not block:
            # A command with its words, not prose about commands (`denseaspp ...`, `ros2 launch`)
            found += [(f"README.md:{number}", span) for span in re.findall(r"`((?:denseaspp|ros2 \w+) \w[^`]*)`", line)]
    return found


def _launch_docstring_commands() -> list[tuple[str, str]]:
    found = []
    for path in LAUNCH_FILES:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        found += [(path.name, line.strip()) for line in docstring.splitlines() if line.strip().startswith("ros2 ")]
    return found


def _words(command: str) -> list[str]:
    words = shlex.split(command.replace("[", " ").replace("]", " "))  # [--optional parts] are shown as valid
    words = [PLACEHOLDERS.get(word, word) for word in words]
    return words[1:] if words[0].endswith("denseaspp") else words


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _check_demo_weights_network(where: str, settings: dict[str, str]) -> None:
    if settings.get("weights") == DEMO_WEIGHTS.name and settings.get("model") not in (None, AUTO_MODEL, DEMO_WEIGHTS.model):
        raise AssertionError(
            f"{where}: the demo weights are {DEMO_WEIGHTS.model}, not {settings['model']} (leave the model out: auto)"
        )


CODE_BLOCKS = [item for item in _code_block_commands() if "denseaspp " in item[1].split("ros2 run")[0][:30]]
LAUNCHES = [item for item in _code_block_commands() + _inline_commands() + _launch_docstring_commands()
            if item[1].startswith("ros2 launch")]
RUNS = [item for item in _code_block_commands() + _inline_commands() if item[1].startswith("ros2 run")]
FRAGMENTS = [item for item in _inline_commands() if item[1].startswith("denseaspp ")]


def test_the_documentation_shows_commands_of_every_kind():
    assert len(CODE_BLOCKS) >= 20 and len(LAUNCHES) >= 5 and len(RUNS) >= 2 and len(FRAGMENTS) >= 5


@pytest.mark.parametrize("where, command", [item for item in CODE_BLOCKS if not item[1].startswith("ros2")])
def test_every_documented_command_parses_as_written(where, command):
    words = _words(command)
    try:
        args = build_parser().parse_args(words)
    except SystemExit:
        raise AssertionError(f"{where}: `{command}` does not parse") from None
    _check_demo_weights_network(where, {"weights": str(getattr(args, "weights", "") or ""), "model": getattr(args, "model", None)})


@pytest.mark.parametrize("where, fragment", FRAGMENTS)
def test_every_inline_command_uses_flags_and_choices_the_command_has(where, fragment):
    words = _words(fragment)
    parsers = _subparsers()
    for name in words[0].split("/"):  # `denseaspp infer/bench ...` shows two commands
        assert name in parsers, f"{where}: no command {name!r} in `{fragment}`"
        actions = {option: action for action in parsers[name]._actions for option in action.option_strings}
        settings: dict[str, str] = {}
        for position, word in enumerate(words[1:], 1):
            if not word.startswith("--"):
                continue
            assert word in actions, f"{where}: `denseaspp {name}` has no {word} (in `{fragment}`)"
            value = words[position + 1] if position + 1 < len(words) and not words[position + 1].startswith("--") else None
            choices = actions[word].choices
            if choices is not None and value is not None:
                assert value in choices, f"{where}: {word} {value} is not one of {list(choices)}"
            settings[word[2:]] = value
        _check_demo_weights_network(where, settings)


def _declared_launch_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        call.args[0].value for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", getattr(call.func, "attr", "")) == "DeclareLaunchArgument"
        and call.args and isinstance(call.args[0], ast.Constant)
    }


@pytest.mark.parametrize("where, command", LAUNCHES)
def test_every_documented_launch_names_a_launch_file_and_its_arguments(where, command):
    words = shlex.split(command)
    assert words[:3] == ["ros2", "launch", "denseaspp_ros"], f"{where}: `{command}`"
    path = ROOT / "launch" / words[3]
    assert path.is_file(), f"{where}: no launch file {words[3]}"
    settings = dict(word.split(":=", 1) for word in words[4:] if ":=" in word)
    assert len(settings) == len(words[4:]), f"{where}: arguments are name:=value in `{command}`"
    unknown = set(settings) - _declared_launch_arguments(path)
    assert not unknown, f"{where}: {words[3]} declares no {sorted(unknown)}"
    if "model" in settings:
        assert settings["model"] in (AUTO_MODEL, *MODEL_NAMES), f"{where}: no network {settings['model']}"
    _check_demo_weights_network(where, settings)


@pytest.mark.parametrize("where, command", RUNS)
def test_every_documented_ros2_run_names_an_installed_executable(where, command):
    executable = shlex.split(command)[3]
    scripts = re.findall(r'"(\w+) = denseaspp_ros', (ROOT / "setup.py").read_text())
    assert executable in scripts, f"{where}: setup.py installs no {executable} ({scripts})"
    if executable == "denseaspp":
        words = shlex.split(command)[4:]
        assert words and words[0] in _subparsers(), f"{where}: `{command}`"

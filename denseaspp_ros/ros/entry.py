"""Console-script entry points that import the heavy node modules (torch, rclpy) themselves.

A Ctrl-C while those imports run (seconds on a cold start) ends the program quietly with the
shell's status 130, not with a wall of import traceback.
"""

from __future__ import annotations

import importlib
import os
import sys


def _interrupted() -> None:
    """Leave at once with the shell's Ctrl-C status. Not ``sys.exit``: finalising the interpreter
    with a native library (torch, DDS) interrupted half-way through its import can hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _run(module: str) -> None:
    try:
        importlib.import_module(module).main()
    except KeyboardInterrupt:  # before the node's own signal handling is in place
        _interrupted()


def segmentation_node() -> None:
    _run("denseaspp_ros.ros.node")


def semantic_costmap_node() -> None:
    _run("denseaspp_ros.ros.costmap_node")


def denseaspp() -> None:
    try:
        main = importlib.import_module("denseaspp_ros.cli").main
    except KeyboardInterrupt:
        _interrupted()
    sys.exit(main())

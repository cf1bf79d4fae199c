"""Console-script entry points that import the heavy node modules (torch, rclpy) themselves.

A Ctrl-C while those imports run (seconds on a cold start) ends the program quietly with the
shell's status 130, not with a wall of import traceback.
"""

from __future__ import annotations

import importlib
import sys


def _run(module: str) -> None:
    try:
        importlib.import_module(module).main()
    except KeyboardInterrupt:  # before the node's own signal handling is in place
        sys.exit(130)


def segmentation_node() -> None:
    _run("denseaspp_ros.ros.node")


def semantic_costmap_node() -> None:
    _run("denseaspp_ros.ros.costmap_node")


def denseaspp() -> None:
    try:
        main = importlib.import_module("denseaspp_ros.cli").main
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(main())

"""Console-script entry points that import the heavy node modules (torch, rclpy) themselves.

A Ctrl-C while those imports run (seconds on a cold start) ends the program quietly with the
shell's status 130 once they are done, not with a wall of import traceback, and never lets the
node start.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading


def _interrupted() -> None:
    """Leave at once with the shell's Ctrl-C status. Not ``sys.exit``: finalising the interpreter
    with a native library (torch, DDS) interrupted half-way through its import can hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def _import_main(module: str):
    """``module.main``, imported with Ctrl-C noted rather than raised: an exception raised inside a
    third-party import can be swallowed there (CI saw a node start after its Ctrl-C), a flag cannot."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda number, frame: interrupted.set())
    try:
        main = importlib.import_module(module).main
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        _interrupted()
    return main


def _run(module: str) -> None:
    main = _import_main(module)
    try:
        main()
    except KeyboardInterrupt:  # before the node's own signal handling is in place
        _interrupted()


def segmentation_node() -> None:
    _run("denseaspp_ros.ros.node")


def semantic_costmap_node() -> None:
    _run("denseaspp_ros.ros.costmap_node")


def denseaspp() -> None:
    sys.exit(_import_main("denseaspp_ros.cli")())

"""What the package's lifecycle nodes share: ``main()`` (init, autostart, spin, clean shutdown on
signals), configure failures that always reach the log, and parameter changes that never go unnoticed."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Collection
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from ..errors import DenseASPPError
from .settings import SettingsError, check_parameter

_SPIN_STEP_S = 0.1  # how soon a signal is noticed: rcl_wait is not interrupted by Python signal handlers


def run_lifecycle_node(create: Callable[[], LifecycleNode], name: str, args: list[str] | None = None) -> None:
    """Spin the node; with ``autostart`` it configures and activates itself (no lifecycle manager).

    SIGINT and SIGTERM (launch sends both, in turn) stop the spin; the node then finishes the
    batch in flight, stops its worker and only then is the context shut down, so nothing is
    published into a dead context and a second Ctrl-C cannot abort a forward pass half-way.
    """
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as error:  # rcl's RCLError, e.g. a params file it cannot parse: no traceback wall
        raise SystemExit(f"{name}: {error}") from None
    stop = threading.Event()

    def on_signal(number: int, frame: Any) -> None:
        if stop.is_set():
            print(f"{name}: already stopping, finishing the current batch", file=sys.stderr, flush=True)
        stop.set()

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, on_signal)
    node = None
    try:
        executor = SingleThreadedExecutor()
        node = create()
        executor.add_node(node)
        if (
            not stop.is_set()
            and node.get_parameter("autostart").value
            and node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            and not stop.is_set()
        ):
            node.trigger_activate()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=_SPIN_STEP_S)
    except SettingsError as error:  # e.g. camera names, read before the node can configure
        print(f"{name}: {error}", file=sys.stderr)
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()


def configure_failure(node: Node, error: BaseException) -> TransitionCallbackReturn:
    """Log why configure failed, whatever the exception, and stay unconfigured."""
    known = isinstance(error, (DenseASPPError, SettingsError))
    node.get_logger().error(f"configure failed: {error}" if known else f"configure failed: {type(error).__name__}: {error}")
    return TransitionCallbackReturn.FAILURE


def watch_parameters(node: Node, ours: Collection[str], configured: Callable[[], bool]) -> None:
    """Check every run-time parameter change of ours: refuse bad values with the reason, and say
    when an accepted one takes effect (all of them at the next configure), so none is silently ignored."""

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name not in ours:
                continue  # e.g. use_sim_time, which rclpy applies itself
            if parameter.name == "cameras":
                return SetParametersResult(
                    successful=False, reason="cameras is read once at start-up (it declares each camera's parameters): restart the node"
                )
            try:
                check_parameter(parameter.name, parameter.value)
            except SettingsError as error:
                return SetParametersResult(successful=False, reason=str(error))
        for parameter in parameters:
            if parameter.name in ours:
                when = (
                    "at the next configure (deactivate, cleanup, configure, activate)" if configured()
                    else "when the node is configured"
                )
                node.get_logger().info(f"parameter {parameter.name} = {parameter.value!r} accepted: it takes effect {when}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


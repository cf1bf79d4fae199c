"""What the package's lifecycle nodes share: ``main()`` (init, autostart, spin, clean shutdown on
signals), configure failures that always reach the log, and parameter changes that never go unnoticed."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
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
    exit_code = 0
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
    except (SettingsError, ParameterException) as error:  # e.g. camera names or a YAML value of the wrong type
        print(f"{name}: {error}", file=sys.stderr)
        exit_code = 1
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
        # Done: a late signal (launch repeating its SIGINT) must not kill the exit half-way. Python
        # resets its own handlers to the default during finalization, but leaves ignored ones be.
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
    if exit_code:
        sys.exit(exit_code)


class KeyedThrottle:
    """Warnings at most once per ``period`` s for each key (camera, kind, cause).

    rclpy throttles per call site, which would hide a second camera's or a second kind of problem
    behind the first.
    """

    def __init__(self, node: Node, period: float = 5.0) -> None:
        self.node, self.period = node, period
        self._last: dict[tuple, float] = {}

    def warn(self, key: tuple, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -self.period) >= self.period:
            if len(self._last) > 1000:  # keys are kinds, not figures; still, never grow without bound
                self._last = {k: t for k, t in self._last.items() if now - t < self.period}
            self._last[key] = now
            self.node.get_logger().warning(message)


def transition_failure(node: Node, transition: str, error: BaseException) -> TransitionCallbackReturn:
    """Log why a transition failed, whatever the exception (rclpy would swallow it), and refuse it."""
    known = isinstance(error, (DenseASPPError, SettingsError))
    reason = str(error) if known else f"{type(error).__name__}: {error}"
    node.get_logger().error(f"{transition} failed: {reason}")
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
            if parameter.name == "autostart":
                return SetParametersResult(successful=False, reason="autostart is only read at start-up")
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


"""What the package's lifecycle nodes share: ``main()`` (init, autostart, spin, clean shutdown on
signals), the lifecycle around their own wiring (transitions that say why they fail, inputs subscribed
while active), parameter changes that never go unnoticed, and the one log throttle."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo

from ..declarations import Parameter as Setting, SettingError, parameters
from ..errors import DenseASPPError
from ..serving.health import Health, as_text
from .names import DIAGNOSTICS_TOPIC
from .settings import declare

_SPIN_STEP_S = 0.1  # how soon a signal is noticed: rcl_wait is not interrupted by Python signal handlers
LOG_THROTTLE_S = 5.0


class _Interrupted(BaseException):
    """A signal during the autostart transitions: the model load or engine build under way is
    abandoned (its temporary files removed as the exception passes), so the node stops within
    launch's 5 s instead of being killed half-way through an export."""


def run_lifecycle_node(create: Callable[[], LifecycleNode], name: str, args: list[str] | None = None) -> None:
    """Spin the node; with ``autostart`` it configures and activates itself (no lifecycle manager),
    and a transition that fails ends the process with exit code 1 after its reason is logged, so
    launch, systemd and CI see it (without autostart a lifecycle manager drives it and it stays up).

    SIGINT and SIGTERM (launch sends both, in turn) stop the spin; the node then finishes the
    batch in flight, stops its worker and only then is the context shut down, so nothing is
    published into a dead context and a second Ctrl-C cannot abort a forward pass half-way.
    """
    stop = threading.Event()
    transitioning = threading.Event()  # autostart's configure/activate runs on this thread: a signal abandons it

    def on_signal(number: int, frame: Any) -> None:
        if stop.is_set():
            print(f"{name}: already stopping, finishing the current batch", file=sys.stderr, flush=True)
        stop.set()
        if transitioning.is_set():
            transitioning.clear()
            raise _Interrupted

    # Before rclpy.init: a signal in between would otherwise raise out of here with the context up.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, on_signal)
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as error:  # rcl's RCLError, e.g. a params file it cannot parse: no traceback wall
        raise SystemExit(f"{name}: {error}") from None
    node = None
    exit_code = 0
    try:
        executor = SingleThreadedExecutor()
        node = create()
        executor.add_node(node)
        if not stop.is_set() and node.get_parameter("autostart").value:
            transitioning.set()
            try:
                for transition in ("configure", "activate"):
                    if stop.is_set():
                        break
                    if getattr(node, f"trigger_{transition}")() != TransitionCallbackReturn.SUCCESS:
                        print(f"{name}: {transition} failed with autostart (the reason is logged above): exiting",
                              file=sys.stderr, flush=True)
                        exit_code = 1
                        break
            except _Interrupted:
                print(f"{name}: interrupted while starting: stopped, nothing half-built kept", file=sys.stderr, flush=True)
            finally:
                transitioning.clear()
        while not exit_code and not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=_SPIN_STEP_S)
    except (SettingError, ParameterException) as error:  # e.g. camera names or a YAML value of the wrong type
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
    """Log lines at most once per ``period`` s for each key (camera, kind, cause): the nodes' one throttle.

    rclpy throttles per call site, which would hide a second camera's or a second kind of problem
    behind the first.
    """

    def __init__(self, node: Node, period: float = LOG_THROTTLE_S) -> None:
        self.node, self.period = node, period
        self._last: dict[tuple, float] = {}

    def warn(self, key: tuple, message: str) -> None:
        if self._due(key):
            self.node.get_logger().warning(message)

    def error(self, key: tuple, message: str) -> None:
        if self._due(key):
            self.node.get_logger().error(message)

    def _due(self, key: tuple) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, -self.period) < self.period:
            return False
        if len(self._last) > 1000:  # keys are kinds, not figures; still, never grow without bound
            self._last = {k: t for k, t in self._last.items() if now - t < self.period}
        self._last[key] = now
        return True


class CameraLifecycleNode(LifecycleNode):
    """The lifecycle both nodes share around their own wiring.

    Their parameters (the node's and each camera's) are declared up front and every change at run
    time is checked; a transition that fails says why and leaves nothing half-built; inputs are
    subscribed on activate, after the lifecycle publishers are enabled, and dropped on deactivate.
    A node says what configure builds (``build``/``release``), what it subscribes to
    (``subscribe_inputs``, through ``listen``) and what runs while it is active (``start``/``stop``).
    """

    def __init__(self, name: str, settings_type: type, camera_settings_type: type, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        ours = parameters(settings_type)
        declare(self, ours)
        # Read once, here: each camera's parameters are declared under its name.
        self.camera_names = list(ours["cameras"].convert(self.get_parameter("cameras").value))
        for camera in self.camera_names:
            cameras = parameters(camera_settings_type, f"{camera}.", camera=camera)
            declare(self, cameras)
            ours.update(cameras)
        self.camera_info: dict[str, CameraInfo] = {}  # camera -> its newest CameraInfo while active
        self.throttled = KeyedThrottle(self)
        self._inputs: list = []
        self._input_topics: list[str] = []
        self._diagnostics_output: tuple | None = None  # (publisher, timer) while configured
        watch_parameters(self, ours, self.is_configured)

    def start_diagnostics(self, period: float, statuses: Callable[[], list[DiagnosticStatus]]) -> None:
        """Publish ``statuses()`` on /diagnostics every ``period`` seconds until ``stop_diagnostics``."""
        publisher = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)

        def publish() -> None:
            try:
                array = DiagnosticArray(status=statuses())
            except Exception as error:  # a report that fails must not take the node down with it
                self.throttled.error(("diagnostics",), f"/diagnostics not published: {type(error).__name__}: {error}")
                return
            array.header.stamp = self.get_clock().now().to_msg()
            publisher.publish(array)

        # On steady time: a ROS-time timer would never fire under use_sim_time before the first /clock,
        # exactly when /diagnostics has something to say.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_output = (publisher, self.create_timer(period, publish, clock=steady))

    def stop_diagnostics(self) -> None:
        if self._diagnostics_output is not None:
            publisher, timer = self._diagnostics_output
            self.destroy_timer(timer)
            self.destroy_publisher(publisher)
            self._diagnostics_output = None

    def waiting_for_clock(self) -> bool:
        """use_sim_time and no /clock received yet: ROS time is zero, nothing can be aged or stamped."""
        return self.get_clock().now().nanoseconds <= 0

    def diagnostic_status(self, subject: str, health: Health, values: dict) -> DiagnosticStatus:
        """One line of /diagnostics: "<node>: <subject>", its level and message, and its figures as text."""
        return DiagnosticStatus(
            name=f"{self.get_name()}: {subject}",
            level=bytes([health.level]),
            message=health.message,
            hardware_id=self.get_name(),
            values=[KeyValue(key=key, value=as_text(value)) for key, value in values.items()],
        )

    def is_configured(self) -> bool:
        raise NotImplementedError

    def build(self) -> None:
        """Read the parameters and create what the node works and publishes with; raise to refuse configure."""
        raise NotImplementedError

    def release(self) -> None:
        """Undo ``build``, however much of it ran."""
        raise NotImplementedError

    def subscribe_inputs(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Called once the inputs are subscribed."""

    def stop(self) -> None:
        """Called before the inputs are dropped, and on close whatever the state."""

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.build()
        except Exception as error:  # whatever it is, the reason goes to the log, and the node stays up
            self.release()
            return transition_failure(self, "configure", error)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # the lifecycle publishers first: no input meets a disabled one
        try:
            self.subscribe_inputs()
        except Exception as error:  # e.g. an invalid topic name: said, and the node stays inactive
            self._drop_inputs()
            super().on_deactivate(state)
            return transition_failure(self, "activate", error)
        self.start()
        self.get_logger().info("active: subscribed to " + ", ".join(self._input_topics))
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._drop_inputs()
        self.get_logger().info("inactive: unsubscribed")
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.release()
        self.get_logger().info("cleaned up")
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return super().on_shutdown(state)

    def close(self) -> None:
        """Stop and release everything, whatever the lifecycle state (Ctrl-C, errors)."""
        self._drop_inputs()
        self.release()

    def listen(self, message_type: type, topic: str, callback: Callable[[Any], None], qos: QoSProfile) -> None:
        """Subscribe while active: the subscription is dropped on deactivate."""
        self._inputs.append(self.create_subscription(message_type, topic, callback, qos))
        self._input_topics.append(topic)

    def listen_to_camera_info(self, camera: str, topic: str, qos: QoSProfile) -> None:
        """Keep ``camera``'s newest CameraInfo in ``camera_info``; nothing else happens on arrival."""
        self.listen(CameraInfo, topic, lambda msg: self.camera_info.__setitem__(camera, msg), qos)

    def _drop_inputs(self) -> None:
        self.stop()
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs.clear()
        self._input_topics.clear()
        self.camera_info.clear()  # calibrations may change while nothing listens: wait for the next


def transition_failure(node: Node, transition: str, error: BaseException) -> TransitionCallbackReturn:
    """Log why a transition failed, whatever the exception (rclpy would swallow it), and refuse it."""
    known = isinstance(error, DenseASPPError)
    reason = str(error) if known else f"{type(error).__name__}: {error}"
    node.get_logger().error(f"{transition} failed: {reason}")
    return TransitionCallbackReturn.FAILURE


def watch_parameters(node: Node, ours: dict[str, Setting], configured: Callable[[], bool]) -> None:
    """Check every run-time parameter change of ours: refuse bad values with the reason, and say
    when an accepted one takes effect (all of them at the next configure), so none is silently ignored."""

    def on_set(changes: list[Parameter]) -> SetParametersResult:
        for parameter in changes:
            if parameter.name not in ours:
                continue  # e.g. use_sim_time, which rclpy applies itself
            if parameter.name == "cameras":
                return SetParametersResult(
                    successful=False, reason="cameras is read once at start-up (it declares each camera's parameters): restart the node"
                )
            if parameter.name == "autostart":
                return SetParametersResult(successful=False, reason="autostart is only read at start-up")
            try:
                ours[parameter.name].convert(parameter.value)  # the same rules as at configure
            except SettingError as error:
                return SetParametersResult(successful=False, reason=str(error))
        for parameter in changes:
            if parameter.name in ours:
                when = (
                    "at the next configure (deactivate, cleanup, configure, activate)" if configured()
                    else "when the node is configured"
                )
                node.get_logger().info(f"parameter {parameter.name} = {parameter.value!r} accepted: it takes effect {when}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)


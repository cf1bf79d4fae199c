"""``main()`` of the package's lifecycle nodes: init, autostart, spin, clean shutdown on Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from .settings import SettingsError


def run_lifecycle_node(create: Callable[[], LifecycleNode], name: str, args: list[str] | None = None) -> None:
    """Spin the node; with ``autostart`` it configures and activates itself (no lifecycle manager)."""
    try:
        rclpy.init(args=args)
    except RuntimeError as error:  # rcl's RCLError, e.g. a params file it cannot parse: no traceback wall
        raise SystemExit(f"{name}: {error}") from None
    node = None
    try:
        # Built before the (slow) configure, so Ctrl-C never lands in the middle of its constructor.
        executor = SingleThreadedExecutor()
        node = create()
        executor.add_node(node)
        if node.get_parameter("autostart").value and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SettingsError as error:  # e.g. camera names, read before the node can configure
        print(f"{name}: {error}")
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()

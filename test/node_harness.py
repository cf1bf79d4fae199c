"""Run segmentation_node as its own process, as launch would, and talk to it over real DDS.

Shared by the node tests and benchmarks. Whoever imports this must already have confined DDS
to this machine and a private domain (test/conftest.py does it for the tests): the node process
inherits ``os.environ``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

# Console script -> the module of its entry point (used when the script is not installed).
PROGRAMS = {"segmentation_node": "denseaspp_ros.ros.node", "semantic_costmap_node": "denseaspp_ros.ros.costmap_node"}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "cleanup": Transition.TRANSITION_CLEANUP,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
}


# --- the node process -----------------------------------------------------------------------


def node_parameters(cameras: dict[str, dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    """Parameters for a small, fast, untrained CPU node; ``overrides`` use the dotted names.

    The torch backend: with real weights ``auto`` would export an engine at each new image size's
    first frame, seconds in which the tests' short windows expire (test_backends.py and the demo
    test cover the exported backends).
    """
    flat: dict[str, Any] = {
        "model.name": "MobileNetDenseASPP",
        "model.device": "cpu",
        "model.backend": "torch",
        "allow_untrained": True,
        "cameras": list(cameras),
    }
    for camera, settings in cameras.items():
        flat.update({f"{camera}.{key}": value for key, value in settings.items()})
    flat.update(overrides)
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *groups, leaf = name.split(".")
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = value
    return nested


def write_params(path: Path, cameras: dict[str, dict[str, Any]], **overrides: Any) -> Path:
    """A --params-file for any node name (``/**``), the way a launch file's YAML would be written."""
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": node_parameters(cameras, **overrides)}}))
    return path


class NodeProcess:
    """``PROGRAM --ros-args --params-file P -r __node:=NAME`` with its output in a log file."""

    def __init__(
        self,
        name: str,
        params_file: Path,
        log_file: Path,
        env: dict[str, str] | None = None,
        program: str = "segmentation_node",
        namespace: str | None = None,
        arguments: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.log_file = log_file
        script = Path(sys.executable).parent / program
        if script.exists():
            executable = [str(script)]
        else:  # not installed as a console script: the same entry point as a module
            executable = [sys.executable, "-m", PROGRAMS[program]]
        self.command = [*executable, "--ros-args", "--params-file", str(params_file), "-r", f"__node:={name}"]
        if namespace:
            self.command += ["-r", f"__ns:={namespace}"]
        self.command += list(arguments)  # more --ros-args, e.g. -p overrides
        # One torch thread: the CI runners have two cores, shared with the test's own process.
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"}
        self.env.update(env or {})
        self._log = log_file.open("wb")
        self.process = subprocess.Popen(self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident memory from /proc/<pid>/status (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C, as launch sends it; returns the exit status, killing the process if it hangs."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                self._log.close()
                raise AssertionError(f"{self.name} ignored SIGINT for {timeout} s and was killed; log:\n{self.log()}")
        self._log.close()
        return self.process.returncode

    def assert_failed_exit(self, timeout: float = 60.0) -> str:
        """The process ends by itself with a non-zero code and no traceback; returns its log."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} still runs after {timeout} s; log:\n{self.log()}") from None
        self._log.close()
        log = self.log()
        assert code != 0 and "Traceback" not in log, f"{self.name} exited with {code}; log:\n{log}"
        return log

    def assert_clean_exit(self, timeout: float = 20.0) -> None:
        code = self.stop(timeout)
        log = self.log()
        assert code == 0, f"{self.name} exited with {code}; log:\n{log}"
        assert "Traceback" not in log, f"{self.name} logged a traceback:\n{log}"


# --- the test's own ROS node ----------------------------------------------------------------


class RosClient:
    """An rclpy node in its own Context with a SingleThreadedExecutor, spun only on demand."""

    def __init__(self, name: str) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def now_stamp(self):
        return self.node.get_clock().now().to_msg()

    def spin_until(self, predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
        """Spin until ``predicate()`` holds; False when ``timeout`` s pass first."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(step, remaining))
        return True

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def publish_until(
        self,
        publish: Callable[[], None],
        predicate: Callable[[], bool],
        timeout: float,
        period: float = 0.1,
    ) -> bool:
        """Call ``publish`` every ``period`` s until ``predicate()`` holds (rides out discovery)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publish()
            if self.spin_until(predicate, min(period, max(0.0, deadline - time.monotonic()))):
                return True
        return predicate()

    def collect(self, message_type, topic: str, qos: QoSProfile | int = 10) -> list:
        """Subscribe and return the list every received message is appended to."""
        received: list = []
        self.node.create_subscription(message_type, topic, received.append, qos)
        return received

    # --- lifecycle ---------------------------------------------------------------------------

    def call(self, service_type, name: str, request, timeout: float = 20.0, retry_every: float = 3.0):
        """Call and wait; the request is sent again every ``retry_every`` s, since Fast DDS drops a
        reply sent before the server's response writer has matched this client."""
        client = self.node.create_client(service_type, name)
        deadline = time.monotonic() + timeout
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                raise TimeoutError(f"service {name} is not available")
            while True:
                future = client.call_async(request)
                remaining = deadline - time.monotonic()
                if self.spin_until(future.done, max(0.0, min(retry_every, remaining))):
                    return future.result()
                client.remove_pending_request(future)
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"service {name} did not answer within {timeout} s")
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node_name: str, timeout: float = 20.0) -> str:
        return self.call(GetState, f"/{node_name}/get_state", GetState.Request(), timeout).current_state.label

    def change_state(self, node_name: str, transition: str, timeout: float = 30.0) -> bool:
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        # Not idempotent: never re-sent (a second configure after a slow first one would fail).
        return self.call(ChangeState, f"/{node_name}/change_state", request, timeout, retry_every=timeout).success


def wait_until_ready(client: RosClient, node: NodeProcess, image_topics: list[str], timeout: float = 60.0) -> str:
    """Wait for the latched labels (configured) and the image subscriptions (active); returns the labels JSON."""
    labels: list[String] = []
    subscription = client.node.create_subscription(String, f"/{node.name}/labels", labels.append, LATCHED)
    try:
        ready = client.spin_until(
            lambda: not node.alive()
            or (labels and all(client.node.count_subscribers(topic) > 0 for topic in image_topics)),
            timeout,
        )
    finally:
        client.node.destroy_subscription(subscription)
    assert node.alive(), f"{node.name} exited with {node.process.returncode}; log:\n{node.log()}"
    assert ready, f"{node.name} not ready within {timeout} s; log:\n{node.log()}"
    return labels[0].data


# --- messages ---------------------------------------------------------------------------------


_pictures = itertools.count()


def pattern_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (compresses like a photo, unlike noise). Each call's differs in its
    first pixel, as a real camera's frames differ: identical frames are a frozen driver, which the
    node's camera health takes out of the costmap."""
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols + 40 * seed) % 256], axis=-1).astype(np.uint8)
    count = next(_pictures)
    image[0, 0] = (count % 256, count // 256 % 256, count // 65536 % 256)
    return image


def header(client: RosClient, frame_id: str) -> Header:
    return Header(stamp=client.now_stamp(), frame_id=frame_id)


def image_msg(header_: Header, pixels: np.ndarray, encoding: str = "rgb8") -> Image:
    height, width = pixels.shape[:2]
    msg = Image(header=header_, height=height, width=width, encoding=encoding, is_bigendian=0)
    msg.step = width * (pixels.shape[2] if pixels.ndim == 3 else 1) * pixels.dtype.itemsize
    msg.data = pixels.tobytes()
    return msg


def jpeg_msg(header_: Header, rgb: np.ndarray) -> CompressedImage:
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return CompressedImage(header=header_, format="jpeg", data=encoded.tobytes())


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def pixels(msg: Image) -> np.ndarray:
    """An 8-bit Image's data as HxW (mono8) or HxWxC, honouring step."""
    channels = {"mono8": 1, "rgb8": 3, "bgr8": 3}[msg.encoding]
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    image = rows[:, : msg.width * channels].reshape(msg.height, msg.width, channels)
    return image[..., 0] if channels == 1 else image


# --- diagnostics ------------------------------------------------------------------------------


def status(array: DiagnosticArray, node_name: str, subject: str) -> DiagnosticStatus | None:
    """The line "<node>: <subject>" of a /diagnostics array."""
    return next((s for s in array.status if s.name == f"{node_name}: {subject}"), None)


def camera_status(array: DiagnosticArray, node_name: str, camera: str) -> DiagnosticStatus | None:
    return status(array, node_name, f"camera {camera}")


def engine_status(array: DiagnosticArray, node_name: str) -> DiagnosticStatus | None:
    return status(array, node_name, "engine")


def _from(array: DiagnosticArray, node_name: str) -> bool:
    return any(s.name.startswith(f"{node_name}: ") for s in array.status)


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def number(status: DiagnosticStatus, key: str, default: float = 0.0) -> float:
    """A numeric diagnostics value; ``default`` when absent or 'n/a'."""
    value = values(status).get(key)
    return default if value in (None, "n/a") else float(value)


def labels_classes(labels: str) -> list[dict]:
    return json.loads(labels)["classes"]


class DiagnosticsLog:
    """Every /diagnostics array the client receives, for waiting on a fresh one that says something."""

    def __init__(self, client: RosClient) -> None:
        self.client = client
        self.arrays: list[tuple[float, DiagnosticArray]] = []  # (arrival time.monotonic(), array)
        client.node.create_subscription(
            DiagnosticArray, "/diagnostics", lambda array: self.arrays.append((time.monotonic(), array)), 50
        )

    def of(self, node_name: str) -> list[tuple[float, DiagnosticArray]]:
        return [(t, a) for t, a in self.arrays if _from(a, node_name)]

    def wait(
        self,
        node_name: str,
        predicate: Callable[[DiagnosticArray], bool] = lambda array: True,
        timeout: float = 5.0,
    ) -> DiagnosticArray | None:
        """The first array from ``node_name`` published after this call for which ``predicate`` holds."""
        seen = len(self.arrays)
        found: list[DiagnosticArray] = []

        def check() -> bool:
            nonlocal seen
            for _, array in self.arrays[seen:]:
                if _from(array, node_name) and predicate(array):
                    found.append(array)
                    return True
            seen = len(self.arrays)
            return False

        self.client.spin_until(check, timeout)
        return found[0] if found else None

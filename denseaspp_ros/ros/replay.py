"""Replay a bag's camera frames through DDS into a running segmentation node and measure what comes back.

Frames are published at the recorded timing (times ``rate``) or at a fixed frequency, restamped
with the current time so that latency is receive time - header.stamp, as the node itself reports
it (``--clock`` keeps the recorded stamps and publishes them on /clock for ``use_sim_time`` nodes
instead). Every frame is accounted for: its mask came back, or it counts as dropped. When the bag
has labels, the masks the node actually published are scored against them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..bags import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, BagError, open_bag
from ..eval.metrics import ConfusionMatrix
from ..image_messages import class_mask_to_array
from ..labels import LabelSet

_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
_TYPES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, CAMERA_INFO: CameraInfo}


@dataclass
class ReplayOptions:
    bag: Path
    image_topic: str
    node: str = "segmentation_node"
    camera: str = "front"
    target_topic: str = "/front/image_raw"  # where the node listens
    camera_info_topic: str | None = None  # bag topic of CameraInfo, republished on target_info_topic
    target_info_topic: str = "/front/camera_info"
    label_topic: str | None = None
    rate: float = 1.0  # factor on the recorded timing
    hz: float | None = None  # fixed frequency instead
    clock: bool = False
    max_frames: int | None = None
    grace: float = 3.0  # seconds to wait for the last outputs
    wait: float = 30.0  # seconds to wait for the node to subscribe
    record: list[tuple[str, type]] = field(default_factory=list)  # extra outputs to record raw: (topic, type)


@dataclass
class ReplayResult:
    sent: int = 0
    received: int = 0
    latencies_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    matrix: ConfusionMatrix | None = None
    recorded: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)  # topic -> (receive ns, raw CDR)
    sent_stamps: dict[int, int] = field(default_factory=dict)  # published stamp -> recorded stamp

    @property
    def dropped(self) -> int:
        return self.sent - self.received

    def summary(self) -> dict[str, float | int | None]:
        latencies = np.array(self.latencies_s) * 1000
        pick = (lambda q: float(np.percentile(latencies, q))) if latencies.size else (lambda q: None)
        return {
            "frames_sent": self.sent,
            "frames_received": self.received,
            "frames_dropped": self.dropped,
            "dropped_fraction": self.dropped / self.sent if self.sent else None,
            "input_rate_hz": self.sent / self.duration_s if self.duration_s else None,
            "output_rate_hz": self.received / self.duration_s if self.duration_s else None,
            "latency_ms_p50": pick(50),
            "latency_ms_p95": pick(95),
            "latency_ms_p99": pick(99),
            "miou": self.matrix.miou() if self.matrix is not None and self.matrix.counts.any() else None,
        }


class Replayer:
    """An rclpy node of its own (private context) that feeds the target node and listens to it."""

    def __init__(self, label_set: LabelSet | None = None) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("denseaspp_replay", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.label_set = label_set

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin_for(self, seconds: float, until: Callable[[], bool] = lambda: False) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if until():
                return True
            self.executor.spin_once(timeout_sec=min(0.02, max(deadline - time.monotonic(), 0)))
        return until()

    def replay(self, options: ReplayOptions, progress: Callable[[int], None] | None = None) -> ReplayResult:
        result = ReplayResult()
        reader = open_bag(options.bag)
        try:
            connections = {c.topic: c for c in reader.connections}
            if options.image_topic not in connections:
                raise BagError(f"bag {options.bag} has no topic {options.image_topic}; it has: {', '.join(sorted(connections))}")
            image_type = _TYPES.get(connections[options.image_topic].msgtype)
            if image_type not in (Image, CompressedImage):
                raise BagError(f"{options.image_topic} carries {connections[options.image_topic].msgtype}, not an image")
            for topic in (options.label_topic, options.camera_info_topic):
                if topic is not None and topic not in connections:
                    raise BagError(f"bag {options.bag} has no topic {topic}; it has: {', '.join(sorted(connections))}")
            target = options.target_topic + ("/compressed" if image_type is CompressedImage and not options.target_topic.endswith("compressed") else "")
            publisher = self.node.create_publisher(image_type, target, qos_profile_sensor_data)
            info_publisher = self.node.create_publisher(CameraInfo, options.target_info_topic, qos_profile_sensor_data)
            clock = self.node.create_publisher(Clock, "/clock", 10) if options.clock else None
            labels: dict[int, np.ndarray] = {}
            if options.label_topic is not None and self.label_set is not None:
                result.matrix = ConfusionMatrix(self.label_set.num_classes)
            mask_topic = f"/{options.node}/{options.camera}/mask"

            def on_mask(raw: bytes) -> None:
                received = time.time_ns()
                mask = deserialize_message(raw, Image)
                stamp = mask.header.stamp.sec * 1_000_000_000 + mask.header.stamp.nanosec
                original = result.sent_stamps.get(stamp)
                if original is None:
                    return  # not one of ours (an earlier run's frame still in flight)
                result.received += 1
                result.recorded.setdefault(mask_topic, []).append((received, raw))
                if not options.clock:
                    result.latencies_s.append((received - stamp) / 1e9)
                truth = labels.pop(original, None)
                if truth is not None and result.matrix is not None:
                    result.matrix.update(truth, class_mask_to_array(mask))

            subscriptions = [self.node.create_subscription(Image, mask_topic, on_mask, _RELIABLE, raw=True)]
            for topic, kind in options.record:
                qos = _LATCHED if topic.endswith("costmap") else _RELIABLE
                subscriptions.append(self.node.create_subscription(
                    kind, topic, lambda raw, t=topic: result.recorded.setdefault(t, []).append((time.time_ns(), raw)), qos, raw=True,
                ))
            if not self.spin_for(options.wait, lambda: publisher.get_subscription_count() > 0):
                raise BagError(f"nothing subscribes to {target} after {options.wait:g} s: is the node running (and active)?")
            self.spin_for(1.0)  # let the node's outputs match our subscriptions too
            wanted = [connections[t] for t in (options.image_topic, options.label_topic, options.camera_info_topic) if t]
            start_wall = time.monotonic()
            first_stamp = None
            for connection, _, raw in reader.messages(connections=wanted):
                if connection.topic == options.label_topic:
                    if result.matrix is not None:
                        label = reader.deserialize(raw, connection.msgtype)
                        labels[label.header.stamp.sec * 1_000_000_000 + label.header.stamp.nanosec] = class_mask_to_array(label).copy()
                    continue
                message = deserialize_message(raw, _TYPES[connection.msgtype])
                stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
                if connection.topic == options.camera_info_topic:
                    info_publisher.publish(message)
                    continue
                if options.max_frames is not None and result.sent >= options.max_frames:
                    break
                first_stamp = stamp if first_stamp is None else first_stamp
                due = start_wall + (result.sent / options.hz if options.hz else (stamp - first_stamp) / 1e9 / options.rate)
                self.spin_for(max(due - time.monotonic(), 0.0))
                if options.clock:
                    clock.publish(Clock(clock=message.header.stamp))
                    published = stamp
                else:
                    published = time.time_ns()
                    message.header.stamp.sec, message.header.stamp.nanosec = divmod(published, 1_000_000_000)
                result.sent_stamps[published] = stamp
                publisher.publish(message)
                result.sent += 1
                if progress is not None:
                    progress(result.sent)
            result.duration_s = time.monotonic() - start_wall
            self.spin_for(options.grace, lambda: result.received >= result.sent)
            for subscription in subscriptions:
                self.node.destroy_subscription(subscription)
            for made in (publisher, info_publisher, clock):
                if made is not None:
                    self.node.destroy_publisher(made)
        finally:
            reader.close()
        return result

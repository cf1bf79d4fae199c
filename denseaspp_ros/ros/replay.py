"""Replay a bag's camera frames through DDS into a running segmentation node and measure what comes back.

Frames are published at the recorded timing (times ``rate``) or at a fixed frequency, restamped
with the current time so that latency is receive time - header.stamp, as the node itself reports
it (``--clock`` keeps the recorded stamps and publishes them on /clock for ``use_sim_time`` nodes
instead). Every frame is accounted for: its mask came back, or it counts as dropped. When the bag
has labels, the masks the node actually published are scored against them. ``find_peak`` searches
the highest input rate the node sustains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rclpy
from rosbags.highlevel import AnyReader
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..bags import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, ODOMETRY, BagError, as_cdr, open_bag
from ..eval.metrics import ConfusionMatrix
from ..eval.timing import LatencySummary
from ..image_messages import class_mask_to_array
from ..labels import LabelSet
from ..frames import stamp_ns
from .names import SEGMENTATION_NODE, camera_output_topic, of_node

_RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
_LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
_TYPES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, CAMERA_INFO: CameraInfo, ODOMETRY: Odometry}
MAX_DROPPED = 0.05  # ros2_benchmark's bound on the dropped fraction of a sustained rate


@dataclass
class ReplayOptions:
    bag: Path
    image_topic: str
    node: str = SEGMENTATION_NODE
    camera: str = "front"
    target_topic: str = "/front/image_raw"  # where the node listens
    camera_info_topic: str | None = None  # bag topic of CameraInfo, republished on target_info_topic
    target_info_topic: str = "/front/camera_info"
    label_topic: str | None = None
    odometry_topic: str | None = None  # bag topic of nav_msgs/Odometry, republished on the same topic
    rate: float = 1.0  # factor on the recorded timing
    hz: float | None = None  # fixed frequency instead
    clock: bool = False
    max_frames: int | None = None
    grace: float = 3.0  # seconds to wait for the last outputs
    wait: float = 30.0  # seconds to wait for the node to subscribe
    record: list[tuple[str, type]] = field(default_factory=list)  # extra outputs to record raw: (topic, type)
    # Pause the drive (images and poses alike) while this many frames are out (sent, mask not yet
    # back). 1 drops nothing; with 2 the node has one waiting while it works, but that one can be
    # replaced while the node finishes the last frame's costmap after its mask. None: the schedule alone.
    max_in_flight: int | None = None
    lost_after: float = 10.0  # seconds after which a frame still out counts as lost, not as out


@dataclass
class ReplayResult:
    sent: int = 0
    received: int = 0
    latencies_s: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    matrix: ConfusionMatrix | None = None
    recorded: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)  # topic -> (receive ns, raw CDR)
    sent_stamps: dict[int, int] = field(default_factory=dict)  # published stamp -> recorded stamp
    pauses: int = 0  # times the drive waited because the node still had max_in_flight frames
    paused_s: float = 0.0  # how long, in all: the rest of the schedule is that much later

    @property
    def dropped(self) -> int:
        return self.sent - self.received

    def summary(self) -> dict[str, float | int | None]:
        return {
            "frames_sent": self.sent,
            "frames_received": self.received,
            "frames_dropped": self.dropped,
            "dropped_fraction": self.dropped / self.sent if self.sent else None,
            "input_rate_hz": self.sent / self.duration_s if self.duration_s else None,
            "output_rate_hz": self.received / self.duration_s if self.duration_s else None,
            **LatencySummary.of(self.latencies_s).fields(),
            "miou": self.matrix.miou() if self.matrix is not None and self.matrix.counts.any() else None,
            "pauses": self.pauses,
            "paused_s": self.paused_s,
        }


class _Session:
    """One replay's publishers, subscriptions and bookkeeping on the replayer's node."""

    def __init__(self, node: Node, options: ReplayOptions, image_type: type, label_set: LabelSet | None) -> None:
        self.node = node
        self.options = options
        self.result = ReplayResult()
        self.labels: dict[int, np.ndarray] = {}  # recorded stamp -> label, until the frame's mask comes back
        self.out: dict[int, float] = {}  # published stamp -> monotonic send time, until its mask comes back
        if options.label_topic is not None and label_set is not None:
            self.result.matrix = ConfusionMatrix(label_set.num_classes)
        compressed = image_type is CompressedImage and not options.target_topic.endswith("compressed")
        self.target = options.target_topic + ("/compressed" if compressed else "")
        self.publisher = node.create_publisher(image_type, self.target, qos_profile_sensor_data)
        self.info_publisher = node.create_publisher(CameraInfo, options.target_info_topic, qos_profile_sensor_data)
        self.clock = node.create_publisher(Clock, "/clock", 10) if options.clock else None
        self.odometry = node.create_publisher(Odometry, options.odometry_topic, 50) if options.odometry_topic else None
        self.mask_topic = of_node(options.node, camera_output_topic(options.camera, "mask"))
        self.subscriptions = [node.create_subscription(Image, self.mask_topic, self.on_mask, _RELIABLE, raw=True)]
        for topic, kind in options.record:
            qos = _LATCHED if topic.endswith("costmap") else _RELIABLE
            self.subscriptions.append(node.create_subscription(
                kind, topic, lambda raw, t=topic: self.result.recorded.setdefault(t, []).append((time.time_ns(), raw)),
                qos, raw=True,
            ))

    def on_mask(self, raw: bytes) -> None:
        received = time.time_ns()
        mask = deserialize_message(raw, Image)
        stamp = stamp_ns(mask.header)
        original = self.result.sent_stamps.get(stamp)
        if original is None:
            return  # not one of ours (an earlier run's frame still in flight)
        self.out.pop(stamp, None)
        self.result.received += 1
        self.result.recorded.setdefault(self.mask_topic, []).append((received, raw))
        if not self.options.clock:
            self.result.latencies_s.append((received - stamp) / 1e9)
        truth = self.labels.pop(original, None)
        if truth is not None and self.result.matrix is not None:
            self.result.matrix.update(truth, class_mask_to_array(mask))

    def keep_label(self, label) -> None:
        self.labels[stamp_ns(label.header)] = class_mask_to_array(label).copy()

    def publish(self, message, stamp: int) -> None:
        """Send one frame: restamped now (latency = receive - stamp), or with its stamp on /clock."""
        if self.clock is not None:
            self.clock.publish(Clock(clock=message.header.stamp))
        published = self._restamp(message, stamp)
        self.result.sent_stamps[published] = stamp
        self.out[published] = time.monotonic()
        self.publisher.publish(message)
        self.result.sent += 1

    def in_flight(self) -> int:
        """Frames sent whose masks have not come back, once those out so long they count as lost are forgotten."""
        oldest = time.monotonic() - self.options.lost_after
        self.out = {stamp: sent for stamp, sent in self.out.items() if sent > oldest}
        return len(self.out)

    def publish_odometry(self, message: Odometry, stamp: int) -> None:
        """Send one pose on the images' time base: restamped now as they are, so a node interpolates
        it at their stamps as it would have at the recorded ones."""
        self._restamp(message, stamp)
        self.odometry.publish(message)

    def _restamp(self, message, stamp: int) -> int:
        """The stamp ``message`` is sent with: its own with --clock, else now (set on it)."""
        if self.clock is not None:
            return stamp
        published = time.time_ns()
        message.header.stamp.sec, message.header.stamp.nanosec = divmod(published, 1_000_000_000)
        return published

    def close(self) -> None:
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        for made in (self.publisher, self.info_publisher, self.clock, self.odometry):
            if made is not None:
                self.node.destroy_publisher(made)


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
        reader = open_bag(options.bag)
        try:
            connections = {c.topic: c for c in reader.connections}
            session = _Session(self.node, options, _image_type(options, connections), self.label_set)
            try:
                self._await_node(session)
                topics = (options.image_topic, options.label_topic, options.camera_info_topic, options.odometry_topic)
                wanted = [connections[t] for t in topics if t]
                self._send(reader, wanted, session, progress)
                self.spin_for(options.grace, lambda: session.result.received >= session.result.sent)
            finally:
                session.close()
        finally:
            reader.close()
        return session.result

    def _await_node(self, session: _Session) -> None:
        """Wait until the node subscribes to the session's images, then a moment for its outputs to match ours."""
        wait = session.options.wait
        if not self.spin_for(wait, lambda: session.publisher.get_subscription_count() > 0):
            kind = session.publisher.msg_type.__name__
            raise BagError(
                f"nothing subscribes to {session.target} ({kind}) after {wait:g} s: is the node running and active, "
                f"and does its camera listen there for {kind}s (a camera with compressed: true takes CompressedImage)?"
            )
        self.spin_for(1.0)

    def pace(self, options: ReplayOptions, frames: int = 6) -> float | None:
        """Seconds the node takes per frame: the bag's first ``frames`` images sent one at a time,
        each once the previous one's mask came back (the first, a warm-up, left out); None when no
        mask came back. What a replay at 1 / pace Hz would ask of it, with nothing queued."""
        reader = open_bag(options.bag)
        try:
            connections = {c.topic: c for c in reader.connections}
            probe = replace(options, label_topic=None, camera_info_topic=None, odometry_topic=None, record=[])
            session = _Session(self.node, probe, _image_type(probe, connections), None)
            seconds: list[float] = []
            try:
                self._await_node(session)
                images = reader.messages(connections=[connections[options.image_topic]])
                for _, (connection, _, raw) in zip(range(frames), images):
                    message = deserialize_message(as_cdr(reader, connection.msgtype, raw), _TYPES[connection.msgtype])
                    before, start = session.result.received, time.monotonic()
                    session.publish(message, stamp_ns(message.header))
                    if self.spin_for(10.0, lambda: session.result.received > before):
                        seconds.append(time.monotonic() - start)
            finally:
                session.close()
        finally:
            reader.close()
        return float(np.median(seconds[1:] or seconds)) if seconds else None

    def _send(
        self, reader: AnyReader, connections: list, session: _Session, progress: Callable[[int], None] | None,
    ) -> None:
        """Publish the bag's frames (of ``connections``; ROS 1 bags too) on their schedule: the
        recorded timing over ``rate``, or ``hz``."""
        options, result = session.options, session.result
        start_wall = time.monotonic()
        first_stamp = None
        if options.hz and options.odometry_topic:
            self.node.get_logger().warning(
                f"--hz replaces the recorded timing: {options.odometry_topic} is not replayed, and a node anchored "
                "to it keeps its frames out of the costmap"
            )
        for connection, _, raw in reader.messages(connections=connections):
            if connection.topic == options.label_topic:
                if result.matrix is not None:  # labels are only decoded to be scored
                    session.keep_label(reader.deserialize(raw, connection.msgtype))
                continue
            message = deserialize_message(as_cdr(reader, connection.msgtype, raw), _TYPES[connection.msgtype])
            if connection.topic == options.camera_info_topic:
                session.info_publisher.publish(message)
                continue
            if options.max_frames is not None and result.sent >= options.max_frames:
                break
            stamp = stamp_ns(message.header)
            first_stamp = stamp if first_stamp is None else first_stamp
            # A pause delays poses and images alike, so that both stay on one time base.
            recorded_due = start_wall + result.paused_s + (stamp - first_stamp) / 1e9 / options.rate
            if connection.topic == options.odometry_topic:
                if not options.hz:  # at a fixed frequency the recorded timing is gone, and poses with it
                    self.spin_for(max(recorded_due - time.monotonic(), 0.0))
                    self._pause(session)
                    session.publish_odometry(message, stamp)
                continue
            due = start_wall + result.paused_s + result.sent / options.hz if options.hz else recorded_due
            self.spin_for(max(due - time.monotonic(), 0.0))
            self._pause(session)
            session.publish(message, stamp)
            if progress is not None:
                progress(result.sent)
        result.duration_s = time.monotonic() - start_wall

    def _pause(self, session: _Session) -> None:
        """Wait, if the session caps the frames in flight, until the node has room for one more; the
        wait goes into ``paused_s``, which delays the rest of the schedule."""
        limit = session.options.max_in_flight
        if limit is None or session.in_flight() < limit:
            return
        start = time.monotonic()
        self.spin_for(session.options.lost_after, lambda: session.in_flight() < limit)
        session.result.pauses += 1
        session.result.paused_s += time.monotonic() - start

    def find_peak(self, options: ReplayOptions, say: Callable[[str], None] = print) -> dict:
        """The method of ros2_benchmark: double a fixed input rate until over 5% of frames are dropped, then
        bisect. Returns every trial's summary and the highest rate that kept within the bound (None if none did)."""
        trials: list[dict] = []

        def sustained(hz: float) -> bool:
            summary = self.replay(replace(options, hz=hz, max_frames=options.max_frames or 40)).summary()
            trials.append(summary)
            say(f"{hz:7.2f} Hz in: {summary['output_rate_hz']:.2f} Hz out, {100 * summary['dropped_fraction']:.1f}% dropped")
            return summary["dropped_fraction"] < MAX_DROPPED

        low, high = 0.0, 1.0
        while sustained(high) and high < 1000:
            low, high = high, high * 2
        for _ in range(4):
            middle = (low + high) / 2
            if sustained(middle):
                low = middle
            else:
                high = middle
        kept = [trial for trial in trials if trial["dropped_fraction"] < MAX_DROPPED]
        peak = max(kept, key=lambda trial: trial["input_rate_hz"], default=None)
        return {"trials": trials, "peak_hz": peak["input_rate_hz"] if peak else None}


def _image_type(options: ReplayOptions, connections: dict) -> type:
    """The message type of the bag's image topic, after checking that every topic asked for is there."""
    for topic in (options.image_topic, options.label_topic, options.camera_info_topic, options.odometry_topic):
        if topic is not None and topic not in connections:
            raise BagError(f"bag {options.bag} has no topic {topic}; it has: {', '.join(sorted(connections))}")
    image_type = _TYPES.get(connections[options.image_topic].msgtype)
    if image_type not in (Image, CompressedImage):
        raise BagError(f"{options.image_topic} carries {connections[options.image_topic].msgtype}, not an image")
    return image_type

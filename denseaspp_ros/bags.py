"""ROS 2 bags without ROS: writing and reading camera frames, labels and grids with ``rosbags``.

rosbags' CDR is what rclpy serialises, so these bags play in ``ros2 bag play`` and the messages
read here are what a node would receive. Message types come from rosbags' Humble type store,
whose definitions of these messages are the same in every ROS 2 release since.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from .costmap import CameraModel, GridSpec
from .errors import DenseASPPError
from .image_messages import MessageError, class_mask_to_array, decode_image

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_T = TYPESTORE.types
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"


class BagError(DenseASPPError):
    """A bag that cannot be written or read as asked."""


def _header(stamp_ns: int, frame_id: str):
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    return _T["std_msgs/msg/Header"](stamp=_T["builtin_interfaces/msg/Time"](sec=seconds, nanosec=nanoseconds), frame_id=frame_id)


class BagWriter:
    """Writes one topic per call site; each ``write_*`` serialises one message at its stamp."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}: use {' or '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists: a bag is written into a new folder")
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._writer.close()

    def _write(self, topic: str, message, stamp_ns: int) -> None:
        self.write_raw(topic, message.__msgtype__, stamp_ns, TYPESTORE.serialize_cdr(message, message.__msgtype__))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """An already serialised (CDR) message, e.g. as an rclpy raw subscription received it."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self._connections[topic] = connection
        self._writer.write(connection, int(stamp_ns), data)

    def write_image(self, topic: str, stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str) -> None:
        """An Image: ``pixels`` HxW (mono8) or HxWx3 (rgb8/bgr8) uint8."""
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        message = _T[IMAGE](
            header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
            step=width * channels, data=np.ascontiguousarray(pixels).reshape(-1),
        )
        self._write(topic, message, stamp_ns)

    def write_jpeg(self, topic: str, stamp_ns: int, frame_id: str, rgb: np.ndarray, quality: int = 90) -> None:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise BagError(f"could not encode a {rgb.shape} image as JPEG")
        message = _T[COMPRESSED_IMAGE](header=_header(stamp_ns, frame_id), format="jpeg", data=encoded.reshape(-1))
        self._write(topic, message, stamp_ns)

    def write_camera_info(self, topic: str, stamp_ns: int, frame_id: str, camera: CameraModel) -> None:
        distortion = np.zeros(5) if camera.D.size == 0 else camera.D
        projection = np.hstack([camera.K, np.zeros((3, 1))])
        message = _T[CAMERA_INFO](
            header=_header(stamp_ns, frame_id), height=camera.height, width=camera.width,
            distortion_model="rational_polynomial" if distortion.size == 8 else "plumb_bob",
            d=distortion.astype(np.float64), k=camera.K.reshape(-1), r=np.eye(3).reshape(-1), p=projection.reshape(-1),
            binning_x=0, binning_y=0,
            roi=_T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        self._write(topic, message, stamp_ns)

    def write_grid(self, topic: str, stamp_ns: int, grid: GridSpec, cells: np.ndarray) -> None:
        """An OccupancyGrid whose int8 cells are given as (height, width) values in -1..100 (or class ids)."""
        pose = _T["geometry_msgs/msg/Pose"](
            position=_T["geometry_msgs/msg/Point"](x=grid.origin_x, y=grid.origin_y, z=0.0),
            orientation=_T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        )
        header = _header(stamp_ns, grid.frame_id)
        info = _T["nav_msgs/msg/MapMetaData"](
            map_load_time=header.stamp, resolution=grid.resolution, width=grid.width, height=grid.height, origin=pose
        )
        message = _T[OCCUPANCY_GRID](header=header, info=info, data=np.ascontiguousarray(cells, np.int8).reshape(-1))
        self._write(topic, message, stamp_ns)


@dataclass
class LabelledFrame:
    """An image and its label image, matched by header stamp."""

    stamp_ns: int
    image: np.ndarray  # HxWx3 uint8
    is_bgr: bool
    label: np.ndarray  # HxW uint8 as stored (trainIds or labelIds)
    frame_id: str


@dataclass
class MatchStats:
    """What a stamp-matched read could not pair or decode: counted, never silently dropped."""

    matched: int = 0
    unmatched_images: int = 0
    unmatched_labels: int = 0
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.corrupt += 1
        if len(self.problems) < 20:
            self.problems.append(problem)


def open_bag(path: str | Path) -> AnyReader:
    """An open reader over a ROS 2 bag folder (sqlite3 or MCAP), a .mcap file or a ROS 1 .bag; close it."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=TYPESTORE)
        reader.open()
    except Exception as error:  # rosbags raises its own errors for unreadable, unfinished or foreign files
        raise BagError(f"cannot read bag {path}: {error} (still being recorded, or not a bag?)") from None
    return reader


def count_messages(path: str | Path, topic: str) -> int | None:
    """Messages on ``topic`` according to the bag's index (None when the bag does not say)."""
    reader = open_bag(path)
    try:
        counts = [c.msgcount for c in reader.connections if c.topic == topic]
        return sum(counts) if counts else None
    finally:
        reader.close()


def read_labelled_frames(
    path: str | Path,
    image_topic: str,
    label_topic: str,
    tolerance_s: float = 0.001,
    stats: MatchStats | None = None,
) -> Iterator[LabelledFrame]:
    """Stream (image, label) pairs whose header stamps agree within ``tolerance_s``, in bag order.

    Memory stays bounded: a message waits for its partner only while messages up to
    ``tolerance_s`` + one second later (by receive time) are read; then it is counted unmatched.
    """
    stats = stats if stats is not None else MatchStats()
    tolerance = int(tolerance_s * 1e9)
    reader = open_bag(path)
    try:
        topics = {c.topic: c for c in reader.connections}
        for topic in (image_topic, label_topic):
            if topic not in topics:
                raise BagError(f"bag {path} has no topic {topic}; it has: {', '.join(sorted(topics)) or 'none'}")
        kinds = {topics[image_topic].msgtype, topics[label_topic].msgtype}
        if not kinds <= {IMAGE, COMPRESSED_IMAGE}:
            raise BagError(f"{image_topic} and {label_topic} must carry Image or CompressedImage, got {sorted(kinds)}")
        connections = [c for c in reader.connections if c.topic in (image_topic, label_topic)]
        pending: dict[str, dict[int, Any]] = {image_topic: {}, label_topic: {}}
        horizon = tolerance + 1_000_000_000
        for connection, received_ns, raw in reader.messages(connections=connections):
            try:
                message = reader.deserialize(raw, connection.msgtype)
            except Exception as error:
                stats.note(f"{connection.topic} at {received_ns}: undecodable message ({error})")
                continue
            stamp = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
            other_topic = label_topic if connection.topic == image_topic else image_topic
            partner = _closest(pending[other_topic], stamp, tolerance)
            if partner is None:
                pending[connection.topic][stamp] = message
            else:
                image, label = (message, pending[other_topic].pop(partner)) if connection.topic == image_topic else (
                    pending[other_topic].pop(partner), message)
                frame = _decode_pair(image, label, stats)
                if frame is not None:
                    stats.matched += 1
                    yield frame
            _expire(pending, image_topic, label_topic, stamp - horizon, stats)
        _expire(pending, image_topic, label_topic, None, stats)
    finally:
        reader.close()


def _closest(waiting: dict[int, Any], stamp: int, tolerance: int) -> int | None:
    if stamp in waiting:
        return stamp
    candidates = [other for other in waiting if abs(other - stamp) <= tolerance]
    return min(candidates, key=lambda other: abs(other - stamp)) if candidates else None


def _expire(pending: dict[str, dict[int, Any]], image_topic: str, label_topic: str, before: int | None, stats: MatchStats) -> None:
    for topic, attribute in ((image_topic, "unmatched_images"), (label_topic, "unmatched_labels")):
        old = [stamp for stamp in pending[topic] if before is None or stamp < before]
        for stamp in old:
            del pending[topic][stamp]
        setattr(stats, attribute, getattr(stats, attribute) + len(old))


def _decode_pair(image_message: Any, label_message: Any, stats: MatchStats) -> LabelledFrame | None:
    stamp = image_message.header.stamp.sec * 1_000_000_000 + image_message.header.stamp.nanosec
    try:
        image, is_bgr = decode_image(image_message)
        if hasattr(label_message, "format"):  # a PNG-compressed label image
            label = cv2.imdecode(np.frombuffer(label_message.data, np.uint8), cv2.IMREAD_UNCHANGED)
            if label is None or label.ndim != 2 or label.dtype != np.uint8:
                raise MessageError("label CompressedImage is not a single-channel 8-bit PNG")
        else:
            label = class_mask_to_array(label_message)
    except MessageError as error:
        stats.note(f"frame at {stamp}: {error}")
        return None
    if label.shape != image.shape[:2]:
        stats.note(f"frame at {stamp}: label {label.shape[1]}x{label.shape[0]} but image {image.shape[1]}x{image.shape[0]}")
        return None
    return LabelledFrame(stamp, image, is_bgr, label, image_message.header.frame_id)

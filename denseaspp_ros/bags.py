"""ROS 2 bags without ROS: writing and reading camera frames, labels and grids with ``rosbags``.

rosbags' CDR is what rclpy serialises, so these bags play in ``ros2 bag play`` and the messages
read here are what a node would receive. Message types come from rosbags' Humble type store,
whose definitions of these messages are the same in every ROS 2 release since.

A bag is written as ``PATH.partial/PATH`` and renamed to ``PATH`` once closed, so ``PATH`` is
always a finished bag; a killed writer leaves ``PATH.partial`` with a note saying so, and
``recover_bag`` (``denseaspp bag-recover``) makes what it wrote readable.
"""

from __future__ import annotations

import fcntl
import io
import math
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys import Stores, get_typestore

from .costmap import CameraModel, GridSpec, OdometryRefused, OdometryTrack, Pose2D
from .errors import DenseASPPError
from .frames import Frame, stamp_ns
from .labels import IGNORE_INDEX, LabelSet
from .image_messages import DECODE_AS_STORED, MessageError, class_mask_to_array, decode_frame

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_T = TYPESTORE.types
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"
ODOMETRY = "nav_msgs/msg/Odometry"
PARTIAL = ".partial"
NOTE = "INCOMPLETE.txt"  # in PATH.partial/, beside the bag: says what happened and how to recover
SYNC_SECONDS = 1.0  # a write this long after the last sync syncs: a kill loses about the last second of writing


class BagError(DenseASPPError):
    """A bag that cannot be written or read as asked."""


def _header(stamp_ns: int, frame_id: str):
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    return _T["std_msgs/msg/Header"](stamp=_T["builtin_interfaces/msg/Time"](sec=seconds, nanosec=nanoseconds), frame_id=frame_id)


def partial_path(path: str | Path) -> Path:
    """Where a bag for ``path`` lives until its writer closes it."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL)


def _note(handle: IO[str], text: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(text)
    handle.flush()


class BagWriter:
    """Writes one topic per call site; each ``write_*`` serialises one message at its stamp.

    Until closed, the bag is ``PATH.partial/PATH`` beside a note (locked while this writer runs)
    saying it is unfinished. ``sync()``, and every write at least ``SYNC_SECONDS`` after the last
    sync, hands the messages so far to the operating system: they survive a kill, and
    ``recover_bag`` gets them back. A bag closed by an exception is finished but stays partial.
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown bag storage {storage!r}: use {' or '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} exists: a bag is written into a new folder")
        self.partial = partial_path(self.path)
        if self.partial.exists():
            raise BagError(f"{self.partial} exists: an earlier writer of {self.path} was interrupted; "
                           f"see {self.partial / NOTE}, then recover or delete it")
        self._writer = Writer(self.partial / self.path.name, version=9, storage_plugin=STORAGES[storage])
        self._connections: dict[str, object] = {}
        self._note: IO[str] | None = None
        self._synced = 0.0

    def __enter__(self) -> BagWriter:
        try:
            self.partial.mkdir(parents=True)
        except FileExistsError:
            raise BagError(f"{self.partial} exists: another writer of {self.path} is running or was interrupted") from None
        self._note = (self.partial / NOTE).open("w")
        fcntl.flock(self._note, fcntl.LOCK_EX)  # released by the kernel however this process ends
        partial = self.partial.absolute()  # the note may be read from anywhere
        _note(self._note, (
            f"Unfinished bag: process {os.getpid()} started writing it at {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"
            f"Finished, it would have been renamed to {self.path.absolute()}. If that process is gone, make\n"
            f"what it wrote readable (as {partial / self.path.name}) with:\n    denseaspp bag-recover {partial}\n"
        ))
        self._writer.open()
        self._synced = time.monotonic()
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        assert self._note is not None
        try:
            self._writer.close()  # on an exception too: what was written stays readable
            if error is None:
                os.rename(self._writer.path, self.path)
                (self.partial / NOTE).unlink()
                self.partial.rmdir()
            else:
                count = sum(self._writer.counts.values())
                _note(self._note, (
                    f"Unfinished bag: its writer stopped early ({type(error).__name__}: {error}).\n"
                    f"{self._writer.path.absolute()} is readable and holds the {count} messages written.\n"
                ))
        finally:
            self._note.close()

    def sync(self) -> None:
        """Hand every message written so far to the operating system: killing this process cannot lose
        it (a power cut still can; there is no fsync)."""
        storage = self._writer.storage
        if isinstance(storage, McapWriter):
            if storage.chunk.bio.tell():
                storage.close_chunk()  # rosbags holds up to 1 MiB of messages in memory otherwise
            storage.bio.flush()
        elif isinstance(storage, Sqlite3Writer):
            storage.conn.commit()  # rosbags otherwise commits only when closing
        self._synced = time.monotonic()

    def _write(self, topic: str, message, stamp_ns: int) -> None:
        self.write_raw(topic, message.__msgtype__, stamp_ns, TYPESTORE.serialize_cdr(message, message.__msgtype__))

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        """An already serialised (CDR) message, e.g. as an rclpy raw subscription received it."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self._connections[topic] = connection
        self._writer.write(connection, int(stamp_ns), data)
        if time.monotonic() - self._synced > SYNC_SECONDS:
            self.sync()

    def write_image(
        self, topic: str, stamp_ns: int, frame_id: str, pixels: np.ndarray, encoding: str, log_ns: int | None = None
    ) -> None:
        """An Image: ``pixels`` HxW (mono8) or HxWx3 (rgb8/bgr8) uint8, recorded at ``log_ns`` (default: its stamp;
        a camera whose clock is off stamps its frames otherwise than when they arrive)."""
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        message = _T[IMAGE](
            header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding, is_bigendian=0,
            step=width * channels, data=np.ascontiguousarray(pixels).reshape(-1),
        )
        self._write(topic, message, stamp_ns if log_ns is None else log_ns)

    def write_jpeg(
        self, topic: str, stamp_ns: int, frame_id: str, rgb: np.ndarray, quality: int = 90, log_ns: int | None = None
    ) -> None:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise BagError(f"could not encode a {rgb.shape} image as JPEG")
        message = _T[COMPRESSED_IMAGE](header=_header(stamp_ns, frame_id), format="jpeg", data=encoded.reshape(-1))
        self._write(topic, message, stamp_ns if log_ns is None else log_ns)

    def write_camera_info(
        self, topic: str, stamp_ns: int, frame_id: str, camera: CameraModel, log_ns: int | None = None
    ) -> None:
        distortion = np.zeros(5) if camera.D.size == 0 else camera.D
        projection = np.hstack([camera.K, np.zeros((3, 1))])
        message = _T[CAMERA_INFO](
            header=_header(stamp_ns, frame_id), height=camera.height, width=camera.width,
            distortion_model="rational_polynomial" if distortion.size == 8 else "plumb_bob",
            d=distortion.astype(np.float64), k=camera.K.reshape(-1), r=np.eye(3).reshape(-1), p=projection.reshape(-1),
            binning_x=0, binning_y=0,
            roi=_T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        self._write(topic, message, stamp_ns if log_ns is None else log_ns)

    def write_odometry(
        self, topic: str, stamp_ns: int, frame_id: str, child_frame_id: str, x: float, y: float, yaw: float, speed: float
    ) -> None:
        """A nav_msgs/Odometry: the vehicle (``child_frame_id``) at (x, y, yaw) in ``frame_id``,
        moving forward at ``speed`` m/s."""
        point = _T["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0)
        orientation = _T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))
        covariance = np.zeros(36, np.float64)
        pose = _T["geometry_msgs/msg/PoseWithCovariance"](
            pose=_T["geometry_msgs/msg/Pose"](position=point, orientation=orientation), covariance=covariance
        )
        zero = _T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
        twist = _T["geometry_msgs/msg/TwistWithCovariance"](
            twist=_T["geometry_msgs/msg/Twist"](linear=_T["geometry_msgs/msg/Vector3"](x=float(speed), y=0.0, z=0.0), angular=zero),
            covariance=covariance.copy(),
        )
        message = _T["nav_msgs/msg/Odometry"](
            header=_header(stamp_ns, frame_id), child_frame_id=child_frame_id, pose=pose, twist=twist
        )
        self._write(topic, message, stamp_ns)

    def write_text(self, topic: str, stamp_ns: int, text: str) -> None:
        """A std_msgs/String (e.g. a drive's fault truth as JSON)."""
        self._write(topic, _T["std_msgs/msg/String"](data=text), stamp_ns)

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
class MatchStats:
    """What a stamp-matched read could not pair or decode: counted, never silently dropped."""

    matched: int = 0
    unmatched_images: int = 0
    unmatched_labels: int = 0
    corrupt: int = 0
    duplicate_stamps: int = 0  # messages stamped like an earlier one of their topic: paired in bag order
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        self.corrupt += 1
        if len(self.problems) < 20:
            self.problems.append(problem)


def open_bag(path: str | Path) -> AnyReader:
    """An open reader over a ROS 2 bag folder (sqlite3 or MCAP), a .mcap file or a ROS 1 .bag; close it."""
    path = Path(path)
    if not path.exists():
        unfinished = partial_path(path)
        hint = f" ({unfinished} is unfinished: see {unfinished / NOTE})" if unfinished.exists() else ""
        raise BagError(f"bag {path} does not exist{hint}")
    if (path / NOTE).is_file():
        raise BagError(f"{path}: {' '.join((path / NOTE).read_text().split())}")
    try:
        reader = AnyReader([path], default_typestore=TYPESTORE)
        reader.open()
    except Exception as error:  # rosbags raises its own errors for unreadable, unfinished or foreign files
        raise BagError(f"cannot read bag {path}: {error} (still being recorded, or not a bag?)") from None
    return reader


def as_cdr(reader: AnyReader, msgtype: str, raw: bytes) -> bytes:
    """A message of any bag ``reader`` reads as ROS 2 CDR, what rclpy deserialises: a ROS 2 bag's
    bytes as they are, a ROS 1 bag's rebuilt in the ROS 2 type (no Header.seq, CameraInfo's d/k/r/p)."""
    if reader.is2:
        return raw
    return bytes(TYPESTORE.serialize_cdr(convert_message(reader.deserialize(raw, msgtype), TYPESTORE), msgtype))


def convert_message(message: Any, typestore: Any) -> Any:
    """``message`` (a rosbags message of either ROS) as the same type of ``typestore``: fields taken
    by name, case aside (ROS 1's CameraInfo.K is ROS 2's k); a ROS 1 Header's seq, absent in ROS 2, is 0."""
    target = typestore.types[message.__msgtype__]
    given = {item.name.lower(): item.name for item in fields(message)}
    values = {}
    for item in fields(target):
        name = given.get(item.name.lower())
        if name is None:
            if item.name != "seq":
                raise BagError(f"{message.__msgtype__} has no field {item.name} in this bag's definition")
            values[item.name] = 0
            continue
        value = getattr(message, name)
        if hasattr(value, "__msgtype__"):
            value = convert_message(value, typestore)
        elif isinstance(value, list) and value and hasattr(value[0], "__msgtype__"):
            value = [convert_message(element, typestore) for element in value]
        values[item.name] = value
    return target(**values)


def recover_bag(path: str | Path) -> Path:
    """Make what an interrupted ``BagWriter`` wrote into ``PATH.partial`` readable; returns the bag to read.

    A killed writer leaves an MCAP file without its summary and footer, or an SQLite file with an
    open transaction, and no metadata.yaml: the messages up to its last sync are copied into a
    complete bag that replaces the storage file. The result keeps the ``.partial`` name, since it
    is not the whole run. ``path`` may name the bag or its ``.partial`` folder.
    """
    path = Path(path)
    partial = path if path.name.endswith(PARTIAL) else partial_path(path)
    bag = partial / partial.name.removesuffix(PARTIAL)
    if not (partial / NOTE).is_file():
        raise BagError(f"{partial} is not an unfinished bag (it has no {NOTE})")
    with (partial / NOTE).open("r+") as note:
        try:
            fcntl.flock(note, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BagError(f"{partial} is still being written by a running process; see {partial / NOTE}") from None
        if (bag / "metadata.yaml").is_file():
            return bag  # recovered before, or closed after an exception: readable already
        candidates = ((storage, bag / f"{bag.name}{suffix}") for storage, suffix in (("mcap", ".mcap"), ("sqlite3", ".db3")))
        found = [(storage, file) for storage, file in candidates if file.is_file()]
        if not found:
            raise BagError(f"{partial} holds no bag file: nothing was written, or {bag.name} was finished and moved")
        storage, file = found[0]
        rebuilt = partial / "recovering"
        shutil.rmtree(rebuilt, ignore_errors=True)  # left by a recovery that was itself interrupted
        writer = Writer(rebuilt / bag.name, version=9, storage_plugin=STORAGES[storage])
        with writer:
            connections: dict[str, object] = {}
            for topic, msgtype, received_ns, data in (_mcap_messages if storage == "mcap" else _sqlite_messages)(file):
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
                writer.write(connections[topic], received_ns, data)
        count = sum(writer.counts.values())
        os.replace(writer.path / file.name, file)  # then metadata.yaml, whose presence means recovered
        os.replace(writer.path / "metadata.yaml", bag / "metadata.yaml")
        shutil.rmtree(rebuilt)
        _note(note, (
            f"Unfinished bag: its writer was interrupted. Recovered: {bag.absolute()} is readable and holds the {count}\n"
            "messages written up to the writer's last sync; any later ones were lost.\n"
        ))
    return bag


def _mcap_messages(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, stamp, data) of the messages in the complete records of an MCAP file, in file order.

    Reading stops at the first record the kill cut short, or at the end of a finished file's data.
    """
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}

    def string(body: bytes, offset: int) -> bytes:
        (length,) = struct.unpack_from("<I", body, offset)
        return body[offset + 4 : offset + 4 + length]

    def records(stream: IO[bytes]) -> Iterator[tuple[str, str, int, bytes]]:
        while len(head := stream.read(9)) == 9:
            op, length = struct.unpack("<BQ", head)
            body = stream.read(length)
            if len(body) < length or op == 0x0F:  # cut short, or the data end record
                return
            if op == 0x03:  # schema: id, name, ...
                schemas[struct.unpack_from("<H", body)[0]] = string(body, 2).decode()
            elif op == 0x04:  # channel: id, schema id, topic, ...
                key, schema = struct.unpack_from("<HH", body)
                channels[key] = (string(body, 4).decode(), schemas[schema])
            elif op == 0x05:  # message: channel, sequence, log time, publish time, data
                key, _, stamp_ns, _ = struct.unpack_from("<HIQQ", body)
                yield (*channels[key], stamp_ns, body[22:])
            elif op == 0x06:  # chunk: start, end, size, crc, compression, records
                compression = string(body, 28)
                if compression:
                    raise BagError(f"{path}: cannot recover {compression.decode()}-compressed chunks")
                yield from records(io.BytesIO(body[28 + 4 + len(compression) + 8 :]))

    with path.open("rb") as stream:
        magic = stream.read(8)
        if magic != b"\x89MCAP0\r\n"[: len(magic)]:  # shorter when killed before its first sync
            raise BagError(f"{path} is not an MCAP file")
        yield from records(stream)


def _sqlite_messages(path: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, type, stamp, data) of the committed messages; opening read-write rolls back the rest."""
    database = sqlite3.connect(path)
    try:
        topics = {key: (name, msgtype) for key, name, msgtype in database.execute("SELECT id, name, type FROM topics")}
        for key, received_ns, data in database.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
            yield (*topics[key], received_ns, data)
    except sqlite3.DatabaseError as error:
        raise BagError(f"cannot recover {path}: {error}") from None
    finally:
        database.close()


def count_messages(path: str | Path, topic: str) -> int | None:
    """Messages on ``topic`` according to the bag's index (None when the bag does not say)."""
    reader = open_bag(path)
    try:
        counts = [c.msgcount for c in reader.connections if c.topic == topic]
        return sum(counts) if counts else None
    finally:
        reader.close()


def read_topic(path: str | Path, topic: str, msgtype: str) -> list[tuple[int, Any]]:
    """Every message on ``topic`` as (header stamp ns, or the time it was recorded for a message without
    a header, message), in bag order; the topic must carry ``msgtype``."""
    reader = open_bag(path)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:
            raise BagError(f"bag {path} has no topic {topic}; it has: {', '.join(sorted({c.topic for c in reader.connections}))}")
        if connections[0].msgtype != msgtype:
            raise BagError(f"{topic} in {path} carries {connections[0].msgtype}, not {msgtype}")
        messages = ((reader.deserialize(raw, c.msgtype), logged) for c, logged, raw in reader.messages(connections=connections))
        return [(stamp_ns(message.header) if hasattr(message, "header") else logged, message) for message, logged in messages]
    finally:
        reader.close()


def read_poses(path: str | Path, topic: str, warn: Callable[[str], None]) -> list[tuple[int, Pose2D]]:
    """The vehicle's poses of a nav_msgs/Odometry topic, (stamp ns, pose) in bag order, checked as
    the node checks them (``OdometryTrack``); ``warn`` hears how many were refused and why."""
    track, poses, last = OdometryTrack(history_s=None), [], ""
    for _, message in read_topic(path, topic, ODOMETRY):
        try:
            poses.append(track.add(message))
        except OdometryRefused as error:
            last = str(error)
    if track.refused:
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(track.refused.items()))
        warn(f"{topic} in {path}: refused {counts} odometry messages (last: {last})")
    return poses


def grid_classes(cells: Any) -> np.ndarray:
    """OccupancyGrid cells that hold class ids back to a trainId grid (255 where unknown: -1 in int8)."""
    cells = np.asarray(cells).astype(np.int16)
    return np.where(cells < 0, IGNORE_INDEX, cells).astype(np.uint8)


def grid_spec(message: Any) -> GridSpec:
    """Where a nav_msgs/OccupancyGrid lies (rclpy's or a bag reader's: the same fields); axis-aligned."""
    info = message.info
    return GridSpec(info.resolution, info.width * info.resolution, info.height * info.resolution,
                    info.origin.position.x, info.origin.position.y, message.header.frame_id)


def class_map(message: Any) -> tuple[np.ndarray, GridSpec]:
    """A ground-truth OccupancyGrid of class ids (``/ground_truth/map``) as a trainId grid and its place."""
    return grid_classes(message.data).reshape(message.info.height, message.info.width), grid_spec(message)


def read_labelled_frames(
    path: str | Path,
    image_topic: str,
    label_topic: str,
    tolerance_s: float = 0.001,
    stats: MatchStats | None = None,
    max_pixels: int | None = None,
    label_ids: LabelSet | None = None,
) -> Iterator[Frame]:
    """Stream frames whose image and label stamps agree within ``tolerance_s``, in bag order.

    Labels come as stored, or converted from ``label_ids``' labelIds to its trainIds. Images
    declaring more than ``max_pixels`` are counted as undecodable without being decoded.

    Memory stays bounded: a message waits for its partner only while messages up to
    ``tolerance_s`` + one second later (by receive time) are read; then it is counted unmatched.
    Messages of one topic with the same stamp (a driver that does not advance it) are counted as
    duplicates and paired first come, first served: never one overwriting another.
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
        pending: dict[str, dict[int, list[Any]]] = {image_topic: {}, label_topic: {}}  # stamp -> messages in bag order
        seen: dict[str, set[int]] = {image_topic: set(), label_topic: set()}  # stamps read recently, for duplicates
        horizon = tolerance + 1_000_000_000
        for connection, received_ns, raw in reader.messages(connections=connections):
            try:
                message = reader.deserialize(raw, connection.msgtype)
            except Exception as error:
                stats.note(f"{connection.topic} at {received_ns}: undecodable message ({error})")
                continue
            stamp = stamp_ns(message.header)
            if stamp in seen[connection.topic]:
                stats.duplicate_stamps += 1
                if stats.duplicate_stamps == 1:
                    stats.problems.append(f"{connection.topic}: several messages stamped {stamp}: paired in bag order")
            seen[connection.topic].add(stamp)
            other_topic = label_topic if connection.topic == image_topic else image_topic
            partner = _closest(pending[other_topic], stamp, tolerance)
            if partner is None:
                pending[connection.topic].setdefault(stamp, []).append(message)
            else:
                waiting = pending[other_topic][partner]
                other = waiting.pop(0)
                if not waiting:
                    del pending[other_topic][partner]
                image, label = (message, other) if connection.topic == image_topic else (other, message)
                frame = _decode_pair(image, label, stats, max_pixels, label_ids)
                if frame is not None:
                    stats.matched += 1
                    yield frame
            _expire(pending, image_topic, label_topic, stamp - horizon, stats)
            seen = {topic: {s for s in stamps if s >= stamp - horizon} for topic, stamps in seen.items()}
        _expire(pending, image_topic, label_topic, None, stats)
    finally:
        reader.close()


def _closest(waiting: dict[int, list[Any]], stamp: int, tolerance: int) -> int | None:
    if stamp in waiting:
        return stamp
    candidates = [other for other in waiting if abs(other - stamp) <= tolerance]
    return min(candidates, key=lambda other: abs(other - stamp)) if candidates else None


def _expire(pending: dict[str, dict[int, list[Any]]], image_topic: str, label_topic: str, before: int | None, stats: MatchStats) -> None:
    for topic, attribute in ((image_topic, "unmatched_images"), (label_topic, "unmatched_labels")):
        old = [stamp for stamp in pending[topic] if before is None or stamp < before]
        count = sum(len(pending[topic].pop(stamp)) for stamp in old)
        setattr(stats, attribute, getattr(stats, attribute) + count)


def _decode_pair(image_message: Any, label_message: Any, stats: MatchStats, max_pixels: int | None, label_ids: LabelSet | None) -> Frame | None:
    stamp = stamp_ns(image_message.header)
    try:
        frame = decode_frame(image_message, max_pixels)
        if hasattr(label_message, "format"):  # a PNG-compressed label image
            label = cv2.imdecode(np.frombuffer(label_message.data, np.uint8), DECODE_AS_STORED)
            if label is None or label.ndim != 2 or label.dtype != np.uint8:
                raise MessageError("label CompressedImage is not a single-channel 8-bit PNG")
        else:
            label = class_mask_to_array(label_message)
    except MessageError as error:
        stats.note(f"frame at {stamp}: {error}")
        return None
    if label.shape != frame.pixels.shape[:2]:
        stats.note(f"frame at {stamp}: label {label.shape[1]}x{label.shape[0]} but image {frame.pixels.shape[1]}x{frame.pixels.shape[0]}")
        return None
    if label_ids is not None:
        label = label_ids.to_train_ids(label)
    return replace(frame, labels=label)

"""ROS 2 bags without ROS: writing and reading camera frames, labels and grids with ``rosbags``.

rosbags' CDR is what rclpy serialises, so these bags play in ``ros2 bag play`` and the messages
read here are what a node would receive. Message types come from rosbags' Humble type store,
whose definitions of these messages are the same in every ROS 2 release since.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from .costmap import CameraModel, GridSpec
from .errors import DenseASPPError

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
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._writer.add_connection(topic, message.__msgtype__, typestore=TYPESTORE)
            self._connections[topic] = connection
        self._writer.write(connection, int(stamp_ns), TYPESTORE.serialize_cdr(message, message.__msgtype__))

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

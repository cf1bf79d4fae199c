"""Results back to messages: masks and colour images with the input's header, the class table, the
costmap's grid and obstacle cloud. (Messages to arrays: ``denseaspp_ros.image_messages``, which the
bag readers share.)"""

from __future__ import annotations

import array
import json

import numpy as np
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import Image, PointCloud2, PointField
from std_msgs.msg import Header

from ..costmap import Snapshot
from ..errors import ImageError
from ..image_messages import BYTES_PER_PIXEL
from ..labels import IGNORE_INDEX, LabelSet

try:  # ROS 2's point-cloud helpers, where installed (a ROS package, not on PyPI)
    from sensor_msgs_py.point_cloud2 import create_cloud
except ImportError:
    create_cloud = None

_CLOUD_FIELDS = [
    PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
    PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
    PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
    PointField(name="class_id", offset=12, datatype=PointField.UINT32, count=1),
]
_CLOUD_POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("class_id", "<u4")])


def mono8_msg(header: Header, image: np.ndarray) -> Image:
    """An HxW uint8 map (class ids, confidence) as a mono8 Image carrying the input's header."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ImageError(f"mono8 output needs an HxW uint8 array, got {image.dtype} {image.shape}")
    return _image_msg(header, image, "mono8")


def rgb8_msg(header: Header, image: np.ndarray) -> Image:
    """An HxWx3 uint8 RGB image (colour mask, overlay) as an rgb8 Image carrying the input's header."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"rgb8 output needs an HxWx3 uint8 array, got {image.dtype} {image.shape}")
    return _image_msg(header, image, "rgb8")


def _image_msg(header: Header, pixels: np.ndarray, encoding: str) -> Image:
    height, width = pixels.shape[:2]
    step = width * BYTES_PER_PIXEL[encoding]
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    # An array.array is the setter's fast path: one memcpy here. A flat ndarray is converted
    # element by element (~1000x slower; an HxW one is refused), bytes are copied twice, and with
    # ROS_PYTHON_CHECK_FIELDS=1 any other value is range-checked in Python byte by byte.
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(pixels))
    msg.data = data
    return msg


def labels_json(label_set: LabelSet) -> str:
    """The class table as JSON for a latched String topic, so subscribers can decode label images."""
    return json.dumps(
        {"name": label_set.name, "classes": label_set.to_json_list(), "ignore_index": IGNORE_INDEX}
    )


def occupancy_grid_msg(snapshot: Snapshot, header: Header) -> OccupancyGrid:
    """The fused grid as Nav2 reads a map: cell (0, 0)'s outer corner at ``info.origin``, rows along y."""
    grid = snapshot.grid
    msg = OccupancyGrid(header=header)
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(grid.resolution)
    msg.info.width, msg.info.height = grid.width, grid.height
    msg.info.origin.position.x, msg.info.origin.position.y = float(grid.origin_x), float(grid.origin_y)
    msg.info.origin.orientation.w = 1.0
    data = array.array("b")
    data.frombytes(np.ascontiguousarray(snapshot.costs).tobytes())
    msg.data = data
    return msg


def obstacle_cloud_msg(snapshot: Snapshot, header: Header) -> PointCloud2:
    """The cells an obstacle's ground contact decided, as x y z (z = 0) + class_id points."""
    cells, classes = snapshot.contact_cells()
    x, y = snapshot.grid.cell_centers(cells)
    points = np.zeros(len(cells), _CLOUD_POINT)
    points["x"], points["y"], points["class_id"] = x, y, classes
    if create_cloud is not None:
        return create_cloud(header, _CLOUD_FIELDS, points)
    msg = PointCloud2(
        header=header, height=1, width=len(cells), fields=_CLOUD_FIELDS, is_bigendian=False,
        point_step=_CLOUD_POINT.itemsize, row_step=_CLOUD_POINT.itemsize * len(cells), is_dense=False,
    )
    data = array.array("B")
    data.frombytes(points.tobytes())
    msg.data = data
    return msg

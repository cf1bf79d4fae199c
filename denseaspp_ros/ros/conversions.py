"""sensor_msgs images to the arrays the Segmenter takes (denseaspp_ros.image_messages), and result
arrays back to messages."""

from __future__ import annotations

import array
import json

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..errors import ImageError
from ..image_messages import (  # noqa: F401 (the node's conversions, re-exported for one import site)
    BYTES_PER_PIXEL,
    SUPPORTED_ENCODINGS,
    MessageError,
    class_mask_to_array,
    compressed_to_array,
    decode_image,
    image_to_array,
)
from ..labels import IGNORE_INDEX, LabelSet


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

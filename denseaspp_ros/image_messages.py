"""Camera image messages to numpy, for sensor_msgs/Image and CompressedImage alike (no ROS imports).

Works on any object with the messages' fields (rclpy's messages, rosbags' deserialised ones), so
the node and the bag readers decode images with one implementation.

The Segmenter copies every image once into its staging buffer, so input conversion aims to hand
it something that copy is fast on: rgb8/bgr8 become zero-copy views of the message buffer (row
padding included); everything else becomes one contiguous RGB array via a single OpenCV call. A
view whose pixels are not packed (rgba with alpha skipped, grey repeated with stride 0) is not
used: numpy copies such views element by element, ~9 ms per 2048x1024 frame against ~0.3 ms for
cvtColor plus a packed copy (bench/conversions.py).
"""

from __future__ import annotations

import io
import re
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from .errors import DenseASPPError
from .frames import Frame, stamp_ns


# How every camera picture and label image is decoded: the pixels as stored, never turned by an
# EXIF Orientation tag (OpenCV applies it by default). A camera's pixels are its geometry: a frame
# rotated to "look right" would be published transposed and projected with the wrong intrinsics.
DECODE_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
DECODE_AS_STORED = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION

# The largest image accepted by default (4096x4096, 16.8 MP): a 30000x30000 PNG of 875 KB would
# otherwise decode for seconds into 10.8 GB.
MAX_IMAGE_PIXELS = 4096 * 4096


class MessageError(DenseASPPError):
    """An image message that cannot be converted: unknown encoding, inconsistent sizes, corrupt data."""


class ImageTooLarge(MessageError):
    """An image declaring more pixels than allowed, refused before decoding."""


BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "yuv422": 2,
    "yuv422_yuy2": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
}
SUPPORTED_ENCODINGS = tuple(BYTES_PER_PIXEL)
"""Raw Image encodings image_to_array accepts."""

_VIEW_ENCODINGS = {"rgb8": False, "bgr8": True}  # encoding -> is_bgr
_TO_RGB = {
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
    # ROS 'yuv422' is U Y0 V Y1 (UYVY); 'yuv422_yuy2' is Y0 U Y1 V. OpenCV decodes BT.601 video range.
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    # OpenCV names a Bayer pattern after pixels (1,1) and (1,2), not the top-left 2x2 block, so ROS
    # rggb is OpenCV BG and so on (the same mapping as cv_bridge).
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}


def image_to_array(msg: Any) -> tuple[np.ndarray, bool]:
    """A raw Image as HxWx3 uint8 plus whether it is BGR, which the Segmenter swaps on the device."""
    pixels = _pixel_view(msg)
    if msg.encoding in _VIEW_ENCODINGS:
        return pixels, _VIEW_ENCODINGS[msg.encoding]
    return cv2.cvtColor(pixels, _TO_RGB[msg.encoding]), False


def class_mask_to_array(msg: Any) -> np.ndarray:
    """A mono8 (or 8UC1) class-id mask as an HxW uint8 view of the message, without a copy."""
    if msg.encoding not in ("mono8", "8UC1"):
        raise MessageError(f"a class mask must be mono8 (or 8UC1) with one class id per pixel, got {msg.encoding!r}")
    return _pixel_view(msg, "mono8")[..., 0]


def _pixel_view(msg: Any, encoding: str | None = None) -> np.ndarray:
    """Check the message's geometry and view its data as HxWxC bytes, skipping row padding.

    ``encoding`` overrides the message's own for an alias of the same layout (8UC1 is mono8).
    """
    encoding, height, width, step = encoding or msg.encoding, msg.height, msg.width, msg.step
    bytes_per_pixel = BYTES_PER_PIXEL.get(encoding)
    if bytes_per_pixel is None:
        raise MessageError(
            f"unsupported image encoding {encoding!r}: use one of {', '.join(SUPPORTED_ENCODINGS)}"
            " or a CompressedImage"
        )
    what = f"{encoding} image {width}x{height}"
    if width == 0 or height == 0:
        raise MessageError(f"{what}: width and height must be positive")
    if encoding.startswith("yuv422") and width % 2:
        raise MessageError(f"{what}: width must be even, since each pixel pair shares one U and one V")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise MessageError(
            f"{what}: step {step} is less than a row's {row_bytes} bytes ({width} x {bytes_per_pixel})"
        )
    # After deserialisation rclpy holds data as array.array('B'); frombuffer views it without a copy.
    data = np.frombuffer(msg.data, np.uint8)
    if data.size < step * height:
        raise MessageError(
            f"{what}: data has {data.size} bytes, expected step x height = {step} x {height} = {step * height}"
        )
    rows = data[: step * height].reshape(height, step)
    return rows[:, :row_bytes].reshape(height, width, bytes_per_pixel)


# image_transport's format strings: "jpeg"/"png" (old publishers), "<encoding>; jpeg compressed
# <encoding>" (compressed), "<encoding>; compressedDepth [png|rvl]" (compressedDepth).
_TRANSPORT_FORMAT = re.compile(r"^\s*(?P<encoding>[\w]+)\s*;\s*(?P<rest>.*)$")
_PLAIN_FORMATS = ("", "jpeg", "jpg", "png")
_EIGHT_BIT = re.compile(r"^(rgb8|bgr8|rgba8|bgra8|mono8|8UC[134]|bayer_\w+8|yuv422(_yuy2)?)$")
# PIL modes of images with more than 8 bits per channel, which the network was never trained on.
_WIDE_MODES = ("I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def check_compressed_format(fmt: str) -> None:
    """Refuse what is not an 8-bit colour or grey picture: depth maps, 16-bit and float images."""
    plain = fmt.strip().lower()
    if plain in _PLAIN_FORMATS:
        return
    match = _TRANSPORT_FORMAT.match(fmt)
    if match is None:
        raise MessageError(f"unknown compressed image format {fmt!r}: expected jpeg, png or \"<encoding>; jpeg compressed <encoding>\"")
    encoding, rest = match["encoding"], match["rest"].lower()
    if "compresseddepth" in rest:
        raise MessageError(f"compressed image format {fmt!r} is a depth image (compressedDepth), not a camera picture")
    if not _EIGHT_BIT.match(encoding):
        raise MessageError(
            f"compressed image format {fmt!r}: {encoding} is not an 8-bit colour or grey encoding "
            "(depth, 16-bit and float images cannot be segmented)"
        )
    if not re.match(r"^(jpeg|jpg|png) compressed", rest):
        raise MessageError(f"unknown compressed image format {fmt!r}: expected \"{encoding}; jpeg|png compressed ...\"")


def image_header(data: np.ndarray | bytes, what: str = "compressed image") -> tuple[int, int, str]:
    """(width, height, PIL mode) an encoded image declares in its header, without decoding its pixels."""
    try:
        with PILImage.open(io.BytesIO(memoryview(data))) as header:
            return (*header.size, header.mode)
    except PILImage.DecompressionBombError as error:
        raise ImageTooLarge(f"{what} declares an enormous size, refused before decoding ({error})") from None
    except (OSError, ValueError, SyntaxError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise MessageError(
            f"corrupt or truncated {what}: the header of its {len(memoryview(data))} bytes cannot be read ({error})"
        ) from None


def check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    """Refuse an image by its declared size, before anything is decoded or allocated for it."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, above max_image_pixels "
            f"{max_pixels} ({max_pixels / 1e6:.1f} MP): refused before decoding"
        )


def compressed_to_array(msg: Any, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """Decode a jpeg/png CompressedImage; returns BGR, OpenCV's native order, to avoid a swap.

    The format string and the declared size are checked first, so a depth image or a
    decompression bomb costs a header read, not a decode.
    """
    check_compressed_format(msg.format)
    data = np.frombuffer(msg.data, np.uint8)
    what = f"compressed image (format {msg.format!r})"
    if data.size == 0:
        raise MessageError(f"{what} has no data")
    width, height, mode = image_header(data, what)
    if mode in _WIDE_MODES:
        raise MessageError(f"{what} holds {mode} pixels (16-bit or float, e.g. depth): only 8-bit pictures can be segmented")
    check_pixels(width, height, max_pixels, what)
    image = cv2.imdecode(data, DECODE_COLOR)
    if image is None:
        raise MessageError(f"corrupt or truncated {what}: OpenCV cannot decode its {data.size} bytes")
    return image, True


def decode_frame(msg: Any, max_pixels: int | None = None) -> Frame:
    """The adapter from camera messages (rclpy's or rosbags') to the core's Frame."""
    pixels, bgr = decode_image(msg, max_pixels)
    return Frame(pixels, bgr, stamp_ns(msg.header), msg.header.frame_id, str(stamp_ns(msg.header)))


def decode_image(msg: Any, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """An Image or CompressedImage (rclpy's or rosbags') as HxWx3 uint8, and whether it is BGR.

    ``max_pixels`` bounds the declared size, checked before any decode or allocation.
    """
    if hasattr(msg, "format"):  # only CompressedImage has a format field
        return compressed_to_array(msg, max_pixels)
    check_pixels(msg.width, msg.height, max_pixels, f"{msg.encoding} image")
    return image_to_array(msg)

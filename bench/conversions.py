"""Per-frame host cost of the node's message conversions, so it can be set against inference time.

For every input encoding: image_to_array alone, and followed by the one copy the Segmenter makes
into its staging buffer (what a frame really costs before upload). Messages are serialised and
deserialised first, so they hold data as a subscriber receives it. Then the output builders, the
assignments they avoid, and the two zero-copy views image_to_array avoids. Median of --repeats.
Usage:
    .venv/bin/python bench/conversions.py [--size 1024x2048] [--repeats 30]
"""

from __future__ import annotations

import argparse
import array
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from denseaspp_ros.cli import _count, _size
from denseaspp_ros.inference.benchmark import describe_machine
from denseaspp_ros.inference.benchmark import median_milliseconds as milliseconds
from denseaspp_ros.image_messages import SUPPORTED_ENCODINGS, compressed_to_array, image_to_array
from denseaspp_ros.ros.conversions import mono8_msg, rgb8_msg

SAMPLE = Path(__file__).resolve().parents[1] / "denseaspp_ros" / "data" / "samples" / "street_256x512.png"
ROW_PADDING = 64  # bytes, for the padded-rows case

# How each encoding's bytes are made from the RGB frame; bayer content does not change the cost.
_ENCODE = {
    "rgb8": lambda rgb: rgb,
    "bgr8": lambda rgb: rgb[..., ::-1],
    "rgba8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA),
    "bgra8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
    "mono8": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY),
    "yuv422": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY),
    "yuv422_yuy2": lambda rgb: cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2),
}


def received_image(encoding: str, rgb: np.ndarray, padding: int = 0) -> Image:
    pixels = _ENCODE.get(encoding, lambda frame: frame[..., 1])(rgb)
    height, width = rgb.shape[:2]
    rows = np.zeros((height, pixels[0].nbytes + padding), np.uint8)
    rows[:, : pixels[0].nbytes] = pixels.reshape(height, -1)
    msg = Image(height=height, width=width, encoding=encoding, step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    return deserialize_message(serialize_message(msg), Image)


def received_compressed(extension: str, bgr: np.ndarray) -> CompressedImage:
    ok, encoded = cv2.imencode(extension, bgr)
    assert ok
    msg = CompressedImage(format=extension.lstrip("."))
    msg.data = array.array("B", encoded.tobytes())
    return deserialize_message(serialize_message(msg), CompressedImage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=_size, default=(1024, 2048), help="HxW of the camera frames")
    parser.add_argument("--repeats", type=_count(1), default=30)
    args = parser.parse_args()
    height, width = args.size
    import torch  # only to name the machine the way the other benchmarks do

    print(f"machine: {describe_machine(torch.device('cpu'))}, {cv2.getNumThreads()} OpenCV threads")
    print(f"frames: {height}x{width}; median of {args.repeats}; ms per frame\n")
    rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(SAMPLE)), (width, height)), cv2.COLOR_BGR2RGB)
    # The Segmenter's staging copy (Segmenter._upload): np.stack into a preallocated uint8 buffer.
    staging = np.empty((1, height, width, 3), np.uint8)

    def with_staging(convert: Callable[[], tuple[np.ndarray, bool]]) -> Callable[[], None]:
        return lambda: np.stack([convert()[0]], out=staging)

    print(f"{'input':28} {'convert':>8} {'+ staging copy':>15}")
    cases = [(encoding, received_image(encoding, rgb)) for encoding in SUPPORTED_ENCODINGS]
    cases.insert(1, (f"rgb8, rows +{ROW_PADDING} B", received_image("rgb8", rgb, ROW_PADDING)))
    for name, msg in cases:
        convert = lambda msg=msg: image_to_array(msg)  # noqa: E731
        print(f"{name:28} {milliseconds(convert, args.repeats):8.2f}"
              f" {milliseconds(with_staging(convert), args.repeats):15.2f}")
    for extension in (".jpg", ".png"):
        msg = received_compressed(extension, rgb[..., ::-1])
        convert = lambda msg=msg: compressed_to_array(msg)  # noqa: E731
        name = f"compressed {extension[1:]} ({len(msg.data) // 1024} KiB)"
        print(f"{name:28} {milliseconds(convert, args.repeats):8.2f}"
              f" {milliseconds(with_staging(convert), args.repeats):15.2f}")

    print("\nviews image_to_array does not return (numpy copies unpacked pixels one by one):")
    rgba = np.frombuffer(received_image("rgba8", rgb).data, np.uint8).reshape(height, width, 4)
    grey = np.frombuffer(received_image("mono8", rgb).data, np.uint8).reshape(height, width, 1)
    views = {"rgba8 as [..., :3] view": rgba[..., :3], "mono8 as stride-0 RGB view": np.broadcast_to(grey, rgb.shape)}
    for name, view in views.items():
        copy = lambda view=view: np.stack([view], out=staging)  # noqa: E731
        print(f"{name:28} {0.0:8.2f} {milliseconds(copy, args.repeats):15.2f}")

    print(f"\n{'output':44} {'ms':>8}")
    header = Header(frame_id="camera")
    train_ids = np.random.default_rng(0).integers(0, 19, (height, width), dtype=np.uint8)
    colours = np.ascontiguousarray(rgb)
    message = Image()

    def assign(value: object) -> Callable[[], None]:
        return lambda: setattr(message, "data", value)

    outputs = [
        ("mono8_msg (train ids)", lambda: mono8_msg(header, train_ids), args.repeats),
        ("rgb8_msg (colour mask)", lambda: rgb8_msg(header, colours), args.repeats),
        ("rgb8_msg + serialize_message (~publish)", lambda: serialize_message(rgb8_msg(header, colours)), args.repeats),
        ("rejected: msg.data = rgb.tobytes()", lambda: assign(colours.tobytes())(), args.repeats),
        ("rejected: msg.data = rgb.ravel() (ndarray)", assign(colours.ravel()), 3),
    ]
    for name, build, repeats in outputs:
        print(f"{name:44} {milliseconds(build, repeats):8.2f}")


if __name__ == "__main__":
    main()

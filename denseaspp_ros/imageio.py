"""Image files: finding them in folder trees, reading them, and writing PNGs that are never half-written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_write
from .errors import DenseASPPError, ImageError
from .files import MAX_IMAGE_FILE_BYTES, FileRefused, read_bounded
from .image_messages import DECODE_COLOR, MessageError, check_pixels, image_header

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageItem:
    """An input image and where its outputs go, relative to an output folder."""

    source: Path
    relative: Path  # mirrors the input tree; outputs get this path with a .png suffix


def find_images(inputs: list[str | Path], exclude: Path | None = None) -> list[ImageItem]:
    """Expand files and folders (recursively, sorted) into images; every input must contribute one.

    A folder's images keep their path relative to that folder, so a Cityscapes
    ``leftImg8bit/val`` folder yields ``<city>/<name>`` like the official layout. Images under
    ``exclude`` (the output folder, when it lies inside an input) are not inputs.
    """
    excluded = exclude.resolve() if exclude is not None else None
    items: list[ImageItem] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            found = sorted(
                p
                for p in entry.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and p.is_file()
                and (excluded is None or not p.resolve().is_relative_to(excluded))
            )
            if not found:
                raise DenseASPPError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in folder {entry}")
            items.extend(ImageItem(p, p.relative_to(entry)) for p in found)
        elif entry.is_file():
            if entry.suffix.lower() not in IMAGE_SUFFIXES:
                raise DenseASPPError(f"{entry} is not an image file ({', '.join(IMAGE_SUFFIXES)})")
            items.append(ImageItem(entry, Path(entry.name)))
        else:
            raise DenseASPPError(f"input {entry} does not exist")
    clashes = _clashing_outputs(items)
    if clashes:
        raise DenseASPPError(f"inputs would overwrite each other's outputs: {', '.join(clashes[:5])}")
    return items


def _clashing_outputs(items: list[ImageItem]) -> list[str]:
    seen: dict[Path, Path] = {}
    clashes = []
    for item in items:
        target = item.relative.with_suffix(".png")
        if target in seen:
            clashes.append(f"{seen[target]} and {item.source} -> {target}")
        seen[target] = item.source
    return clashes


def read_bgr(path: Path, max_pixels: int | None = None) -> np.ndarray:
    """Any 8/16-bit, grey or colour image file as HxWx3 uint8 BGR (OpenCV's order).

    ``max_pixels`` bounds the size the file's header declares, checked before decoding.
    """
    try:
        data = np.frombuffer(read_bounded(path, "image", MAX_IMAGE_FILE_BYTES), np.uint8)
    except FileRefused as error:
        raise ImageError(str(error)) from None
    if max_pixels is not None:
        try:
            width, height, _ = image_header(data, f"image {path}")
            check_pixels(width, height, max_pixels, f"image {path}")
        except MessageError as error:
            raise ImageError(str(error)) from None
    image = cv2.imdecode(data, DECODE_COLOR) if data.size else None
    if image is None:
        raise ImageError(f"cannot read image {path} (corrupt or unsupported format)")
    return image


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode in memory, then write atomically (see ``atomic_write``)."""
    try:
        ok, encoded = cv2.imencode(".png", image)
    except cv2.error:  # OpenCV raises, rather than returning False, for e.g. 2 channels or 0 pixels
        ok = False
    if not ok:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise ImageError(f"could not encode {path} as PNG (array of shape {shape}, dtype {dtype})")
    atomic_write(path, lambda temporary: Path(temporary).write_bytes(encoded.tobytes()))

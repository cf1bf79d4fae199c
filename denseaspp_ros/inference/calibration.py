"""Real frames for what an exported engine is checked and calibrated on.

Export verification and int8 quantization both need frames like those the engine will see (random
noise exercises none of the paths a street does). A source is an image folder, a Cityscapes-layout
folder, a ROS 2 bag (its first image topic), or, by default, frames of the synthetic street world.
Frames are spread over the whole source and resized to the engine's input size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import DenseASPPError

SYNTHETIC = "synthetic"


def calibration_frames(source: str | Path | None, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` RGB uint8 frames of ``size`` (height, width) from ``source`` (None: synthetic)."""
    if count < 1:
        raise DenseASPPError(f"calibration needs at least one frame, got {count}")
    if source is None or str(source) in ("", SYNTHETIC):
        frames = _synthetic(count, size)
    else:
        path = Path(source)
        if not path.exists():
            raise DenseASPPError(f"calibration source {path} does not exist")
        frames = _bag(path, count) if _is_bag(path) else _folder(path, count)
    height, width = size
    return [
        frame if frame.shape[:2] == (height, width) else cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        for frame in frames
    ]


def _synthetic(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    from ..synth.drive import DriveConfig, drive

    # A seed no training run of the demo uses, so calibration frames are not training frames.
    return [item.frame.rgb for item in drive(DriveConfig(frames=count, seed=90_001, size=size))]


def _is_bag(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def _folder(path: Path, count: int) -> list[np.ndarray]:
    from ..imageio import find_images, read_bgr

    images = path / "leftImg8bit" if (path / "leftImg8bit").is_dir() else path  # Cityscapes: not the gtFine labels
    items = find_images([images])
    chosen = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [np.ascontiguousarray(read_bgr(items[i].source)[..., ::-1]) for i in chosen]


def _bag(path: Path, count: int) -> list[np.ndarray]:
    from ..bags import COMPRESSED_IMAGE, IMAGE, count_messages, open_bag
    from ..image_messages import decode_frame

    reader = open_bag(path)
    try:
        connections = [c for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED_IMAGE)]
        if not connections:
            raise DenseASPPError(f"calibration bag {path} has no Image or CompressedImage topic")
        topic = sorted(c.topic for c in connections)[0]
        total = count_messages(path, topic) or count
        stride = max(1, total // count)
        frames: list[np.ndarray] = []
        chosen = [c for c in connections if c.topic == topic]
        for position, (connection, _, raw) in enumerate(reader.messages(connections=chosen)):
            if position % stride == 0:
                frames.append(decode_frame(reader.deserialize(raw, connection.msgtype)).rgb())
                if len(frames) == count:
                    break
    finally:
        reader.close()
    return frames

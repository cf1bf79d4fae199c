"""Real frames for what an exported engine is checked and calibrated on.

Export verification and int8 quantization both need frames like those the engine will see (random
noise exercises none of the paths a street does). A source is an image folder, a Cityscapes-layout
folder, a bag (``BAG`` or ``BAG:TOPIC``), or, by default, frames of the synthetic street world.
Frames are spread over the whole source and resized to the engine's input size.

A bag's label masks are mono8 images too, and an engine quantised on masks turns cars into
sidewalk: without a named topic only colour camera topics qualify, and exactly one must; a grey
topic is taken only when named. An int8 engine is keyed by the content of its calibration frames,
so calibrating on new frames under the same path builds a new engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..errors import DenseASPPError

SYNTHETIC = "synthetic"
_SYNTHETIC_SEED = 90_001  # a seed no training run of the demo uses, so calibration frames are not training frames


def _ignore(message: str) -> None:
    pass


def calibration_frames(
    source: str | Path | None, count: int, size: tuple[int, int], warn: Callable[[str], None] = _ignore,
) -> list[np.ndarray]:
    """``count`` RGB uint8 frames of ``size`` (height, width) from ``source`` (None: synthetic);
    ``warn`` hears when the source holds fewer."""
    if count < 1:
        raise DenseASPPError(f"calibration needs at least one frame, got {count}")
    if is_synthetic(source):
        frames = _synthetic(count, size)
    else:
        path, topic = split_source(source)
        frames = _bag(path, topic, count) if _is_bag(path) else _folder(path, count)
        if len(frames) < count:
            warn(f"calibration source {source} holds {len(frames)} frames, fewer than the {count} asked: "
                 f"calibrating on {len(frames)}")
    height, width = size
    return [
        frame if frame.shape[:2] == (height, width) else cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        for frame in frames
    ]


def frames_digest(frames: list[np.ndarray]) -> str:
    """SHA-256 of calibration frames' pixels: what an int8 engine's key says of its calibration."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(f"{frame.shape};".encode())
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


def synthetic_world_digest() -> str:
    """The synthetic world's frames are a function of its code and seed: the digest of those stands
    for the frames' and spares a warm start rendering them."""
    from .. import synth

    digest = hashlib.sha256(f"synthetic world, seed {_SYNTHETIC_SEED};".encode())
    for module in sorted(Path(synth.__file__).parent.glob("*.py")):
        digest.update(module.read_bytes())
    return digest.hexdigest()


def split_source(source: str | Path) -> tuple[Path, str | None]:
    """``BAG:TOPIC`` as (the bag, the topic); anything else as (the path, None)."""
    text = str(source)
    where = text.rfind(":/")
    if where > 0 and not Path(text).exists():
        path, topic = Path(text[:where]), text[where + 1 :]
        if not path.exists():
            raise DenseASPPError(f"calibration source {path} (of {text}) does not exist")
        if not _is_bag(path):
            raise DenseASPPError(f"calibration source {text} names a topic, but {path} is not a bag")
        return path, topic
    if not Path(text).exists():
        raise DenseASPPError(f"calibration source {text} does not exist")
    return Path(text), None


def is_synthetic(source: str | Path | None) -> bool:
    return source is None or str(source) in ("", SYNTHETIC)


def _synthetic(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    from ..synth.drive import DriveConfig, drive

    return [item.frame.rgb for item in drive(DriveConfig(frames=count, seed=_SYNTHETIC_SEED, size=size))]


def _is_bag(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def _folder(path: Path, count: int) -> list[np.ndarray]:
    from ..imageio import find_images, read_bgr

    images = path / "leftImg8bit" if (path / "leftImg8bit").is_dir() else path  # Cityscapes: not the gtFine labels
    items = find_images([images])
    chosen = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [np.ascontiguousarray(read_bgr(items[i].source)[..., ::-1]) for i in chosen]


def _bag(path: Path, topic: str | None, count: int) -> list[np.ndarray]:
    from ..bags import COMPRESSED_IMAGE, IMAGE, count_messages, open_bag
    from ..image_messages import decode_frame

    reader = open_bag(path)
    try:
        images = [c for c in reader.connections if c.msgtype in (IMAGE, COMPRESSED_IMAGE)]
        chosen = [c for c in images if c.topic == (topic or _camera_topic(reader, images, path))]
        if not chosen:
            found = ", ".join(sorted({c.topic for c in images})) or "none"
            raise DenseASPPError(f"calibration bag {path} has no Image or CompressedImage topic {topic} (it has: {found})")
        total = count_messages(path, chosen[0].topic) or count
        stride = max(1, total // count)
        frames: list[np.ndarray] = []
        for position, (connection, _, raw) in enumerate(reader.messages(connections=chosen)):
            if position % stride == 0:
                frames.append(decode_frame(reader.deserialize(raw, connection.msgtype)).rgb())
                if len(frames) == count:
                    break
    finally:
        reader.close()
    return frames


def _camera_topic(reader, images: list, path: Path) -> str:
    """The bag's one colour camera topic; grey topics (label masks look like mono8 cameras) only
    when named."""
    colour, grey = [], []
    for topic in sorted({c.topic for c in images}):
        (colour if _is_colour(reader, [c for c in images if c.topic == topic]) else grey).append(topic)
    if len(colour) == 1:
        return colour[0]
    name = f"name the camera topic: {path}:/camera/topic"
    if colour:
        raise DenseASPPError(f"calibration bag {path} has {len(colour)} colour camera topics ({', '.join(colour)}): {name}")
    raise DenseASPPError(
        f"calibration bag {path} has no colour camera topic; its grey image topics ({', '.join(grey) or 'none'}) may be "
        f"label masks, which are never taken unnamed: {name} if one is a mono8 camera"
    )


def _is_colour(reader, connections: list) -> bool:
    """Whether a topic's first message is a colour picture (by encoding, or decoded for a CompressedImage)."""
    from ..image_messages import DECODE_AS_STORED

    for connection, _, raw in reader.messages(connections=connections):
        message = reader.deserialize(raw, connection.msgtype)
        if hasattr(message, "format"):
            decoded = cv2.imdecode(np.frombuffer(message.data, np.uint8), DECODE_AS_STORED)
            return decoded is not None and decoded.ndim == 3
        return message.encoding not in ("mono8", "8UC1", "mono16", "16UC1", "32FC1")
    return False

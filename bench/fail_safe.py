"""What the fail-safe checks cost: the non-finite logit check per frame, and refusing a decompression bomb.

    .venv/bin/python bench/fail_safe.py

Prints, for 1024x2048 frames of 19 classes: the time of the per-pixel finiteness check the
Segmenter runs on every batch, beside the argmax it rides on; and the time to refuse a PNG of a
few hundred bytes declaring 30000x30000 from its header, beside decoding a real 2048x1024 JPEG.
"""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from denseaspp_ros.image_messages import MAX_IMAGE_PIXELS, MessageError, decode_image
from denseaspp_ros.inference.benchmark import median_milliseconds

REPEATS = 20


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def main() -> None:
    torch.manual_seed(0)
    scores = torch.randn(1, 19, 1024, 2048)
    argmax_ms = median_milliseconds(lambda: scores.max(1), REPEATS)
    best = scores.max(1)[0]
    check_ms = median_milliseconds(lambda: torch.isfinite(best).flatten(1).all(1).tolist(), REPEATS)
    print(f"1024x2048, 19 classes: argmax {argmax_ms:.1f} ms, non-finite check on the per-pixel best {check_ms:.2f} ms "
          f"({100 * check_ms / argmax_ms:.1f}% of the argmax)")

    bomb = SimpleNamespace(format="png", data=png_declaring(30000, 30000))

    def refuse() -> None:
        try:
            decode_image(bomb, MAX_IMAGE_PIXELS)
        except MessageError:
            return
        raise AssertionError("the bomb was decoded")

    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (1024, 2048, 3), np.uint8))
    assert ok
    real = SimpleNamespace(format="jpeg", data=jpeg.tobytes())
    checked = median_milliseconds(lambda: decode_image(real, MAX_IMAGE_PIXELS), REPEATS)
    plain = median_milliseconds(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), REPEATS)
    print(f"30000x30000 PNG of {len(bomb.data)} bytes refused from its header in {median_milliseconds(refuse, REPEATS):.3f} ms; "
          f"a real 2048x1024 JPEG ({len(real.data) // 1024} KB): {checked:.1f} ms with the header check, "
          f"{plain:.1f} ms for OpenCV's decode alone")


if __name__ == "__main__":
    main()

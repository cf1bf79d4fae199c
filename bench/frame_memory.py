"""Peak memory and time of the largest frame max_image_pixels allows (4096x4096), scores made at once
(the old path) beside band by band (SCORE_BAND_BYTES), each in a fresh process.

    .venv/bin/python bench/frame_memory.py

The frame is a 4096x4096 PNG of a few tens of KB (a flat picture compresses to nothing), sent as the
node receives it (a CompressedImage), decoded, and segmented with confidence by the demo weights
(which run at the 384x768 they declare) on the torch backend, as segmentation_node does.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import cv2
import numpy as np

SIDE = 4096


def one_run(at_once: bool) -> dict[str, float]:
    from types import SimpleNamespace

    import denseaspp_ros.inference.segmenter as segmenter_module
    from denseaspp_ros.image_messages import MAX_IMAGE_PIXELS, decode_image
    from denseaspp_ros.inference import BackendSettings, load_engine

    if at_once:
        segmenter_module.SCORE_BAND_BYTES = 1 << 62
    engine = load_engine("demo", backend=BackendSettings(backend="torch"), device="cpu", log=lambda message: None)
    picture = np.zeros((SIDE, SIDE, 3), np.uint8)
    picture[SIDE // 2 :] = (128, 64, 128)  # road below, black above
    ok, png = cv2.imencode(".png", picture)
    assert ok
    message = SimpleNamespace(format="png", data=png.tobytes())
    engine.segment([np.zeros((64, 64, 3), np.uint8)], confidence=True)  # warm: the network's own buffers
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    pixels, bgr = decode_image(message, MAX_IMAGE_PIXELS)
    result = engine.segment([pixels], bgr=bgr, confidence=True)[0]
    seconds = time.perf_counter() - started
    assert result.train_ids.shape == (SIDE, SIDE)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"png_kb": len(message.data) / 1024, "peak_growth_mb": (peak - before) / 1024, "seconds": seconds}


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(one_run(sys.argv[1] == "at_once")))
        return
    print(f"{SIDE}x{SIDE} PNG frame, demo weights (network at 384x768), torch on the CPU, with confidence:")
    print("| scores at the frame's size | PNG | peak memory growth | time |\n| --- | ---: | ---: | ---: |")
    for mode, words in (("at_once", "made at once (before)"), ("bands", "band by band (SCORE_BAND_BYTES)")):
        done = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {words} | {figures['png_kb']:.0f} KB | {figures['peak_growth_mb']:.0f} MB | {figures['seconds']:.2f} s |")


if __name__ == "__main__":
    main()

"""Raw forward throughput in NCHW versus channels_last (NHWC), timed alternately in one run.

Why the Segmenter defaults to channels_last. Usage:
    .venv/bin/python bench/memory_format.py [--models MobileNetDenseASPP DenseASPP161] [--size 256x512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from denseaspp_ros.cli import _size
from denseaspp_ros.inference.benchmark import describe_machine
from denseaspp_ros.model import MODEL_NAMES, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["MobileNetDenseASPP", "DenseASPP161"], choices=MODEL_NAMES)
    parser.add_argument("--size", type=_size, default=(256, 512))
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {describe_machine(torch.device('cpu'))}; torch {torch.__version__}")
    print(f"{'model':20} {'NCHW img/s':>11} {'NHWC img/s':>11} {'speed-up':>9} {'argmax agreement':>17}")
    for name in args.models:
        nchw = build_model(name)
        nhwc = build_model(name)
        nhwc.load_state_dict(nchw.state_dict())
        nhwc.to(memory_format=torch.channels_last)
        x = torch.randn(1, 3, *args.size)
        x_nhwc = x.contiguous(memory_format=torch.channels_last)
        seconds: dict[str, list[float]] = {"nchw": [], "nhwc": []}
        with torch.inference_mode():
            for step in range(args.iterations + 2):  # the first two are warm-up
                for key, model, batch in (("nchw", nchw, x), ("nhwc", nhwc, x_nhwc)):
                    start = time.perf_counter()
                    logits = model(batch)
                    if step >= 2:
                        seconds[key].append(time.perf_counter() - start)
                    if key == "nchw":
                        reference = logits.argmax(1)
            agreement = (logits.argmax(1) == reference).float().mean().item()
        rate = {key: 1.0 / float(np.median(values)) for key, values in seconds.items()}
        print(f"{name:20} {rate['nchw']:11.2f} {rate['nhwc']:11.2f} {rate['nhwc'] / rate['nchw']:8.2f}x {agreement:17.5f}")


if __name__ == "__main__":
    main()

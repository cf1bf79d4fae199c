"""What checking a cached engine costs at load time, beside the whole warm load.

    .venv/bin/python bench/engine_cache.py [--size 256x512]

Builds (once, in a temporary cache) the ONNX and OpenVINO fp32 entries of MobileNetDenseASPP and
DenseASPP161 (random weights: the check does not depend on their values), then times a warm
``load_engine`` three times and, apart, the checks it runs: the SHA-256 of every file of both
entries and the ONNX file's metadata against the loaded weights.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from denseaspp_ros.declarations import format_size, parse_size
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.inference.cache import KEY_FILE, entry_problem

REPEATS = 3


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=(256, 512))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        settings = BackendSettings(backend="openvino", cache_dir=cache)
        for model in ("MobileNetDenseASPP", "DenseASPP161"):
            def load():
                torch.manual_seed(0)  # the same random weights, so the same entries
                return load_engine(None, model, allow_untrained=True, backend=settings, input_size=args.size,
                                   log=lambda message: None, warn=lambda message: None)

            build = seconds(load)
            engine = load()
            warm = min(seconds(load) for _ in range(REPEATS))
            entries = sorted(Path(cache).glob(f"{model}-*"))
            megabytes = sum(file.stat().st_size for entry in entries for file in entry.iterdir()) / 2**20

            def check() -> None:
                for entry in entries:
                    assert entry_problem(entry, json.loads((entry / KEY_FILE).read_text())["key"]) is None
                onnx = next(entry for entry in entries if "-onnx-" in entry.name)
                problem = engine.backend.identity.onnx_problem(onnx / "model.onnx", args.size)
                assert problem is None, problem

            checked = min(seconds(check) for _ in range(REPEATS))
            print(f"{model} at {format_size(args.size)}: 2 entries, {megabytes:.0f} MB; built in {build:.1f} s; "
                  f"warm load {warm:.2f} s, of which the checks {checked:.2f} s ({100 * checked / warm:.0f}%)")


if __name__ == "__main__":
    main()

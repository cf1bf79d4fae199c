"""Evaluation throughput against the engine's own on the same frames (issue 10).

The engine figure is ``Segmenter.segment`` alone on frames decoded beforehand, in chunks of the
batch size; the evaluation figure is ``evaluate()`` reading the folder itself (decoding on its
reader thread, scoring, everything), by the wall clock; "no overlap" reads a batch, then segments
and scores it, in one thread (what evaluation did before issue 10, at batch 1). The three are
timed alternately in one process, so the noise of a shared machine hits them alike; the fastest
of the repeats is each one's figure (the run least disturbed by other processes), the median is
printed beside it. Usage:

    .venv/bin/denseaspp synth --output /tmp/synth40 --frames 40 --seed 1
    .venv/bin/python bench/eval_throughput.py --data /tmp/synth40 --split train --batch 1 4
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import torch

from denseaspp_ros.cli import _size
from denseaspp_ros.eval.evaluate import cityscapes_samples, evaluate
from denseaspp_ros.frames import Frame
from denseaspp_ros.eval.metrics import ConfusionMatrix
from denseaspp_ros.inference import Segmenter, load_engine
from denseaspp_ros.inference.benchmark import describe_machine
from denseaspp_ros.labels import CITYSCAPES


T = TypeVar("T")


def timed(run: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def segment_all(engine: Segmenter, frames: list[Frame], batch: int) -> None:
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        engine.segment([frame.pixels for frame in chunk], bgr=[frame.bgr for frame in chunk])


def read_then_segment(args: argparse.Namespace, engine: Segmenter, batch: int) -> None:
    """Read a batch, then segment and score it, all in this thread."""
    matrix = ConfusionMatrix(CITYSCAPES.num_classes)
    samples = cityscapes_samples(args.data, args.split, CITYSCAPES)
    while chunk := list(itertools.islice(samples, batch)):
        for frame, result in zip(chunk, engine.segment([frame.pixels for frame in chunk])):
            matrix.update(frame.labels, result.train_ids)


def measure(args: argparse.Namespace, frames: list[Frame], batch: int) -> dict:
    """Seconds and frames per second of the engine alone, evaluate() and the no-overlap loop, alternating."""
    engine = load_engine(
        args.weights, args.model, CITYSCAPES, device=args.device, max_batch=batch, input_size=args.input_size, allow_untrained=True
    )
    segment_all(engine, frames[:batch], batch)  # warm-up: first-call allocations and kernel choices
    engine_seconds, eval_seconds, sequential_seconds = [], [], []
    for _ in range(args.repeats):
        engine_seconds.append(timed(lambda: segment_all(engine, frames, batch))[0])
        sequential_seconds.append(timed(lambda: read_then_segment(args, engine, batch))[0])
        seconds, result = timed(
            lambda: evaluate(cityscapes_samples(args.data, args.split, CITYSCAPES), engine, CITYSCAPES, batch=batch, progress=False)
        )
        eval_seconds.append(seconds)
        assert result.frames == len(frames) and result.complete, result.problems
    row: dict = {
        "batch": batch, "engine_seconds": engine_seconds, "eval_seconds": eval_seconds, "no_overlap_seconds": sequential_seconds,
    }
    for figure, pick in (("best", min), ("median", statistics.median)):
        engine_fps, eval_fps = len(frames) / pick(engine_seconds), len(frames) / pick(eval_seconds)
        no_overlap_fps = len(frames) / pick(sequential_seconds)
        row[figure] = {
            "engine_fps": engine_fps, "eval_fps": eval_fps, "eval_share": eval_fps / engine_fps,
            "no_overlap_fps": no_overlap_fps, "no_overlap_share": no_overlap_fps / engine_fps,
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="Cityscapes-layout folder (e.g. from denseaspp synth)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default="MobileNetDenseASPP")
    parser.add_argument("--weights", default="demo", help="weights do not change the cost; demo for MobileNetDenseASPP")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=5, help="alternating engine/evaluate runs per batch size")
    parser.add_argument("--input-size", type=_size, help="HxW the network runs at (a faster engine, as on a GPU)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's); fewer than cores leaves the reader a core")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    list(cityscapes_samples(args.data, args.split, CITYSCAPES))  # warms the file cache for the timed read below
    decode_seconds, frames = timed(lambda: list(cityscapes_samples(args.data, args.split, CITYSCAPES)))
    height, width = frames[0].pixels.shape[:2]
    machine = describe_machine(torch.device(args.device))
    print(f"{args.model} on {args.device}, {len(frames)} frames of {height}x{width}; {machine}; torch {torch.__version__}")
    print(f"reading and decoding alone: {len(frames) / decode_seconds:.1f} frames/s")
    rows = [measure(args, frames, batch) for batch in args.batch]
    print(f"{'batch':>5} {'figure':>7} {'engine fps':>11} {'evaluate fps (share)':>21} {'no overlap fps (share)':>23}")
    for row in rows:
        for figure in ("best", "median"):
            values = row[figure]
            print(f"{row['batch']:5d} {figure:>7} {values['engine_fps']:11.2f} "
                  f"{values['eval_fps']:11.2f} ({100 * values['eval_share']:5.1f}%) "
                  f"{values['no_overlap_fps']:13.2f} ({100 * values['no_overlap_share']:5.1f}%)")
    if args.json:
        report = {
            "model": args.model, "device": args.device, "machine": machine, "torch": torch.__version__,
            "frames": len(frames), "size": [height, width], "decode_fps": len(frames) / decode_seconds, "rows": rows,
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()

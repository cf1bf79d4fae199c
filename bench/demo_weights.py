"""Held-out mIoU of the packaged demo weights on synthetic scenes they never saw (new seeds).

Renders the held-out drives, evaluates them with the Segmenter, prints the per-class table and,
with --write-record, stores the figures beside the weights (the JSON the tests check against):

    .venv/bin/python bench/demo_weights.py [--weights demo] [--write-record [--steps N --recipe TEXT]]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from denseaspp_ros.declarations import format_size
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.model import DEMO_WEIGHTS, declared_input_size
from denseaspp_ros.synth.holdout import HELD_OUT, TRAIN_SEEDS, VALIDATION_SEEDS, held_out_evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--write-record", action="store_true", help="store the figures in the weights' JSON record")
    parser.add_argument("--demo-miou", type=float, help="live-demo mIoU measured with `denseaspp demo` (recorded)")
    parser.add_argument("--demo-free-iou", type=float, help="live-demo costmap free-cell IoU (recorded)")
    parser.add_argument("--steps", type=int, help="optimiser steps the weights were trained for, over all stages (recorded)")
    parser.add_argument("--recipe", help="how they were trained: the README's stages, or a script (recorded)")
    args = parser.parse_args()
    result = held_out_evaluation(args.weights)
    iou = result.matrix.iou()
    present = result.matrix.counts.sum(1) > 0  # classes that occur in the held-out ground truth
    size = declared_input_size(args.weights)
    network_input = f"{format_size(size)}, declared by the weights" if size else "each image's own size"
    print(f"network input: {network_input}")
    print(f"held-out mIoU {100 * result.matrix.miou():.2f}% over {result.frames} frames "
          f"({int(present.sum())} classes present); pixel accuracy {100 * result.matrix.pixel_accuracy():.2f}%")
    for name, value, here in zip(CITYSCAPES.class_names, iou, present):
        print(f"  {name:14s} {'n/a' if np.isnan(value) else f'{100 * value:6.2f}'}{'' if here else '  (absent)'}")
    if args.write_record:
        path = DEMO_WEIGHTS.record_path
        record = DEMO_WEIGHTS.record()
        record.update({
            "what": f"{DEMO_WEIGHTS.model} trained on the synthetic street world (Cityscapes classes); not Cityscapes weights",
            "held_out": HELD_OUT,
            "input_size": list(size) if size else None,
            "miou": result.matrix.miou(),
            "pixel_accuracy": result.matrix.pixel_accuracy(),
            "per_class": {n: (None if np.isnan(v) else float(v)) for n, v in zip(CITYSCAPES.class_names, iou)},
        })
        if args.steps is not None or args.recipe is not None:
            record["training"] = {
                "steps": args.steps, "recipe": args.recipe,
                "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1], "validation_seeds": list(VALIDATION_SEEDS),
            }
        if args.demo_miou is not None:
            record["demo_thresholds"] = {"miou": args.demo_miou, "costmap_free_iou": args.demo_free_iou}
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

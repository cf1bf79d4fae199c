"""Demo weights trained on a GPU within the device tool's 10 minutes, in one command:

    python bench/train_gpu.py --output $OUT [--minutes 7] [--steps 6000]

1. renders the recipe's drives in parallel, one process per core: seeds 0-119 for training and
   1000-1004 for validation, 20 and 8 frames at 2 Hz, with moving traffic;
2. fine-tunes the packaged demo weights with the recipe's last stage: the loss over the hardest
   30% of pixels (OHEM), half the crops placed on a class drawn uniformly from the image
   (class-uniform), 256x512 crops scaled 1.0-2.0 for a network that runs at 384x768 (the 256x512
   camera upscaled 1.5x: validated there, and declared in the weights), half-pixel upsampling, AMP,
   batch 32. It runs for --steps or
   until --minutes, whichever comes first, validating every 500 steps and keeping the best;
3. writes to --output what comes back from the machine: demo_weights.safetensors (the best
   checkpoint, float16, to replace the packaged file), demo_weights.json (held-out mIoU and
   per-class IoU on seeds 2000-2004, steps, data), log.csv and training.png.

The machine needs torch with CUDA and this package's pure-Python dependencies; install the
package there without dependencies (`pip install --no-deps -e .`). Without CUDA it trains on the
CPU, slowly. --smoke runs every stage on the CPU at toy sizes, which is how the tests keep it
working.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.model import DEMO_WEIGHTS, convert_checkpoint, declared_input_size
from denseaspp_ros.synth.holdout import HELD_OUT, TRAIN_SEEDS, VALIDATION_SEEDS, held_out_evaluation, render_drives
from denseaspp_ros.train import TrainConfig, train

DEMO_INPUT_SIZE = (384, 768)  # the recipe's last stage: the held-out drives' 256x512 upscaled 1.5x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=7.0, help="training time limit (rendering and scoring come on top)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--init", default=str(DEMO_WEIGHTS.locate()), help="weights to start from (default: the packaged ones)")
    parser.add_argument("--smoke", action="store_true", help="every stage at toy sizes on the CPU")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        data, run = Path(folder) / "data", Path(folder) / "run"
        train_seeds, validation_seeds, frames = (range(2), range(1000, 1001), 2) if args.smoke else (TRAIN_SEEDS, VALIDATION_SEEDS, 20)
        render_in_parallel(data, "train", train_seeds, frames)
        render_in_parallel(data, "val", validation_seeds, 8 if not args.smoke else 2)
        print(f"rendered the drives in {time.monotonic() - started:.0f} s", flush=True)
        config = TrainConfig(
            data=str(data), output=str(run), model=DEMO_WEIGHTS.model, init_checkpoint=args.init,
            steps=4 if args.smoke else args.steps, batch_size=2 if args.smoke else args.batch_size,
            crop=(64, 64) if args.smoke else (256, 512), scale=(1.0, 2.0), input_size=DEMO_INPUT_SIZE,
            lr=args.lr, hard_pixels=0.3, class_uniform=0.5, half_pixel=True,
            val_every=2 if args.smoke else 500, checkpoint_every=500, log_every=1 if args.smoke else 50,
            workers=0 if args.smoke else min(8, os.cpu_count() or 1), device="cpu" if args.smoke else "auto",
            seed=4, bn_batches=1 if args.smoke else 20, time_limit=args.minutes,
        )
        result = train(config)
        best = run / ("best.pt" if (run / "best.pt").is_file() else "last.pt")
        weights = args.output / "demo_weights.safetensors"
        convert_checkpoint(best, weights, DEMO_WEIGHTS.model, CITYSCAPES.num_classes, half=True)
        for name in ("log.csv", "training.png"):
            if (run / name).is_file():
                shutil.copy(run / name, args.output / name)
    declared = declared_input_size(weights)  # the record says what the file declares
    evaluation = held_out_evaluation(weights, device="cpu" if args.smoke else "auto")
    iou = evaluation.matrix.iou()
    record = {
        "what": f"{DEMO_WEIGHTS.model} trained on the synthetic street world (Cityscapes classes); not Cityscapes weights",
        "recipe": "bench/train_gpu.py" + (" --smoke" if args.smoke else ""),
        "steps": result["step"], "best_validation_miou": result["best_miou"],
        "data": {"train_seeds": [train_seeds.start, train_seeds.stop - 1], "validation_seeds": list(validation_seeds),
                 "frames_per_drive": frames},
        "held_out": HELD_OUT,
        "input_size": list(declared) if declared else None,
        "miou": evaluation.matrix.miou(),
        "pixel_accuracy": evaluation.matrix.pixel_accuracy(),
        "per_class": {n: (None if np.isnan(v) else float(v)) for n, v in zip(CITYSCAPES.class_names, iou)},
        "minutes": (time.monotonic() - started) / 60,
    }
    (args.output / "demo_weights.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{result['step']} steps; held-out mIoU {100 * record['miou']:.2f}%; {record['minutes']:.1f} min in all; "
          f"results in {args.output}/")


def render_in_parallel(root: Path, split: str, seeds: range, frames: int) -> None:
    """One process per core, a drive per seed (each writes its own city folder)."""
    with multiprocessing.get_context("spawn").Pool(min(len(seeds), os.cpu_count() or 1)) as pool:
        pool.map(partial(_render_one, root, split, frames), seeds)


def _render_one(root: Path, split: str, frames: int, seed: int) -> None:
    render_drives(root, split, [seed], frames)


if __name__ == "__main__":
    main()

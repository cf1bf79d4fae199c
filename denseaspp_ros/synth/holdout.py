"""The demo weights' yardstick: synthetic drives of seeds never used for training or checkpoint
selection, rendered and scored with the one ``evaluate`` (no ROS imports).

Seeds 0-119 render the training drives and 1000-1004 the validation drives that choose the best
checkpoint; 2000-2004 are held out. ``bench/demo_weights.py`` records the result beside the
weights, ``bench/train_gpu.py`` scores what it trains with it, and a test checks the record.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..eval.evaluate import EvalResult, cityscapes_samples, evaluate
from ..inference import Segmenter
from ..labels import CITYSCAPES
from ..model import AUTO_MODEL, build_model
from .drive import DriveConfig
from .outputs import write_drive

HELD_OUT = {"seeds": [2000, 2001, 2002, 2003, 2004], "frames": 8, "fps": 2.0, "size": [256, 512]}
TRAIN_SEEDS = range(0, 120)
VALIDATION_SEEDS = range(1000, 1005)


def render_drives(
    root: Path, split: str, seeds, frames: int, fps: float = 2.0, size: tuple[int, int] = (256, 512)
) -> None:
    """The drives of ``seeds`` into ``root`` (Cityscapes layout), one city per seed."""
    for seed in seeds:
        write_drive(DriveConfig(frames=frames, seed=seed, fps=fps, size=size), root, split, progress=False)


def held_out_evaluation(weights: str | Path, model: str = AUTO_MODEL, device: str = "cpu") -> EvalResult:
    """``weights`` scored on the held-out drives at 256x512 (the Cityscapes convention); ``auto``
    takes the network from the weights."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        render_drives(root, "val", HELD_OUT["seeds"], HELD_OUT["frames"], HELD_OUT["fps"], tuple(HELD_OUT["size"]))
        segmenter = Segmenter(build_model(model, CITYSCAPES.num_classes, weights), device=device)
        return evaluate(cityscapes_samples(root, "val", CITYSCAPES), segmenter, CITYSCAPES)

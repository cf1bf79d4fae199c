"""Where the demo weights' errors are, and what the network input size changes.

    .venv/bin/python bench/demo_errors.py [--weights demo [FILE ...]] [--sizes 256x512 384x768 512x1024]

On the held-out drives (seeds 2000-2004, 256x512, rendered on the fly), for each weights file:

- the mIoU with the network run at each input size (the image resized to it, the logits back);
- at the size the weights declare (else the images' own), the mIoU when the errors on label edges
  (pixels with a 4-neighbour of another class) are forgiven, and those within 1 pixel of one:
  how much of what is lost is the exact outline of objects rather than whole objects;
- the share of edge pixels wrong in the left, middle and right thirds of the image with the mask
  shifted by -1, 0 and +1 pixel: a network whose outlines sit where they should scores best
  unshifted in every third.

The renderer casts one ray per pixel centre for the image and the labels alike (no antialiasing),
so every edge is exactly learnable: edge errors are the network's, not the data's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from denseaspp_ros.declarations import format_size, parse_size
from denseaspp_ros.eval.evaluate import cityscapes_samples
from denseaspp_ros.eval.metrics import ConfusionMatrix
from denseaspp_ros.inference import Segmenter
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.model import AUTO_MODEL, build_model
from denseaspp_ros.synth.holdout import HELD_OUT, render_drives

SHIFTS = (-1, 0, 1)


def edge_distance(truth: np.ndarray) -> np.ndarray:
    """Pixels from the nearest label edge: 0 on a pixel with a 4-neighbour of another class."""
    edge = np.zeros(truth.shape, bool)
    across, down = truth[:, 1:] != truth[:, :-1], truth[1:] != truth[:-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    edge[1:] |= down
    edge[:-1] |= down
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L1, 3)


def forgiven(truth: np.ndarray, prediction: np.ndarray, distance: np.ndarray, within: int) -> np.ndarray:
    """``prediction`` with its errors closer than ``within`` pixels to a label edge counted as right."""
    near = distance < within
    return np.where(near, truth, prediction)


def thirds_edge_error(truth: np.ndarray, prediction: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """(wrong, edge pixels) per third of the width (rows) and horizontal shift of the mask (columns)."""
    width = truth.shape[1]
    counts = np.zeros((3, len(SHIFTS), 2), np.int64)
    for column, shift in enumerate(SHIFTS):
        shifted = np.roll(prediction, shift, axis=1)
        for third in range(3):
            window = np.s_[:, max(third * width // 3, 2): min((third + 1) * width // 3, width - 2)]
            edges = distance[window] == 0
            counts[third, column] = ((shifted[window] != truth[window]) & edges).sum(), edges.sum()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", nargs="+", default=["demo"])
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(256, 512), (384, 768), (512, 1024)])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        render_drives(root, "val", HELD_OUT["seeds"], HELD_OUT["frames"], HELD_OUT["fps"], tuple(HELD_OUT["size"]))
        frames = list(cityscapes_samples(root, "val", CITYSCAPES))
    print(f"{len(frames)} held-out frames, {HELD_OUT['size'][0]}x{HELD_OUT['size'][1]}")
    for weights in args.weights:
        model = build_model(AUTO_MODEL, CITYSCAPES.num_classes, weights)
        declared = model.input_size
        print(f"\n{weights} (declares {format_size(declared) if declared else 'no input size'})")
        for size in args.sizes:
            matrix = ConfusionMatrix(CITYSCAPES.num_classes)
            segmenter = Segmenter(model, device="cpu", input_size=size)
            for frame in frames:
                matrix.update(frame.labels, segmenter.segment_one(frame.rgb()).train_ids)
            print(f"  network input {format_size(size)}: mIoU {100 * matrix.miou():.1f}%")
        segmenter = Segmenter(model, device="cpu")
        matrices = {within: ConfusionMatrix(CITYSCAPES.num_classes) for within in (0, 1, 2)}
        thirds = np.zeros((3, len(SHIFTS), 2), np.int64)
        for frame in frames:
            truth, prediction = frame.labels, segmenter.segment_one(frame.rgb()).train_ids
            distance = edge_distance(truth)
            for within, matrix in matrices.items():
                matrix.update(truth, forgiven(truth, prediction, distance, within))
            thirds += thirds_edge_error(truth, prediction, distance)
        print("  errors forgiven on label edges: " + ", ".join(
            f"{'none' if within == 0 else f'within {within - 1} px' if within > 1 else 'on the edge'} "
            f"{100 * matrix.miou():.1f}%" for within, matrix in matrices.items()))
        print("  edge pixels wrong (%) with the mask shifted by " + ", ".join(f"{s:+d}" for s in SHIFTS) + " px:")
        for third, name in enumerate(("left", "middle", "right")):
            shares = 100 * thirds[third, :, 0] / np.maximum(thirds[third, :, 1], 1)
            print(f"    {name:6s} third: " + "  ".join(f"{share:5.1f}" for share in shares))


if __name__ == "__main__":
    main()

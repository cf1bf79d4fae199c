"""What an output stride allows: the IoU of perfect logits computed at a stride and upsampled.

    .venv/bin/python bench/stride_oracle.py [--data DIR --split val] [--strides 8 4 2]

Each class's one-hot truth is averaged over stride x stride cells (the best a network that
classifies at that stride could know), upsampled bilinearly as the network upsamples its logits,
and its argmax scored against the truth with the one ``ConfusionMatrix``. Without ``--data`` it
scores the held-out drives (seeds 2000-2004) rendered on the fly. At 256x512 a pole or a traffic
light a few pixels wide covers less than one stride-8 cell: this is why the demo network has a
decoder (``MobileNetDenseASPPDecoder``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from denseaspp_ros.eval.metrics import ConfusionMatrix
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.synth.holdout import HELD_OUT, render_drives


def stride_limited(truth: np.ndarray, stride: int, num_classes: int) -> np.ndarray:
    """The argmax of the truth's class shares at ``stride``, upsampled bilinearly to full size."""
    labels = torch.from_numpy(truth.astype(np.int64)).clamp(max=num_classes)  # ignore -> an extra channel
    shares = F.one_hot(labels, num_classes + 1).permute(2, 0, 1)[None].float()
    coarse = F.avg_pool2d(shares, stride, ceil_mode=True)
    fine = F.interpolate(coarse, size=truth.shape, mode="bilinear", align_corners=False)
    return fine[0, :num_classes].argmax(0).numpy().astype(np.uint8)


def score(label_files: list[Path], strides: list[int]) -> dict[int, ConfusionMatrix]:
    matrices = {stride: ConfusionMatrix(CITYSCAPES.num_classes) for stride in strides}
    for path in label_files:
        truth = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        for stride, matrix in matrices.items():
            matrix.update(truth, stride_limited(truth, stride, CITYSCAPES.num_classes))
    return matrices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a Cityscapes-layout folder (default: render the held-out drives)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--strides", type=int, nargs="+", default=[8, 4, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = args.data
        if root is None:
            root = Path(folder)
            render_drives(root, args.split, HELD_OUT["seeds"], HELD_OUT["frames"], HELD_OUT["fps"], tuple(HELD_OUT["size"]))
        files = sorted((root / "gtFine" / args.split).glob("*/*_gtFine_labelTrainIds.png"))
        if not files:
            raise SystemExit(f"no *_gtFine_labelTrainIds.png under {root / 'gtFine' / args.split}")
        matrices = score(files, args.strides)
    present = next(iter(matrices.values())).counts.sum(1) > 0
    print(f"{len(files)} label images; IoU (%) of perfect logits at each output stride, upsampled bilinearly")
    print(f"| class | {' | '.join(f'stride {s}' for s in args.strides)} |")
    print(f"| --- |{' ---: |' * len(args.strides)}")
    print(f"| **mIoU** | {' | '.join(f'**{100 * m.miou():.1f}**' for m in matrices.values())} |")
    for index, name in enumerate(CITYSCAPES.class_names):
        if present[index]:
            print(f"| {name} | {' | '.join(f'{100 * m.iou()[index]:.1f}' for m in matrices.values())} |")


if __name__ == "__main__":
    main()

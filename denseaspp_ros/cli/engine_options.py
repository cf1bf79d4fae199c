"""The engine options of the commands that segment (infer, bench, eval), and the engine they describe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..image_messages import MAX_IMAGE_PIXELS
from ..inference import Segmenter
from ..model import AUTO_MODEL, MODEL_NAMES, build_model, find_published_weights
from .arguments import _count

DEFAULT_MODEL = "DenseASPP161"


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, choices=(AUTO_MODEL, *MODEL_NAMES), help="network variant (auto: from --weights)"
    )
    parser.add_argument("--weights", type=Path, help="checkpoint: original .pkl, project .pt or .safetensors")
    parser.add_argument("--num-classes", type=int, default=19, help="classes the weights were trained for")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16 (the last two on CUDA)")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC memory format (default; faster on CPUs and tensor cores)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument(
        "--max-image-pixels", type=_count(1), default=MAX_IMAGE_PIXELS,
        help="larger images (by the size their header declares) are refused before decoding (default 4096x4096)",
    )


def _build_segmenter(args: argparse.Namespace, **options: object) -> Segmenter:
    weights = args.weights or find_published_weights(args.model)
    if weights is None:
        print(
            f"warning: no --weights and no published {args.model} checkpoint under weights/: "
            "using random weights, the masks will be meaningless",
            file=sys.stderr,
        )
    model = build_model(args.model, args.num_classes, weights)
    return Segmenter(
        model,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        max_batch=args.batch,
        max_image_pixels=args.max_image_pixels,
        **options,
    )

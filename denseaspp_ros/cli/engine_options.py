"""The engine options of the commands that segment (infer, bench, eval), and the engine they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..image_messages import MAX_IMAGE_PIXELS
from ..inference import Segmenter, load_engine
from ..model import AUTO_MODEL, MODEL_NAMES
from .arguments import _count

DEFAULT_MODEL = "DenseASPP161"


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, choices=(AUTO_MODEL, *MODEL_NAMES), help="network variant (auto: from --weights)"
    )
    parser.add_argument(
        "--weights", type=Path,
        help="checkpoint: original .pkl, project .pt or .safetensors; demo = the synthetic-world weights; "
        "default: the release's checkpoint under weights/, else random weights (with a warning)",
    )
    parser.add_argument("--labels", default="cityscapes", help="cityscapes or a label set YAML file (sets the class count)")
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
    """The engine of the command line: without --weights (and no published checkpoint), random
    weights with a warning, so a benchmark or a smoke test needs no download; a --weights that
    does not exist is an error."""
    return load_engine(
        args.weights,
        args.model,
        args.labels,
        allow_untrained=args.weights is None,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        max_batch=args.batch,
        max_image_pixels=args.max_image_pixels,
        **options,
    )

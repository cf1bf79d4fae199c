"""The engine options of the commands that segment (infer, bench, eval), and the engine they describe."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import add_flags
from ..inference import Segmenter, load_engine
from ..serving.settings import NodeSettings

DEFAULT_MODEL = "DenseASPP161"


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    add_flags(
        parser, NodeSettings, ["model.name"], defaults={"model.name": DEFAULT_MODEL}, flags={"model.name": "--model"}
    )
    parser.add_argument(
        "--weights", type=Path,
        help="checkpoint: original .pkl, project .pt or .safetensors; demo = the synthetic-world weights; "
        "default: the release's checkpoint under weights/, else random weights (with a warning)",
    )
    add_flags(parser, NodeSettings, ["model.labels", "model.device", "model.precision"])
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC memory format (default; faster on CPUs and tensor cores)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    add_flags(parser, NodeSettings, ["max_image_pixels"])


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

"""``denseaspp convert``: any supported checkpoint to .safetensors (no pickle, memory-mappable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..declarations import format_size
from ..errors import DenseASPPError
from ..model import MODEL_NAMES, convert_checkpoint
from .arguments import _size
from .engine_options import DEFAULT_MODEL


def register(commands) -> None:
    convert = commands.add_parser("convert", help="convert an original checkpoint to .safetensors")
    convert.add_argument("source", type=Path, help="checkpoint to read (e.g. weights/denseASPP161.pkl)")
    convert.add_argument("target", type=Path, help="the .safetensors file to write")
    convert.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    convert.add_argument("--num-classes", type=int, default=19)
    convert.add_argument("--half", action="store_true", help="store float16 (half the size)")
    convert.add_argument(
        "--input-size", type=_size, metavar="HxW",
        help="declare the network input size the weights run at (default: the source's declaration, if any)",
    )
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    if args.target.suffix != ".safetensors":
        raise DenseASPPError(f"the output must end in .safetensors, got {args.target}")
    declared = convert_checkpoint(args.source, args.target, args.model, args.num_classes, half=args.half, input_size=args.input_size)
    precision = "float16" if args.half else "float32"
    size = f", network input {format_size(declared)}" if declared else ""
    print(f"wrote {args.target} ({args.model}, {args.num_classes} classes, {precision}{size}) from {args.source}")
    return 0

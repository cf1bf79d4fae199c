"""The ``denseaspp`` command: one module per subcommand, each parsing its options and calling the library."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import DenseASPPError
from . import bag_recover, bench, convert, demo, evaluation, export, infer, replay, synth, train
from .arguments import _count, _size  # noqa: F401  (bench/ scripts parse their options with these)

COMMANDS = (infer, convert, export, bench, synth, train, evaluation, demo, replay, bag_recover)
DESCRIPTION = (
    "DenseASPP semantic segmentation: infer on image files, convert checkpoints, export to ONNX, bench the backends, synth data, "
    "train, eval, the end-to-end demo, replay a bag into a running node, bag-recover."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denseaspp", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DenseASPPError as error:
        print(f"denseaspp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system refused (disk full, permissions, a file where a folder goes)
        print(f"denseaspp {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("DENSEASPP_TRACEBACK"):
            raise
        print(
            f"denseaspp {args.command}: internal error: {type(error).__name__}: {error} "
            "(set DENSEASPP_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1

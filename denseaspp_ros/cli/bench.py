"""``denseaspp bench``: backends and precisions side by side, raw forward and whole engine path."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DenseASPPError
from . import engine_options
from .arguments import _count, _size, write_json


def register(commands) -> None:
    bench = commands.add_parser(
        "bench", help="throughput and latency of backends x precisions, raw forward and the whole engine path",
    )
    engine_options._add_engine_options(bench, lists=True)
    bench.add_argument("--size", type=_size, default=(256, 512), help="image size HxW")
    bench.add_argument("--warmup", type=_count(0), default=3, help="untimed batches first")
    bench.add_argument("--iterations", type=_count(1), default=10, help="timed batches")
    bench.add_argument("--json", type=Path, help="also write the figures as JSON")
    bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..inference.backends import backend_precision, choose_backend
    from ..inference.benchmark import Contender, format_table, run_benchmarks
    from ..inference.segmenter import resolve_device

    device = resolve_device(args.device)
    combinations: list[tuple[str, str]] = []
    for backend in args.backend:
        for precision in args.precision:
            chosen = choose_backend(backend, device, untrained=args.weights is None)
            try:
                backend_precision(chosen, precision)
            except DenseASPPError as error:
                print(f"skipped {chosen} {precision}: {error}", file=sys.stderr)
                continue
            if (chosen, precision) not in combinations:
                combinations.append((chosen, precision))
    if not combinations:
        raise DenseASPPError("no backend runs any of the precisions asked")
    contenders = []
    for backend, precision in combinations:
        try:
            contenders.append(Contender.of(
                engine_options._build_segmenter(args, backend=backend, precision=precision, input_size=args.size)
            ))  # input_size: an exported engine is built here, not in the timed loop
        except DenseASPPError as error:  # e.g. fp16 asked on a CPU: the other combinations still run
            if len(combinations) == 1:
                raise
            print(f"skipped {backend} {precision}: {error}", file=sys.stderr)
    if not contenders:
        raise DenseASPPError("none of the combinations asked can run here")
    table = run_benchmarks(contenders, contenders[0].segmenter.model_name, args.size, args.batch, args.warmup, args.iterations)
    print(format_table(table))
    if args.json:
        write_json(args.json, table.to_dict())
    return 0

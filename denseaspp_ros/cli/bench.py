"""``denseaspp bench``: throughput and latency of the raw forward and of the whole Segmenter path."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import engine_options
from .arguments import _count, _size, write_json


def register(commands) -> None:
    bench = commands.add_parser("bench", help="throughput and latency of the raw forward and the Segmenter path")
    engine_options._add_engine_options(bench)
    bench.add_argument("--size", type=_size, default=(256, 512), help="image size HxW")
    bench.add_argument("--warmup", type=_count(0), default=3, help="untimed batches first")
    bench.add_argument("--iterations", type=_count(1), default=10, help="timed batches")
    bench.add_argument("--json", type=Path, help="also write the figures as JSON")
    bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from ..inference.benchmark import format_report, run_benchmark

    segmenter = engine_options._build_segmenter(args)
    report = run_benchmark(segmenter, args.model, args.size, args.batch, args.warmup, args.iterations)
    print(format_report(report))
    if args.json:
        write_json(args.json, report.to_dict())
    return 0

"""Throughput and latency of backends, each on its raw path (the backend on a normalised batch)
and on the engine path (the whole Segmenter, uint8 in, uint8 out).

Every combination is timed in alternation within one run, so machine noise and thermal drift
affect all alike and their ratios are meaningful.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from .segmenter import Segmenter


@dataclass(frozen=True)
class Row:
    """One backend at one precision on one path: ``raw`` (the backend on a normalised batch) or
    ``engine`` (the whole Segmenter: uint8 images in, uint8 masks out)."""

    backend: str
    precision: str
    path: str
    images_per_s: float
    p50_ms: float
    p95_ms: float


@dataclass
class BenchmarkTable:
    model: str
    size: tuple[int, int]
    batch: int
    device: str
    iterations: int
    machine: str
    torch: str
    rows: list[Row]

    def row(self, backend: str, precision: str, path: str) -> Row:
        return next(r for r in self.rows if (r.backend, r.precision, r.path) == (backend, precision, path))

    def engine_share(self, backend: str, precision: str) -> float:
        """Fraction of the raw throughput the whole engine path keeps (1.0 = no overhead)."""
        return self.row(backend, precision, "engine").images_per_s / self.row(backend, precision, "raw").images_per_s

    def speedups(self) -> dict[str, float]:
        """Engine throughput of each combination over the first one's (torch fp32 when it was asked)."""
        base = next(r for r in self.rows if r.path == "engine")
        return {
            f"{r.backend}/{r.precision}": r.images_per_s / base.images_per_s for r in self.rows if r.path == "engine"
        }

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "engine_share": {f"{r.backend}/{r.precision}": self.engine_share(r.backend, r.precision)
                             for r in self.rows if r.path == "engine"},
            "speedup_over_first": self.speedups(),
        }


@dataclass(frozen=True)
class Contender:
    """An engine to time, with the names it is reported under."""

    backend: str
    precision: str
    segmenter: Segmenter

    @classmethod
    def of(cls, segmenter: Segmenter) -> Contender:
        described = segmenter.describe()
        return cls(described["backend"], described["precision"], segmenter)


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads"


def median_milliseconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``work`` over ``repeats`` calls after one untimed warm-up call
    (first-call allocations and dispatch); the median resists stalls from other processes."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _row(contender: Contender, path: str, seconds: list[float], batch: int) -> Row:
    # Throughput from the median batch time: one stall from another process on a shared
    # machine would otherwise swing a 10-iteration mean by several percent.
    milliseconds = np.array(seconds) * 1000.0
    p50, p95 = np.percentile(milliseconds, [50, 95])
    return Row(contender.backend, contender.precision, path, batch * 1000.0 / float(p50), float(p50), float(p95))


def run_benchmarks(
    contenders: list[Contender], model_name: str, size: tuple[int, int], batch: int, warmup: int, iterations: int
) -> BenchmarkTable:
    """Time ``iterations`` batches of random images through every contender's raw and engine paths,
    in alternation (each step runs all of them once), after ``warmup`` batches."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(batch)]
    inputs = [contender.segmenter.preprocess(images) for contender in contenders]
    seconds: dict[tuple[int, str], list[float]] = {(i, path): [] for i in range(len(contenders)) for path in ("raw", "engine")}
    device = contenders[0].segmenter.device

    def timed(run: Callable[[], object]) -> float:
        _synchronize(device)
        start = time.perf_counter()
        run()
        _synchronize(device)
        return time.perf_counter() - start

    for step in tqdm(range(warmup + iterations), desc=f"{model_name} {size[0]}x{size[1]} x{batch}", unit="iter"):
        for index, contender in enumerate(contenders):
            segmenter = contender.segmenter
            with torch.inference_mode():
                raw = timed(lambda: segmenter.backend(inputs[index]))
            engine = timed(lambda: segmenter.segment(images))
            if step >= warmup:
                seconds[(index, "raw")].append(raw)
                seconds[(index, "engine")].append(engine)
    rows = [
        _row(contender, path, seconds[(index, path)], batch)
        for index, contender in enumerate(contenders) for path in ("raw", "engine")
    ]
    return BenchmarkTable(
        model=model_name, size=size, batch=batch, device=str(device), iterations=iterations,
        machine=describe_machine(device), torch=torch.__version__, rows=rows,
    )


def format_table(table: BenchmarkTable) -> str:
    header = (
        f"{table.model} {table.size[0]}x{table.size[1]} batch {table.batch} on {table.device}, "
        f"{table.iterations} iterations\nmachine: {table.machine}; torch {table.torch}\n"
    )
    lines = [f"{'backend':12} {'precision':9} {'path':7} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'engine/raw':>10} {'speedup':>8}"]
    speedups = table.speedups()
    for row in table.rows:
        share = speedup = ""
        if row.path == "engine":
            share = f"{100 * table.engine_share(row.backend, row.precision):9.1f}%"
            speedup = f"{speedups[f'{row.backend}/{row.precision}']:7.2f}x"
        lines.append(
            f"{row.backend:12} {row.precision:9} {row.path:7} {row.images_per_s:9.2f} {row.p50_ms:8.1f} "
            f"{row.p95_ms:8.1f} {share:>10} {speedup:>8}"
        )
    lines.append("speedup: engine images/s over the first row's engine")
    return header + "\n".join(lines)

"""Throughput and latency of the raw network forward versus the whole Segmenter path.

The two are timed in alternation within one run, so machine noise and thermal drift affect
both alike and their ratio is meaningful.
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


@dataclass
class PathTiming:
    name: str
    images_per_second: float
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float


@dataclass
class BenchmarkReport:
    model: str
    size: tuple[int, int]
    batch: int
    device: str
    precision: str
    channels_last: bool
    iterations: int
    machine: str
    torch: str
    raw_forward: PathTiming
    segmenter: PathTiming

    @property
    def segmenter_share(self) -> float:
        """Fraction of the raw forward throughput the full path keeps (1.0 = no overhead)."""
        return self.segmenter.images_per_second / self.raw_forward.images_per_second

    def to_dict(self) -> dict:
        return {**asdict(self), "segmenter_share": self.segmenter_share}


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


def _timing(name: str, seconds: list[float], batch: int) -> PathTiming:
    # Throughput from the median batch time: one stall from another process on a shared
    # machine would otherwise swing a 10-iteration mean by several percent.
    milliseconds = np.array(seconds) * 1000.0
    p50, p90, p99 = np.percentile(milliseconds, [50, 90, 99])
    return PathTiming(name, batch * 1000.0 / float(p50), float(p50), float(p90), float(p99))


def run_benchmark(
    segmenter: Segmenter, model_name: str, size: tuple[int, int], batch: int, warmup: int, iterations: int
) -> BenchmarkReport:
    """Time ``iterations`` batches of random images through both paths, after ``warmup`` batches."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(batch)]
    network_input = segmenter.preprocess(images)
    raw_seconds: list[float] = []
    segmenter_seconds: list[float] = []

    def timed(run) -> float:
        _synchronize(segmenter.device)
        start = time.perf_counter()
        run()
        _synchronize(segmenter.device)
        return time.perf_counter() - start

    def raw_forward() -> None:
        with torch.inference_mode():
            segmenter.model(network_input)

    for step in tqdm(range(warmup + iterations), desc=f"{model_name} {size[0]}x{size[1]} x{batch}", unit="iter"):
        raw = timed(raw_forward)
        full = timed(lambda: segmenter.segment(images))
        if step >= warmup:
            raw_seconds.append(raw)
            segmenter_seconds.append(full)
    precision = str(segmenter.dtype).removeprefix("torch.")
    return BenchmarkReport(
        model=model_name,
        size=size,
        batch=batch,
        device=str(segmenter.device),
        precision=precision,
        channels_last=segmenter.memory_format == torch.channels_last,
        iterations=iterations,
        machine=describe_machine(segmenter.device),
        torch=torch.__version__,
        raw_forward=_timing("raw forward", raw_seconds, batch),
        segmenter=_timing("Segmenter (uint8 in, uint8 out)", segmenter_seconds, batch),
    )


def format_report(report: BenchmarkReport) -> str:
    header = (
        f"{report.model} {report.size[0]}x{report.size[1]} batch {report.batch} on {report.device} "
        f"({report.precision}{', channels_last' if report.channels_last else ''}), {report.iterations} iterations\n"
        f"machine: {report.machine}; torch {report.torch}\n"
    )
    rows = [f"{'path':34} {'images/s':>10} {'p50 ms':>10} {'p90 ms':>10} {'p99 ms':>10}"]
    for timing in (report.raw_forward, report.segmenter):
        rows.append(
            f"{timing.name:34} {timing.images_per_second:10.2f} {timing.latency_ms_p50:10.1f} "
            f"{timing.latency_ms_p90:10.1f} {timing.latency_ms_p99:10.1f}"
        )
    rows.append(f"Segmenter keeps {100 * report.segmenter_share:.1f}% of the raw forward throughput")
    return header + "\n".join(rows)

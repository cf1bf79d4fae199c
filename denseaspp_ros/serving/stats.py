"""Per-camera counters, rates and latency percentiles, and the engine's batch timings, for diagnostics (no ROS imports)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque

import numpy as np

# Rates are measured over this window; latency percentiles over the last LATENCY_SAMPLES frames.
RATE_WINDOW_S = 5.0
LATENCY_SAMPLES = 200
# The error kind of a batch whose logits were NaN/inf: its masks are withheld, an ERROR at once.
NONFINITE = "nonfinite_logits"
# Error kinds that cost the frame its outputs (others, e.g. a costmap refusal, come after publishing).
ENGINE_BUILDING = "engine_building"  # no engine for the frame's size yet: built in the background meanwhile
LOST_KINDS = frozenset({"bad_message", "too_large", NONFINITE, "internal", "inference_failed", ENGINE_BUILDING})


class RateMeter:
    """Events per second over a sliding window."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self._window = window
        self._events: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._events.append(now)
        self._trim(now)

    def rate(self, now: float) -> float:
        return self.count(now) / self._window

    def count(self, now: float) -> int:
        """Events within the window."""
        self._trim(now)
        return len(self._events)

    def _trim(self, now: float) -> None:
        while self._events and self._events[0] < now - self._window:
            self._events.popleft()


class CameraStats:
    """What diagnostics report for one camera; updated from the executor and the worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.published = 0
        self.dropped_stale = 0
        self.unstamped = 0
        self.errors: Counter[str] = Counter()
        self.last_received: float | None = None
        self._input = RateMeter()
        self._output = RateMeter()
        self._errors = RateMeter()
        self._nonfinite = RateMeter()
        self._lost = RateMeter()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._inference: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def on_received(self) -> None:
        now = time.monotonic()
        with self._lock:
            self.received += 1
            self.last_received = now
            self._input.tick(now)

    def on_dropped(self) -> None:
        """A newer frame replaced this camera's unprocessed one."""
        with self._lock:
            self.dropped_stale += 1

    def on_published(self, latency_s: float | None, inference_s: float) -> None:
        """``latency_s`` is None for frames with a zero stamp, whose latency means nothing."""
        with self._lock:
            self.published += 1
            self._output.tick(time.monotonic())
            self._inference.append(inference_s)
            if latency_s is None:
                self.unstamped += 1
            else:
                self._latencies.append(latency_s)

    def on_error(self, kind: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.errors[kind] += 1
            self._errors.tick(now)
            if kind == NONFINITE:
                self._nonfinite.tick(now)
            if kind in LOST_KINDS:
                self._lost.tick(now)

    def snapshot(self) -> dict[str, float | int | None]:
        now = time.monotonic()
        with self._lock:
            latencies = np.array(self._latencies) if self._latencies else None
            p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if latencies is not None else (None,) * 3
            return {
                "received": self.received,
                "published": self.published,
                "dropped_stale": self.dropped_stale,
                "unstamped": self.unstamped,
                "inference_p50_s": float(np.median(self._inference)) if self._inference else None,
                "errors": sum(self.errors.values()),
                "received_recent": self._input.count(now),
                "published_recent": self._output.count(now),
                "errors_recent": self._errors.count(now),
                "nonfinite_recent": self._nonfinite.count(now),
                "lost_recent": self._lost.count(now),
                "input_rate_hz": self._input.rate(now),
                "output_rate_hz": self._output.rate(now),
                "latency_p50_s": p50,
                "latency_p95_s": p95,
                "latency_p99_s": p99,
                "silent_for_s": None if self.last_received is None else now - self.last_received,
            }

    def error_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.errors)


class EngineStats:
    """Batch timings of the network and of the costmap update; written by the worker, read by diagnostics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batch_seconds: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._batch_sizes: deque[int] = deque(maxlen=LATENCY_SAMPLES)
        self._costmap_seconds: deque[float] = deque(maxlen=LATENCY_SAMPLES)

    def on_batch(self, seconds: float, size: int) -> None:
        with self._lock:
            self._batch_seconds.append(seconds)
            self._batch_sizes.append(size)

    def on_costmap(self, seconds: float) -> None:
        with self._lock:
            self._costmap_seconds.append(seconds)

    def snapshot(self) -> dict[str, float | None]:
        with self._lock:
            return {
                "batch_p50_s": float(np.median(self._batch_seconds)) if self._batch_seconds else None,
                "mean_batch_size": float(np.mean(self._batch_sizes)) if self._batch_sizes else None,
                "costmap_p50_s": float(np.median(self._costmap_seconds)) if self._costmap_seconds else None,
            }

"""One summary of per-frame latencies for every report: evaluation, replay, the demo (no ROS imports).

Every report gives the same percentiles under the same keys (``latency_ms_p50``, ``_p95``,
``_p99``), so figures from an offline evaluation, a replay and the node's diagnostics compare
directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds over ``frames`` timed frames (None when no frame was timed)."""

    frames: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        if not len(seconds):
            return cls(0)
        p50, p95, p99 = (float(value) for value in np.percentile(np.asarray(seconds) * 1000.0, PERCENTILES))
        return cls(len(seconds), p50, p95, p99)

    def fields(self, name: str = "latency") -> dict[str, float | None]:
        """The report keys: ``{name}_ms_p50``, ``{name}_ms_p95``, ``{name}_ms_p99``."""
        return {f"{name}_ms_p50": self.p50_ms, f"{name}_ms_p95": self.p95_ms, f"{name}_ms_p99": self.p99_ms}

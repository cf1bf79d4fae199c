"""CameraStats, RateMeter and EngineStats: the figures the node's diagnostics report (no ROS)."""

import threading

import numpy as np
import pytest

from denseaspp_ros.serving import stats as stats_module
from denseaspp_ros.serving.stats import LATENCY_SAMPLES, RATE_WINDOW_S, CameraStats, EngineStats, RateMeter


class FakeClock:
    """Stands in for time.monotonic so rates and silences are exact."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(stats_module.time, "monotonic", fake)
    return fake


# --- RateMeter -------------------------------------------------------------------------------


def test_rate_meter_counts_events_per_second_over_its_window():
    meter = RateMeter(window=2.0)
    for i in range(20):  # 10 Hz for 2 s
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(101.9) == pytest.approx(10.0)


def test_rate_meter_forgets_events_older_than_the_window():
    meter = RateMeter(window=1.0)
    for i in range(10):
        meter.tick(i * 0.1)  # 0.0 .. 0.9
    assert meter.rate(0.9) == pytest.approx(10.0)
    assert meter.rate(1.45) == pytest.approx(5.0)  # 0.5 .. 0.9 remain
    assert meter.rate(5.0) == 0.0


def test_rate_meter_with_no_events_is_zero():
    assert RateMeter().rate(123.0) == 0.0


# --- CameraStats -----------------------------------------------------------------------------


def test_fresh_stats_report_nothing_yet(clock):
    snapshot = CameraStats().snapshot()
    assert snapshot["received"] == 0
    assert snapshot["published"] == 0
    assert snapshot["errors"] == 0
    assert snapshot["input_rate_hz"] == 0.0
    assert snapshot["output_rate_hz"] == 0.0
    assert snapshot["latency_p50_s"] is None
    assert snapshot["latency_p95_s"] is None
    assert snapshot["latency_p99_s"] is None
    assert snapshot["silent_for_s"] is None  # 'no images yet', not 'silent for 0 s'


def test_input_and_output_rates_over_the_window(clock):
    stats = CameraStats()
    # 20 Hz in, every fourth frame published (5 Hz out), for twice the rate window.
    for i in range(int(2 * RATE_WINDOW_S * 20)):
        stats.on_received()
        if i % 4 == 0:
            stats.on_published(0.01, 0.02)
        clock.advance(0.05)
    snapshot = stats.snapshot()
    assert snapshot["input_rate_hz"] == pytest.approx(20.0, rel=0.05)
    assert snapshot["output_rate_hz"] == pytest.approx(5.0, rel=0.05)
    assert snapshot["received"] == 2 * RATE_WINDOW_S * 20
    assert snapshot["published"] == 2 * RATE_WINDOW_S * 5


def test_rates_fall_to_zero_when_frames_stop(clock):
    stats = CameraStats()
    for _ in range(10):
        stats.on_received()
        stats.on_published(0.01, 0.02)
        clock.advance(0.1)
    clock.advance(RATE_WINDOW_S + 0.5)
    snapshot = stats.snapshot()
    assert snapshot["input_rate_hz"] == 0.0
    assert snapshot["output_rate_hz"] == 0.0
    assert snapshot["received"] == 10  # totals stay


def test_silent_for_counts_from_the_last_received_frame(clock):
    stats = CameraStats()
    stats.on_received()
    clock.advance(3.25)
    assert stats.snapshot()["silent_for_s"] == pytest.approx(3.25)
    stats.on_published(0.1, 0.02)  # an output is not an input: the camera is still silent
    clock.advance(0.75)
    assert stats.snapshot()["silent_for_s"] == pytest.approx(4.0)
    stats.on_received()
    assert stats.snapshot()["silent_for_s"] == pytest.approx(0.0)


def test_latency_percentiles(clock):
    stats = CameraStats()
    latencies = np.arange(1, 101) / 1000.0  # 1..100 ms
    for latency in np.random.default_rng(0).permutation(latencies):
        stats.on_published(float(latency), 0.02)
    snapshot = stats.snapshot()
    assert snapshot["latency_p50_s"] == pytest.approx(np.percentile(latencies, 50))
    assert snapshot["latency_p95_s"] == pytest.approx(np.percentile(latencies, 95))
    assert snapshot["latency_p99_s"] == pytest.approx(np.percentile(latencies, 99))
    assert snapshot["latency_p50_s"] < snapshot["latency_p95_s"] < snapshot["latency_p99_s"]


def test_latency_percentiles_cover_only_the_most_recent_samples(clock):
    stats = CameraStats()
    for _ in range(LATENCY_SAMPLES):
        stats.on_published(10.0, 0.02)  # an old backlog
    for _ in range(LATENCY_SAMPLES):
        stats.on_published(0.05, 0.02)
    snapshot = stats.snapshot()
    assert snapshot["latency_p99_s"] == pytest.approx(0.05)
    assert snapshot["published"] == 2 * LATENCY_SAMPLES


def test_error_counts_by_kind(clock):
    stats = CameraStats()
    for _ in range(3):
        stats.on_error("bad_message")
    stats.on_error("camera_info_mismatch")
    assert stats.error_counts() == {"bad_message": 3, "camera_info_mismatch": 1}
    assert stats.snapshot()["errors"] == 4


def test_error_counts_are_a_copy(clock):
    stats = CameraStats()
    stats.on_error("bad_message")
    counts = stats.error_counts()
    counts["bad_message"] = 100
    assert stats.error_counts() == {"bad_message": 1}


def test_updates_from_several_threads_are_all_counted():
    stats = CameraStats()

    def hammer() -> None:
        for _ in range(5000):
            stats.on_received()
            stats.on_published(0.001, 0.02)
            stats.on_error("bad_message")

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snapshot = stats.snapshot()
    assert snapshot["received"] == snapshot["published"] == snapshot["errors"] == 20000


def test_unstamped_frames_and_drops_are_counted_without_a_latency(clock):
    stats = CameraStats()
    stats.on_published(None, 0.03)  # a zero stamp: latency would be ~56 years
    stats.on_published(0.05, 0.01)
    stats.on_dropped()
    snapshot = stats.snapshot()
    assert snapshot["unstamped"] == 1 and snapshot["published"] == 2 and snapshot["dropped_stale"] == 1
    assert snapshot["latency_p99_s"] == pytest.approx(0.05)
    assert snapshot["inference_p50_s"] == pytest.approx(0.02)


# --- EngineStats -----------------------------------------------------------------------------


def test_engine_stats_report_nothing_before_the_first_batch():
    assert EngineStats().snapshot() == {"batch_p50_s": None, "mean_batch_size": None, "costmap_p50_s": None}


def test_engine_stats_median_batch_time_mean_batch_size_and_costmap_time():
    stats = EngineStats()
    for seconds, size in ((0.1, 1), (0.3, 3), (0.2, 2)):
        stats.on_batch(seconds, size)
    stats.on_costmap(0.004)
    assert stats.snapshot() == {
        "batch_p50_s": pytest.approx(0.2), "mean_batch_size": pytest.approx(2.0), "costmap_p50_s": pytest.approx(0.004)
    }


def test_engine_stats_cover_only_the_most_recent_batches():
    stats = EngineStats()
    for _ in range(LATENCY_SAMPLES):
        stats.on_batch(10.0, 4)
    for _ in range(LATENCY_SAMPLES):
        stats.on_batch(0.1, 1)
    assert stats.snapshot()["batch_p50_s"] == pytest.approx(0.1)
    assert stats.snapshot()["mean_batch_size"] == pytest.approx(1.0)

"""What /diagnostics says about a camera and the engine, decided without ROS or DDS."""

from __future__ import annotations

import subprocess
import sys

import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from denseaspp_ros.serving.health import (
    Health,
    HealthLimits,
    Level,
    as_text,
    camera_figures,
    camera_health,
    engine_figures,
    engine_health,
    mask_health,
    odometry_health,
)
from denseaspp_ros.serving.stats import CameraStats, EngineStats

LIMITS = HealthLimits(silence_timeout=2.0, max_latency=1.0, max_error_fraction=0.1)


def snapshot(**changes) -> dict:
    """A camera that receives and publishes 10 frames per window, on time; the keys are CameraStats'."""
    healthy = {
        "received_recent": 10, "published_recent": 10, "errors_recent": 0, "lost_recent": 0, "nonfinite_recent": 0,
        "silent_for_s": 0.1, "latency_p95_s": 0.2,
    }
    figures = CameraStats().snapshot()
    assert set(healthy) <= set(figures)
    return {**figures, **healthy, **changes}


def health(errors: dict[str, int] | None = None, active: bool = True, wanted: bool = True, **changes) -> Health:
    return camera_health(snapshot(**changes), errors or {}, LIMITS, active=active, wanted=wanted)


def test_a_camera_that_publishes_on_time_is_ok():
    assert health() == Health(Level.OK, "ok")


def test_an_inactive_node_says_so_whatever_its_cameras_do():
    assert health(active=False, silent_for_s=None, nonfinite_recent=3) == Health(Level.OK, "inactive")


def test_non_finite_logits_are_an_error_before_anything_else():
    got = health(nonfinite_recent=2, errors_recent=2, silent_for_s=100.0)
    assert got == Health(Level.ERROR, "non-finite logits in 2 frames: masks withheld")


def test_a_camera_whose_every_processed_frame_failed_is_an_error_naming_the_kinds():
    got = health({"bad_message": 3}, published_recent=0, lost_recent=3, errors_recent=3)
    assert got == Health(Level.ERROR, "all 3 frames processed in the last 5 s failed (bad_message 3)")


def test_failures_above_the_fraction_warn_and_at_it_do_not():
    assert health({"too_large": 2}, published_recent=8, lost_recent=2, errors_recent=2) == Health(
        Level.WARN, "2 failures in 10 frames processed in the last 5 s (too_large 2)"
    )
    assert health({"too_large": 1}, published_recent=9, lost_recent=1, errors_recent=1).level == Level.OK


def test_stale_drops_do_not_dilute_the_failures_of_a_slow_node():
    """100 frames received, 2 processed of which 1 failed: half failed, not 1 in 100."""
    got = health({"costmap": 1}, received_recent=100, published_recent=2, errors_recent=1)
    assert got.level == Level.WARN and "1 failures in 2 frames" in got.message


@pytest.mark.parametrize(
    ("silent", "expected"),
    [
        (None, Health(Level.WARN, "no images yet")),
        (3.0, Health(Level.WARN, "silent for 3.0 s")),
        (10.5, Health(Level.ERROR, "silent for 10.5 s")),  # beyond 5x silence_timeout
    ],
)
def test_a_silent_camera_warns_then_errs(silent, expected):
    assert health(silent_for_s=silent) == expected


def test_a_camera_nobody_listens_to_is_idle_not_failing_to_publish():
    assert health(wanted=False, published_recent=0) == Health(Level.OK, "idle (no subscribers)")


def test_a_camera_that_receives_but_publishes_nothing_warns():
    got = health(received_recent=5, published_recent=0)
    assert got == Health(Level.WARN, "received 5 frames in the last 5 s but published none")


@pytest.mark.parametrize(("p95", "level"), [(1.0, Level.OK), (1.5, Level.WARN), (2.5, Level.ERROR)])
def test_latency_above_the_limit_warns_and_above_twice_it_errs(p95, level):
    got = health(latency_p95_s=p95)
    assert got.level == level
    if level != Level.OK:
        assert got.message == f"p95 latency {1000 * p95:.0f} ms above 1000 ms"


def test_camera_figures_in_milliseconds_with_one_entry_per_error_kind():
    figures = camera_figures(
        snapshot(latency_p50_s=0.05, latency_p95_s=0.25, latency_p99_s=None, inference_p50_s=0.01, errors=3),
        {"bad_message": 2, "costmap_stamp": 1},
    )
    assert figures["latency_ms_p50"] == pytest.approx(50.0) and figures["latency_ms_p95"] == pytest.approx(250.0)
    assert figures["latency_ms_p99"] is None and figures["inference_ms_p50"] == pytest.approx(10.0)
    assert (figures["errors"], figures["errors.bad_message"], figures["errors.costmap_stamp"]) == (3, 2, 1)
    assert {"input_rate_hz", "output_rate_hz", "received", "published", "dropped_stale", "unstamped"} <= set(figures)


def test_engine_figures_in_milliseconds():
    stats = EngineStats()
    assert engine_figures(stats.snapshot()) == {
        "inference_ms_per_batch_p50": None, "mean_batch_size": None, "costmap_ms_per_batch_p50": None
    }
    stats.on_batch(0.25, 2)
    stats.on_costmap(0.002)
    assert engine_figures(stats.snapshot()) == {
        "inference_ms_per_batch_p50": pytest.approx(250.0), "mean_batch_size": pytest.approx(2.0),
        "costmap_ms_per_batch_p50": pytest.approx(2.0),
    }


@pytest.mark.parametrize(("value", "text"), [(0.12345, "0.123"), (None, "n/a"), (7, "7"), ("cuda:0", "cuda:0")])
def test_values_as_diagnostics_text(value, text):
    assert as_text(value) == text


def test_levels_are_diagnostic_msgs_levels():
    assert [bytes([level]) for level in Level] == [DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR]


def test_the_serving_modules_import_no_ros():
    code = (
        "import sys, denseaspp_ros.serving.health, denseaspp_ros.serving.scheduling, denseaspp_ros.serving.stamps; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rclpy', 'rcl_interfaces', 'sensor_msgs', 'std_msgs', "
        "'diagnostic_msgs', 'torch'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def odometry(**changes) -> dict:
    """Odometry that arrived 20 ms ago and gave every frame its pose; the keys are CostmapOutput's."""
    return {"topic": "/odom", "frame_id": "odom", "poses_kept": 250, "age_s": 0.02, "refused_recent": 0,
            "last_refusal": None, "messages_refused_recent": 0, "last_message_refusal": None, **changes}


@pytest.mark.parametrize("changes, level, words", [
    ({}, Level.OK, "ok"),
    ({"age_s": None, "poses_kept": 0}, Level.WARN, "no odometry on /odom yet"),
    ({"age_s": 3.0}, Level.WARN, "silent for 3.0 s"),
    ({"age_s": 11.0}, Level.ERROR, "silent for 11.0 s"),
    ({"refused_recent": 4, "last_refusal": "odometry is 0.300 s behind the frame"}, Level.WARN,
     "4 frames in the last 5 s had no vehicle pose at their stamp (odometry is 0.300 s behind the frame)"),
    ({"messages_refused_recent": 2, "last_message_refusal": "odometry stamped 3.000 s ahead of the clock"}, Level.WARN,
     "2 odometry messages on /odom refused in the last 5 s (odometry stamped 3.000 s ahead of the clock)"),
])
def test_odometry_that_is_missing_silent_or_late_warns_with_the_reason(changes, level, words):
    result = odometry_health(odometry(**changes), LIMITS, active=True)
    assert result.level == level and words in result.message, result
    assert odometry_health(odometry(**changes), LIMITS, active=False) == Health(Level.OK, "inactive")


def masks(**changes) -> dict:
    """A camera of semantic_costmap_node whose masks arrive and are all folded in (CameraStats' keys)."""
    return {"silent_for_s": 0.1, "published_recent": 50, "errors_recent": 0, **changes}


@pytest.mark.parametrize("changes, counts, level, words", [
    ({}, {}, Level.OK, "ok"),
    ({"published_recent": 0, "errors_recent": 50}, {"stamp_future": 50}, Level.ERROR,
     "all 50 masks in the last 5 s refused (so far: stamp_future 50)"),
    ({"published_recent": 40, "errors_recent": 10}, {"aspect": 10}, Level.WARN, "10 of 50 masks in the last 5 s refused"),
    ({"published_recent": 49, "errors_recent": 1}, {"aspect": 1}, Level.OK, "ok"),
    ({"silent_for_s": None, "published_recent": 0}, {}, Level.WARN, "no masks yet"),
    ({"silent_for_s": 30.0, "published_recent": 0}, {}, Level.ERROR, "silent for 30.0 s"),
])
def test_a_costmap_camera_is_judged_by_the_share_of_its_masks_refused(changes, counts, level, words):
    result = mask_health(masks(**changes), counts, LIMITS, active=True)
    assert result.level == level and words in result.message, result
    assert mask_health(masks(**changes), counts, LIMITS, active=False) == Health(Level.OK, "inactive")


@pytest.mark.parametrize("engines, evicted, level, words", [
    ({}, 0, Level.OK, "active"),
    ({"engine_building": "48x64", "engine_building_s": 7.2}, 0, Level.WARN, "building the engine for 48x64 (7 s so far)"),
    ({"engine_failures": "48x64: export failed"}, 0, Level.ERROR, "could not be built (48x64: export failed)"),
    ({"engines_evicted": 3}, 2, Level.WARN, "2 engines dropped since the last report"),
])
def test_the_engine_line_says_when_engines_are_built_failed_or_dropped(engines, evicted, level, words):
    result = engine_health("active", engines, evicted)
    assert result.level == level and words in result.message, result
    assert engine_health("inactive", engines, evicted) == Health(Level.OK, "inactive")

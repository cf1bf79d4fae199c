"""What /diagnostics says about each camera and the engine, as plain values (no ROS imports).

The node turns these into diagnostic_msgs; the decisions live here so they are tested without DDS.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..declarations import setting
from .camera_health import CameraHealth, State
from .stats import RATE_WINDOW_S


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus's levels, by value."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class HealthLimits:
    """The ``diagnostics.*`` parameters: when a camera turns WARN, and ERROR."""

    silence_timeout: float = setting(
        2.0, "WARN when a camera (or the odometry) sends nothing for this long (ERROR after 5x)", low=0.1, high=3600.0
    )
    max_latency: float = setting(
        1.0, "WARN when p95 latency exceeds this many seconds (ERROR above 2x)", low=0.001, high=3600.0
    )
    max_error_fraction: float = setting(  # of the frames processed over the rate window
        0.1, "WARN when more of a camera's frames fail over the last 5 s (ERROR when all do)", low=0.0, high=1.0
    )


@dataclass(frozen=True)
class Health:
    level: Level
    message: str


def camera_health(
    snapshot: dict[str, Any], error_counts: dict[str, int], limits: HealthLimits, *, active: bool, wanted: bool
) -> Health:
    """The level and message of one camera, from ``CameraStats.snapshot()``: the worst problem first.

    ``wanted``: someone subscribes to one of the camera's outputs (or to the costmap it feeds).
    """
    silent = snapshot["silent_for_s"]
    p95 = snapshot["latency_p95_s"]
    received, published = snapshot["received_recent"], snapshot["published_recent"]
    # Failures per frame the worker took (published or lost), not per frame received: frames
    # dropped as stale are not failures, and a slow node must not dilute its errors with them.
    processed, failed = published + snapshot["lost_recent"], snapshot["errors_recent"]
    window = f"in the last {RATE_WINDOW_S:.0f} s"
    kinds = ", ".join(f"{kind} {count}" for kind, count in error_counts.items())
    if not active:
        return Health(Level.OK, "inactive")
    if snapshot["nonfinite_recent"]:
        return Health(Level.ERROR, f"non-finite logits in {snapshot['nonfinite_recent']} frames: masks withheld")
    if processed and failed >= processed:
        return Health(Level.ERROR, f"all {processed} frames processed {window} failed ({kinds})")
    if processed and failed / processed > limits.max_error_fraction:
        return Health(Level.WARN, f"{failed} failures in {processed} frames processed {window} ({kinds})")
    if silent is None or silent > limits.silence_timeout:
        level = Level.ERROR if silent is not None and silent > 5 * limits.silence_timeout else Level.WARN
        return Health(level, "no images yet" if silent is None else f"silent for {silent:.1f} s")
    if not wanted:
        return Health(Level.OK, "idle (no subscribers)")
    if received >= 2 and not published:
        return Health(Level.WARN, f"received {received} frames {window} but published none")
    if p95 is not None and p95 > limits.max_latency:
        level = Level.ERROR if p95 > 2 * limits.max_latency else Level.WARN
        return Health(level, f"p95 latency {1000 * p95:.0f} ms above {1000 * limits.max_latency:.0f} ms")
    return Health(Level.OK, "ok")


def mask_health(snapshot: dict[str, Any], error_counts: dict[str, int], limits: HealthLimits, *, active: bool) -> Health:
    """The level and message of one camera of semantic_costmap_node, from the ``CameraStats`` of its
    masks (published: folded into the grid; errors: refused), by segmentation_node's rules: masks
    that are all refused are an ERROR, more than ``max_error_fraction`` of them a WARN."""
    silent, used, refused = snapshot["silent_for_s"], snapshot["published_recent"], snapshot["errors_recent"]
    window = f"in the last {RATE_WINDOW_S:.0f} s"
    kinds = ", ".join(f"{kind} {count}" for kind, count in error_counts.items())
    if not active:
        return Health(Level.OK, "inactive")
    if refused and not used:
        return Health(Level.ERROR, f"all {refused} masks {window} refused (so far: {kinds}): the camera adds nothing to the costmap")
    if refused and refused / (refused + used) > limits.max_error_fraction:
        return Health(Level.WARN, f"{refused} of {refused + used} masks {window} refused (so far: {kinds})")
    if silent is None or silent > limits.silence_timeout:
        level = Level.ERROR if silent is not None and silent > 5 * limits.silence_timeout else Level.WARN
        return Health(level, "no masks yet" if silent is None else f"silent for {silent:.1f} s")
    return Health(Level.OK, "ok")


def odometry_health(snapshot: dict[str, Any], limits: HealthLimits, *, active: bool) -> Health:
    """The level and message of the odometry a costmap is anchored to, from ``CostmapOutput.odometry_snapshot()``.

    Without a pose at a frame's stamp the frame stays out of the costmap: missing, silent or late
    odometry is a WARN (ERROR once silent for 5x the silence timeout), with what to check.
    """
    age, refused = snapshot["age_s"], snapshot["refused_recent"]
    if not active:
        return Health(Level.OK, "inactive")
    if snapshot["messages_refused_recent"]:
        return Health(
            Level.WARN, f"{snapshot['messages_refused_recent']} odometry messages on {snapshot['topic']} refused in the last "
            f"{RATE_WINDOW_S:.0f} s ({snapshot['last_message_refusal']})",
        )
    if age is None:
        return Health(Level.WARN, f"no odometry on {snapshot['topic']} yet: no costmap is published")
    if age > limits.silence_timeout:
        level = Level.ERROR if age > 5 * limits.silence_timeout else Level.WARN
        return Health(level, f"odometry on {snapshot['topic']} silent for {age:.1f} s: frames stay out of the costmap")
    if refused:
        return Health(
            Level.WARN, f"{refused} frames in the last {RATE_WINDOW_S:.0f} s had no vehicle pose at their stamp "
            f"({snapshot['last_refusal']}): odometry late or ahead of the frames, or costmap.transform_tolerance too tight",
        )
    return Health(Level.OK, "ok")


def judged_health(judged: CameraHealth | None) -> Health:
    """The camera monitor's verdict as a /diagnostics level: FAULT is an ERROR (no free cells from
    this camera), DEGRADED a WARN, with the kinds."""
    if judged is None or judged.state == State.OK:
        return Health(Level.OK, "ok")
    if judged.state == State.FAULT:
        return Health(Level.ERROR, f"camera fault: {judged.describe()}: no free cells from this camera")
    return Health(Level.WARN, f"camera degraded: {judged.describe()}")


def worse_of(first: Health, second: Health) -> Health:
    """The more severe of two verdicts (the first on a tie)."""
    return second if second.level > first.level else first


def engine_health(state: str, engines: dict[str, Any], evicted_since_last: int) -> Health:
    """The engine's line: an exported engine being built (its size's frames are dropped meanwhile),
    a build that failed, or engines dropped since the last report (more input sizes than kept)."""
    if state != "active":
        return Health(Level.OK, state)
    if engines.get("engine_failures"):
        return Health(Level.ERROR, f"an engine could not be built ({engines['engine_failures']}): frames of that size are dropped")
    if engines.get("engine_building"):
        return Health(
            Level.WARN, f"building the engine for {engines['engine_building']} ({engines['engine_building_s']:.0f} s so far): "
            "frames of that size are dropped meanwhile",
        )
    if evicted_since_last:
        return Health(
            Level.WARN, f"{evicted_since_last} engines dropped since the last report: the cameras send more input sizes "
            "than model.max_engines keeps, and each new one costs a build (set model.input_height/input_width)",
        )
    return Health(Level.OK, state)


def camera_figures(snapshot: dict[str, Any], error_counts: dict[str, int]) -> dict[str, Any]:
    """A camera's counters, rates and timings as /diagnostics lists them (times in milliseconds)."""
    return {
        "input_rate_hz": snapshot["input_rate_hz"],
        "frame_rate_node": snapshot["input_rate_hz"],  # greenwave's name for the rate of arrival
        "output_rate_hz": snapshot["output_rate_hz"],
        "received": snapshot["received"],
        "published": snapshot["published"],
        "dropped_stale": snapshot["dropped_stale"],
        "unstamped": snapshot["unstamped"],
        "errors": snapshot["errors"],
        **{f"errors.{kind}": count for kind, count in error_counts.items()},
        "latency_ms_p50": _ms(snapshot["latency_p50_s"]),
        "latency_ms_p95": _ms(snapshot["latency_p95_s"]),
        "latency_ms_p99": _ms(snapshot["latency_p99_s"]),
        "inference_ms_p50": _ms(snapshot["inference_p50_s"]),
    }


def engine_figures(snapshot: dict[str, float | None]) -> dict[str, float | None]:
    """The engine's batch timings from ``EngineStats.snapshot()``, in milliseconds."""
    return {
        "inference_ms_per_batch_p50": _ms(snapshot["batch_p50_s"]),
        "mean_batch_size": snapshot["mean_batch_size"],
        "costmap_ms_per_batch_p50": _ms(snapshot["costmap_p50_s"]),
    }


def as_text(value: object) -> str:
    """A diagnostics value: floats to three decimals, a missing figure as n/a."""
    return f"{value:.3f}" if isinstance(value, float) else ("n/a" if value is None else str(value))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1000 * seconds

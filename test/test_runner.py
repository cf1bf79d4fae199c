"""KeyedThrottle: the nodes' one log throttle, per key (no DDS)."""

from __future__ import annotations

import pytest

from denseaspp_ros.ros import runner


class RecordingNode:
    """Stands in for a node: get_logger() records what is logged."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def get_logger(self) -> RecordingNode:
        return self

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    return now


def test_a_key_is_logged_once_per_period(clock):
    node = RecordingNode()
    throttle = runner.KeyedThrottle(node, period=5.0)
    for _ in range(3):
        throttle.warn(("front", "bad_message"), "front: dropped a frame")
    clock[0] += 4.9
    throttle.warn(("front", "bad_message"), "front: dropped a frame")
    assert node.lines == [("warning", "front: dropped a frame")]
    clock[0] += 0.1
    throttle.warn(("front", "bad_message"), "front: dropped another")
    assert node.lines[-1] == ("warning", "front: dropped another")


def test_other_cameras_and_kinds_are_not_hidden_behind_the_first(clock):
    node = RecordingNode()
    throttle = runner.KeyedThrottle(node)
    throttle.warn(("front", "bad_message"), "a")
    throttle.warn(("rear", "bad_message"), "b")
    throttle.error(("front", "nonfinite_logits"), "c")
    throttle.error(("front", "nonfinite_logits"), "d")
    assert node.lines == [("warning", "a"), ("warning", "b"), ("error", "c")]


def test_old_keys_are_forgotten_rather_than_kept_forever(clock):
    throttle = runner.KeyedThrottle(RecordingNode(), period=1.0)
    for index in range(1500):
        throttle.warn(("front", index), "x")
        clock[0] += 0.01
    assert len(throttle._last) <= 1001

"""Message stamps as integers, latency, and the stamps the costmap refuses (no ROS)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from denseaspp_ros.frames import stamp_ns
from denseaspp_ros.serving.stamps import StampRejected, check_costmap_stamp, latency_s

NOW = 1_700_000_000 * 1_000_000_000
SKEW, DECAY = 0.5, 1.0


def header(sec: int, nanosec: int = 0) -> SimpleNamespace:
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec))


def test_stamps_are_integer_nanoseconds_also_before_1970():
    assert stamp_ns(header(1_700_000_000, 5)) == 1_700_000_000_000_000_005
    assert stamp_ns(header(-1, 500_000_000)) == -500_000_000  # rclpy's Time would refuse it
    assert stamp_ns(header(0)) == 0


def test_latency_is_now_minus_the_stamp_and_none_when_unstamped():
    assert latency_s(NOW - 250_000_000, NOW) == pytest.approx(0.25)
    assert latency_s(0, NOW) is None


@pytest.mark.parametrize(
    ("stamp", "kind", "words"),
    [
        (0, "unstamped", "stamp 0"),
        (-1_000_000_000, "before_1970", "before 1970"),
        (NOW + 600_000_000, "future", "ahead of this node's clock"),
        (NOW - 1_100_000_000, "too_old", "older than costmap.decay_time"),
    ],
)
def test_stamps_the_costmap_cannot_trust_are_refused_by_kind(stamp, kind, words):
    with pytest.raises(StampRejected, match=words) as caught:
        check_costmap_stamp(stamp, NOW, SKEW, DECAY)
    assert caught.value.kind == kind


@pytest.mark.parametrize("offset_s", [0.5, 0.0, -1.0])  # at the limits, both ways
def test_stamps_within_the_skew_and_the_decay_time_are_accepted(offset_s):
    check_costmap_stamp(NOW + round(offset_s * 1e9), NOW, SKEW, DECAY)

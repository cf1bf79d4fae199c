"""The stamps the costmap cannot trust, and latency from a stamp (no ROS imports).

Plain integers: rclpy's Time refuses stamps before 1970, which would end a worker thread.
"""

from __future__ import annotations


from ..errors import DenseASPPError


def latency_s(stamp: int, now: int) -> float | None:
    """``now - stamp`` in seconds; None for an unstamped (zero) frame, common with some drivers."""
    return None if stamp == 0 else (now - stamp) / 1e9


class FrameRefused(DenseASPPError):
    """A frame the costmap refuses (its mask is still published): counted per ``kind``, the cause
    without the figures, for counting and throttled logging."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class StampRejected(FrameRefused):
    """A frame whose stamp the costmap cannot trust: ahead of the clock, before 1970, zero, or too old."""


def check_costmap_stamp(
    stamp: int, now: int, max_stamp_skew: float, decay_time: float, decay_setting: str = "costmap.decay_time"
) -> None:
    """Raise ``StampRejected`` unless the costmap may use a frame stamped ``stamp`` at ``now`` (ns).

    A frame from the future would keep its cells fresh until the clock caught up; one older than
    ``decay_time`` would be unknown at once, so it is refused with the setting to raise.
    """
    if stamp <= 0:
        if stamp == 0:
            raise StampRejected("unstamped", "unstamped frame (stamp 0): the costmap cannot age it")
        raise StampRejected("before_1970", f"frame stamped before 1970 ({stamp / 1e9:.3f} s)")
    ahead = (stamp - now) / 1e9
    if ahead > max_stamp_skew:
        raise StampRejected(
            "future",
            f"frame stamped {ahead:.3f} s ahead of this node's clock (costmap.max_stamp_skew "
            f"{max_stamp_skew} s): check the camera's clock synchronisation",
        )
    if -ahead > decay_time:
        raise StampRejected(
            "too_old",
            f"frame is {-ahead:.3f} s old, older than {decay_setting} {decay_time} s: its cells would be "
            f"unknown at once; raise {decay_setting} above the latency (or check the camera's clock)",
        )

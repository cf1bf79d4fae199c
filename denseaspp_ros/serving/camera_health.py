"""Whether a camera's frames can be trusted, judged frame by frame without ROS.

A planner drives on the cells the costmap calls free, and a mask is only as good as the picture it
came from. A frozen driver (the same pixels with advancing stamps), a blinded or a dark camera
still give the network something to label, and it labels it confidently: road. The monitor looks
at a strided sample of each frame (every ``sample_stride``-th pixel each way: a view, no copy of
the frame) and at its stamps, and gives each kind of fault a state, OK, DEGRADED or FAULT, that
changes only after ``enter_frames`` frames in a row say so and clears only after ``leave_frames``
(hysteresis: one odd frame neither raises nor clears an alarm). A camera in FAULT adds no free
cells to the costmap.

Kinds: ``frozen`` (the sample's bytes repeat while the stamps advance: a parked car's sensor noise
changes them), ``exposure`` (the share of near-black or near-white pixels: night, glare, a lens
cap), ``stamps`` (a stamp that does not advance).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from ..declarations import setting, validate


class State(IntEnum):
    OK = 0
    DEGRADED = 1
    FAULT = 2


KINDS = ("frozen", "exposure", "stamps")
_RATE_FRAMES = 20  # the stamps the message rate is measured over


@dataclass(frozen=True)
class HealthSettings:
    """The ``camera_health.*`` parameters: what each check calls DEGRADED and FAULT, and how soon."""

    enabled: bool = setting(True, "judge each camera's frames; a camera in FAULT adds no free cells to the costmap")
    sample_stride: int = setting(8, "the image checks look at every Nth pixel each way (no copy of the frame)", low=1, high=64)
    dark_level: int = setting(24, "grey levels at or below this count as near-black", low=0, high=254)
    bright_level: int = setting(240, "grey levels at or above this count as near-white", low=1, high=255)
    degraded_share: float = setting(
        0.6, "DEGRADED when more of the frame than this is near-black or near-white", low=0.0, high=1.0
    )
    fault_share: float = setting(0.85, "FAULT when more of the frame than this is near-black or near-white", low=0.0, high=1.0)
    frozen_frames: int = setting(
        3, "FAULT when this many frames in a row repeat the one before, byte for byte, with advancing stamps", low=2, high=1000
    )
    enter_frames: int = setting(2, "frames in a row that must say a state before a kind enters it", low=1, high=1000)
    leave_frames: int = setting(10, "frames in a row that must say a better state before a kind leaves a worse one", low=1, high=10000)
    unknown_masks: bool = setting(
        False, "a camera in FAULT publishes its masks as 255 (unknown) everywhere, so consumers of masks are fail-safe too"
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.degraded_share > self.fault_share:
            raise ValueError(f"camera_health.degraded_share {self.degraded_share} is above fault_share {self.fault_share}")


@dataclass(frozen=True)
class CameraHealth:
    """A camera's judged state after a frame: per kind, the worst of them, and the figures behind them."""

    kinds: dict[str, State]
    figures: dict[str, float | int]

    @property
    def state(self) -> State:
        return max(self.kinds.values(), default=State.OK)

    @property
    def free_allowed(self) -> bool:
        """Whether this camera's frames may vote cells free."""
        return self.state != State.FAULT

    def describe(self) -> str:
        bad = [f"{kind} {state.name}" for kind, state in self.kinds.items() if state != State.OK]
        return ", ".join(bad) or "ok"


@dataclass
class _Hysteresis:
    state: State = State.OK
    candidate: State = State.OK
    run: int = 0

    def step(self, observed: State, enter: int, leave: int) -> State:
        """One frame's verdict; the state moves only after a run of ``enter`` (worse) or ``leave`` (better)."""
        if observed == self.state:
            self.run = 0
            return self.state
        self.run = self.run + 1 if observed == self.candidate else 1
        self.candidate = observed
        if self.run >= (enter if observed > self.state else leave):
            self.state, self.run = observed, 0
        return self.state


@dataclass
class CameraHealthMonitor:
    """One camera's frames in, its ``CameraHealth`` out; cheap enough for every frame."""

    settings: HealthSettings = field(default_factory=HealthSettings)
    _states: dict[str, _Hysteresis] = field(default_factory=lambda: {kind: _Hysteresis() for kind in KINDS})
    _last_digest: bytes | None = None
    _last_stamp: int | None = None
    _repeats: int = 0
    _stamps: deque = field(default_factory=lambda: deque(maxlen=_RATE_FRAMES))
    non_increasing: int = 0  # frames whose stamp did not advance, since start

    def observe(self, pixels: np.ndarray, stamp_ns: int, now_ns: int | None = None) -> CameraHealth:
        """Judge one HxWx3 uint8 frame stamped ``stamp_ns``, taken at ``now_ns`` (for its delay)."""
        settings = self.settings
        stride = settings.sample_stride
        sample = np.ascontiguousarray(pixels[::stride, ::stride])  # 1/stride² of the frame, packed once
        red, green, blue = sample[..., 0], sample[..., 1], sample[..., 2]  # three ufuncs beat a reduction over 3
        brightest = np.maximum(np.maximum(red, green), blue)  # a saturated red sky is neither dark nor white
        darkest = np.minimum(np.minimum(red, green), blue)
        dark = float(np.count_nonzero(brightest <= settings.dark_level)) / brightest.size
        bright = float(np.count_nonzero(darkest >= settings.bright_level)) / brightest.size
        digest = hashlib.blake2b(sample.data, digest_size=16).digest()
        advancing = self._last_stamp is None or stamp_ns > self._last_stamp
        if not advancing:
            self.non_increasing += 1
        self._repeats = self._repeats + 1 if advancing and digest == self._last_digest else 0
        # Against the frame before, not the newest ever: one frame stamped in 2038 must not make every
        # later stamp look like it went back.
        self._last_digest, self._last_stamp = digest, stamp_ns
        extreme = max(dark, bright)
        observed = {
            "frozen": State.FAULT if self._repeats >= settings.frozen_frames - 1 else State.OK,
            "exposure": State.FAULT if extreme > settings.fault_share
            else State.DEGRADED if extreme > settings.degraded_share else State.OK,
            "stamps": State.OK if advancing else State.DEGRADED,
        }
        kinds = {
            kind: self._states[kind].step(verdict, settings.enter_frames, settings.leave_frames)
            for kind, verdict in observed.items()
        }
        # A frozen stream is known for certain the moment it repeats enough: no further run to wait for.
        if observed["frozen"] == State.FAULT:
            kinds["frozen"] = self._states["frozen"].state = State.FAULT
        if not advancing:
            self._stamps.clear()  # a rate across a jump of the clock means nothing
        self._stamps.append(stamp_ns)
        span = (self._stamps[-1] - self._stamps[0]) / 1e9 if len(self._stamps) > 1 else 0.0
        figures = {
            "dark_share": round(dark, 3), "bright_share": round(bright, 3), "repeated_frames": self._repeats,
            # NVIDIA greenwave's names: the rate the stamps say, and how far the newest lags the clock.
            "frame_rate_msg": round((len(self._stamps) - 1) / span, 3) if span > 0 else 0.0,
            "current_delay_from_realtime_ms": None if now_ns is None or not stamp_ns else round((now_ns - stamp_ns) / 1e6, 1),
            "num_non_increasing_msg": self.non_increasing,
        }
        return CameraHealth(kinds, figures)

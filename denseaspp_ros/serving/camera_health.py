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
cap), ``blockage`` (tiles of the lower image, where the ground is, that stay flat and still while
the rest of the scene moves: mud, a sticker, a saturated flare; DEGRADED from one tile, those
tiles' pixels vote no free ground; FAULT over ``blocked_fault_share`` of them), ``stamps`` (a
stamp that does not advance, or whose offset to its arrival jumps by more than ``stamp_jump_ms``
from what it has been: a camera clock that stopped or was reset puts every cell in the wrong place),
``network`` (after the frame is segmented, ``judge_network``: the network's mean entropy or share
of guessed pixels far above the band recorded with its weights on their validation frames).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from enum import IntEnum

import cv2
import numpy as np

from ..declarations import setting, validate

if TYPE_CHECKING:  # the engine's figures and the weights' band; serving/ needs no torch to judge them
    from ..inference.segmenter import Uncertainty
    from ..model.weights import UncertaintyBand


class State(IntEnum):
    OK = 0
    DEGRADED = 1
    FAULT = 2


KINDS = ("frozen", "exposure", "blockage", "stamps", "network")
_RATE_FRAMES = 20  # the stamps the message rate is measured over
_DELAY_FRAMES = 150  # the arrival delays a jump is measured against (15 s at 10 Hz: a fault of seconds cannot shift it)


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
    blind_share: float = setting(
        0.02, "once more of the frame than this is near-black or near-white, those pixels vote no free ground", low=0.0, high=1.0
    )
    frozen_frames: int = setting(
        3, "FAULT when this many frames in a row repeat the one before, byte for byte, with advancing stamps", low=2, high=1000
    )
    blockage_top: float = setting(
        0.45, "the blockage check looks at the image below this fraction of its height (where the ground is)", low=0.0, high=0.95
    )
    tile_rows: int = setting(4, "the blockage check's tiles: rows of them in the region it looks at", low=1, high=64)
    tile_columns: int = setting(8, "the blockage check's tiles: columns of them", low=1, high=128)
    motion_level: float = setting(
        4.0, "the scene moves when its typical tile changes by this many grey levels over blockage_lag frames; "
        "only then are still tiles suspect (a parked car's view is still everywhere)", low=0.0, high=255.0,
    )
    still_ratio: float = setting(
        0.2, "a tile is still when it changes by less than this fraction of the typical tile", low=0.0, high=1.0
    )
    flat_level: float = setting(
        3.0, "a tile is flat when its mean step between neighbouring sampled pixels is below this many grey levels",
        low=0.0, high=255.0,
    )
    blockage_lag: int = setting(1, "frames between the two samples a tile's change is measured over", low=1, high=100)
    suspect_frames: int = setting(
        2, "moving frames in a row a tile must stay flat and still before its pixels stop voting free ground", low=1, high=1000
    )
    blockage_frames: int = setting(
        8, "moving frames in a row a tile must stay flat and still before it counts as blocked (DEGRADED); shorter runs "
        "are a dark panel driving past as often as mud", low=1, high=10000,
    )
    blocked_fault_share: float = setting(
        0.3, "FAULT when more than this share of the tiles is blocked (DEGRADED from one)", low=0.0, high=1.0
    )
    network_degraded: float = setting(
        1.5, "DEGRADED when a frame's mean entropy exceeds the top of the band recorded with "
        "the weights by this factor (weights without a band: no network check)", low=1.0, high=1000.0,
    )
    network_fault: float = setting(
        2.0, "FAULT when it exceeds the band's top by this factor: the network is out of its depth (blur, rain, glare)",
        low=1.0, high=1000.0,
    )
    stamp_jump_ms: float = setting(
        200.0, "FAULT when a stamp's offset to its arrival differs from the usual offset (the median of recent "
        "frames) by more than this (0: no check)", low=0.0, high=1e6,
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
        if self.network_degraded > self.network_fault:
            raise ValueError(
                f"camera_health.network_degraded {self.network_degraded} is above network_fault {self.network_fault}"
            )


@dataclass(frozen=True)
class CameraHealth:
    """A camera's judged state after a frame: per kind, the worst of them, and the figures behind them."""

    kinds: dict[str, State]
    figures: dict[str, float | int]
    blocked: np.ndarray | None = None  # (tile_rows, tile_columns) bool: tiles judged blocked, None if none
    blocked_from: float = 1.0  # the fraction of the image's height the tiles start at
    blind: np.ndarray | None = None  # the sample's black or white pixels, once there are a few
    frame_fault: bool = False  # this frame alone says FAULT for some kind (before the hysteresis has its say)

    def no_free(self, shape: tuple[int, int]) -> np.ndarray | None:
        """HxW bool of the pixels that may not vote free ground (of blocked tiles, black or white
        while the exposure is off), None if none."""
        if self.blocked is None and self.blind is None:
            return None
        height, width = shape
        pixels = np.zeros(shape, bool)
        if self.blocked is not None:
            top = round(self.blocked_from * height)
            tiles = self.blocked.astype(np.uint8)
            pixels[top:] = cv2.resize(tiles, (width, height - top), interpolation=cv2.INTER_NEAREST).astype(bool)
        if self.blind is not None:
            pixels |= cv2.resize(self.blind.view(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).view(bool)
        return pixels

    @property
    def state(self) -> State:
        return max(self.kinds.values(), default=State.OK)

    @property
    def free_allowed(self) -> bool:
        """Whether this frame may vote cells free: not while the camera is in FAULT, nor when this
        frame alone says FAULT (a stamp that jumped is wrong from its first frame: waiting for the
        hysteresis would let that frame paint free cells where it did not see them)."""
        return self.state != State.FAULT and not self.frame_fault

    @property
    def judged_faulty(self) -> bool:
        """The camera is in FAULT (not just this frame withheld): what it called free before goes too."""
        return self.state == State.FAULT

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
    _delays: deque = field(default_factory=lambda: deque(maxlen=_DELAY_FRAMES))
    _greys: deque = field(default_factory=deque)  # the last blockage_lag + 1 grey samples of the tiles' region
    _still_runs: np.ndarray | None = None  # per tile, moving frames in a row it stayed flat and still
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
        jump = self._delay_jump(stamp_ns, now_ns)
        jumped = bool(settings.stamp_jump_ms) and abs(jump) > settings.stamp_jump_ms
        self._last_digest = digest
        if not jumped:  # a stamp that jumped is judged on its own: the next frame is compared with the one before it
            self._last_stamp = stamp_ns
        extreme = max(dark, bright)
        motion = self._judge_tiles(brightest)
        blocked_share = float(np.mean(self._still_runs >= settings.blockage_frames))
        observed = {
            "frozen": State.FAULT if self._repeats >= settings.frozen_frames - 1 else State.OK,
            "exposure": State.FAULT if extreme > settings.fault_share
            else State.DEGRADED if extreme > settings.degraded_share else State.OK,
            "blockage": State.FAULT if blocked_share > settings.blocked_fault_share
            else State.DEGRADED if blocked_share > 0 else State.OK,
            "stamps": State.OK if advancing and not jumped else State.FAULT,
        }
        kinds = {
            kind: self._states[kind].step(verdict, settings.enter_frames, settings.leave_frames)
            for kind, verdict in observed.items()
        }
        kinds["network"] = self._states["network"].state  # judged once the frame is segmented (judge_network)
        # A frozen stream or a blocked tile is known once it has lasted its frames: no further run to wait for.
        for kind in ("frozen", "blockage"):
            if observed[kind] > kinds[kind]:
                kinds[kind] = self._states[kind].state = observed[kind]
        if not advancing:
            self._stamps.clear()  # a rate across a jump of the clock means nothing
        self._stamps.append(stamp_ns)
        span = (self._stamps[-1] - self._stamps[0]) / 1e9 if len(self._stamps) > 1 else 0.0
        figures = {
            "dark_share": round(dark, 3), "bright_share": round(bright, 3), "repeated_frames": self._repeats,
            "blocked_share": round(blocked_share, 3), "scene_motion": round(motion, 1), "stamp_jump_ms": round(jump, 1),
            # NVIDIA greenwave's names: the rate the stamps say, and how far the newest lags the clock.
            "frame_rate_msg": round((len(self._stamps) - 1) / span, 3) if span > 0 else 0.0,
            "current_delay_from_realtime_ms": None if now_ns is None or not stamp_ns else round((now_ns - stamp_ns) / 1e6, 1),
            "num_non_increasing_msg": self.non_increasing,
        }
        # Suspect tiles keep their pixels off the free cells at once (a panel's pixels vote no ground
        # anyway); so do pixels with nothing to see (black or white: a flare, a shadow) once there are a few.
        suspect = self._still_runs >= settings.suspect_frames
        shown = suspect if suspect.any() else None
        blind = None
        if extreme > settings.blind_share:
            blind = (brightest <= settings.dark_level) | (darkest >= settings.bright_level)
        # One repeated frame already lies about its time: its pixels are the frame before's.
        frame_fault = State.FAULT in observed.values() or self._repeats >= 1
        return CameraHealth(kinds, figures, shown, settings.blockage_top, blind, frame_fault)

    def judge_network(self, health: CameraHealth, uncertainty: Uncertainty | None, band: UncertaintyBand | None) -> CameraHealth:
        """``health`` with the network self-check of the same frame folded in: its ``Uncertainty``
        against the weights' band (no band or no figures: the kind stays as it was)."""
        if band is None or uncertainty is None:
            return health
        settings = self.settings
        # The entropy alone decides: the share of guessed pixels of a clean frame strays twice as far
        # beyond its band (a few pixels more on an object's edge), so it is only reported.
        ratio = uncertainty.mean_entropy / band.mean_entropy[1]
        if not ratio == ratio:  # NaN: non-finite scores, which the node withholds anyway
            ratio = float("inf")
        observed = State.FAULT if ratio > settings.network_fault else State.DEGRADED if ratio > settings.network_degraded else State.OK
        kinds = {**health.kinds, "network": self._states["network"].step(observed, settings.enter_frames, settings.leave_frames)}
        figures = {**health.figures, "network_entropy": round(uncertainty.mean_entropy, 4),
                   "network_low_confidence_share": round(uncertainty.low_confidence_share, 4), "network_band_ratio": round(ratio, 2)}
        return replace(health, kinds=kinds, figures=figures, frame_fault=health.frame_fault or observed == State.FAULT)

    def _judge_tiles(self, grey: np.ndarray) -> float:
        """Count, per tile of the region below ``blockage_top``, the frames in a row in which it stayed
        flat and still while the scene moved (``_still_runs``); returns the scene's typical change."""
        settings = self.settings
        rows, columns = settings.tile_rows, settings.tile_columns
        region = grey[round(settings.blockage_top * grey.shape[0]):]
        tile_height, tile_width = region.shape[0] // rows, region.shape[1] // columns
        if self._still_runs is None or self._still_runs.shape != (rows, columns) or tile_height < 2 or tile_width < 2:
            self._still_runs = np.zeros((rows, columns), np.int32)
        if tile_height < 2 or tile_width < 2:  # too few sampled pixels to judge texture
            return 0.0
        region = region[: rows * tile_height, : columns * tile_width].astype(np.int16)
        if self._greys and self._greys[0].shape != region.shape:
            self._greys.clear()  # a frame of another size: start over
            self._still_runs[:] = 0
        self._greys.append(region)
        if len(self._greys) <= settings.blockage_lag:
            return 0.0
        change = _tile_means(np.abs(region - self._greys.popleft()), rows, columns)
        steps = np.abs(np.diff(region, axis=1))[:-1] + np.abs(np.diff(region, axis=0))[:, :-1]
        texture = _tile_means(np.pad(steps, ((0, 1), (0, 1)), mode="edge"), rows, columns) / 2
        motion = float(np.percentile(change, 75))  # a blob over half the tiles must not hide the scene's motion
        if motion >= settings.motion_level:  # a still scene says nothing about which tiles can see
            # Still: it changes less than the scene does, or no more than sensor noise would.
            suspect = (change < max(settings.still_ratio * motion, settings.flat_level)) & (texture < settings.flat_level)
            self._still_runs = np.where(suspect, self._still_runs + 1, 0)
        return motion

    def _delay_jump(self, stamp_ns: int, now_ns: int | None) -> float:
        """How far (ms) this frame's offset to its arrival is from the usual one; 0 when unknown."""
        if now_ns is None or not stamp_ns:
            return 0.0
        delay = (now_ns - stamp_ns) / 1e6
        usual = float(np.median(self._delays)) if self._delays else delay
        self._delays.append(delay)
        return delay - usual


def _tile_means(values: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Mean of each of rows x columns equal tiles of a 2-D array whose sides they divide."""
    height, width = values.shape
    return values.reshape(rows, height // rows, columns, width // columns).mean(axis=(1, 3))

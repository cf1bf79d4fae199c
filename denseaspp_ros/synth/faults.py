"""Camera faults injected into a synthetic drive, with their truth.

A fault changes only what the camera delivers (its pixels or its stamps): the world, its labels
and its true map stay the truth, so every tool can score what a fault does to the masks, the
costmap and the health monitor against them. A spec names faults over intervals of the drive's
time, in seconds: ``glare@3-6,frozen@4.5-7.5``. Each fault's look is fixed by the drive's seed
(where the flare, the mud or the drops are), so a spec replays byte for byte.

Kinds: ``overexposure`` (the whole frame saturated), ``glare`` (a sun flare: a washed-out veil and
a saturated disc), ``night`` (a twelfth of the light, sensor noise), ``blockage`` (an opaque blob of
mud over 10-60% of the lens, fixed while the scene moves), ``blur`` (defocus), ``rain`` (drops on
the lens, each a blurred lens of its own, and a light haze), ``frozen`` (the pixels of the fault's
first frame repeated with advancing stamps), ``stamp_repeat`` (each frame stamped like the one
before), ``stamp_offset`` (stamps half a second behind the time of the frame).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DenseASPPError

KINDS = ("overexposure", "glare", "night", "blockage", "blur", "rain", "frozen", "stamp_repeat", "stamp_offset")
STAMP_OFFSET_NS = -500_000_000  # a camera clock half a second behind: 4 m at 8 m/s
_SPEC = re.compile(r"^\s*([a-z_]+)\s*@\s*([0-9.]+)\s*-\s*([0-9.]+)\s*$")


@dataclass(frozen=True)
class Fault:
    """One fault, active for frames whose drive time t (seconds since the first frame) is in [start, end)."""

    kind: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DenseASPPError(f"unknown camera fault {self.kind!r}: use one of {', '.join(KINDS)}")
        if not (0 <= self.start < self.end) or not math.isfinite(self.end):
            raise DenseASPPError(f"fault {self.kind}: the interval {self.start}-{self.end} s must have 0 <= start < end")

    def active(self, time_s: float) -> bool:
        return self.start <= time_s < self.end

    def __str__(self) -> str:
        return f"{self.kind}@{self.start:g}-{self.end:g}"


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """``kind@start-end[,kind@start-end...]`` (seconds of the drive) as faults; '' as none."""
    faults = []
    for part in filter(None, (item.strip() for item in spec.split(","))):
        match = _SPEC.match(part)
        if match is None:
            raise DenseASPPError(f"fault {part!r} is not KIND@START-END (seconds), e.g. glare@3-6; kinds: {', '.join(KINDS)}")
        faults.append(Fault(match[1], float(match[2]), float(match[3])))
    return tuple(faults)


def format_faults(faults: Iterable[Fault]) -> str:
    return ",".join(str(fault) for fault in faults)


@dataclass(frozen=True)
class Delivered:
    """What the faulty camera delivers for one frame, and the faults active in it (the truth)."""

    rgb: np.ndarray
    stamp_ns: int
    faults: tuple[str, ...]


class FaultInjector:
    """Applies a drive's faults frame by frame, in order (a frozen stream remembers its first frame)."""

    def __init__(self, faults: Iterable[Fault], seed: int, size: tuple[int, int], noise: float = 2.0) -> None:
        self.faults, self.noise = tuple(faults), noise
        self._rng = np.random.default_rng([seed, 7])
        height, width = size
        look = np.random.default_rng([seed, 11])
        self._blob = _blob(look, height, width)
        self._flare = _flare(look, height, width)
        self._drops = _drops(look, height, width)
        self._held: np.ndarray | None = None  # the frame a frozen stream repeats
        self._previous_stamp: int | None = None

    def deliver(self, rgb: np.ndarray, stamp_ns: int, time_s: float) -> Delivered:
        """The frame the camera delivers at drive time ``time_s``, true stamp ``stamp_ns``."""
        active = tuple(dict.fromkeys(fault.kind for fault in self.faults if fault.active(time_s)))
        if "frozen" in active:
            if self._held is None:
                self._held = rgb
            rgb = self._held
        else:
            self._held = None
        effects = {"overexposure": self._overexposure, "glare": self._glare, "night": self._night,
                   "blockage": self._blockage, "blur": self._blur, "rain": self._rain}
        optics = [kind for kind in active if kind in effects]
        for kind in optics:
            rgb = effects[kind](rgb)
        if optics and self.noise:  # the sensor's noise comes after the lens: mud is no cleaner than the road
            rgb = np.clip(rgb + self._rng.normal(0.0, self.noise, rgb.shape), 0, 255).astype(np.uint8)
        delivered_stamp = stamp_ns
        if "stamp_repeat" in active and self._previous_stamp is not None:
            delivered_stamp = self._previous_stamp
        if "stamp_offset" in active:
            delivered_stamp += STAMP_OFFSET_NS
        self._previous_stamp = delivered_stamp
        return Delivered(rgb, delivered_stamp, active)

    def _overexposure(self, rgb: np.ndarray) -> np.ndarray:
        return np.clip(rgb.astype(np.float32) * 4.5 + 40, 0, 255).astype(np.uint8)

    def _glare(self, rgb: np.ndarray) -> np.ndarray:
        veiled = rgb.astype(np.float32) * (1 - 0.55 * self._flare[..., None]) + 255 * self._flare[..., None]
        return np.clip(veiled * 1.3, 0, 255).astype(np.uint8)

    def _night(self, rgb: np.ndarray) -> np.ndarray:
        dark = rgb.astype(np.float32) / 12 + self._rng.normal(0.0, 3.0, rgb.shape).astype(np.float32)
        return np.clip(dark + 0.5, 0, 255).astype(np.uint8)

    def _blockage(self, rgb: np.ndarray) -> np.ndarray:
        mud = np.array([62, 48, 34], np.float32)
        alpha = self._blob[..., None]
        return (rgb * (1 - alpha) + mud * alpha + 0.5).astype(np.uint8)

    def _blur(self, rgb: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(rgb, (0, 0), rgb.shape[1] / 96)

    def _rain(self, rgb: np.ndarray) -> np.ndarray:
        hazy = cv2.GaussianBlur(rgb, (0, 0), rgb.shape[1] / 400)
        drops = cv2.blur(cv2.GaussianBlur(rgb, (0, 0), rgb.shape[1] / 60), (3, 3))
        alpha = self._drops[..., None]
        return (hazy * (1 - alpha) + drops * alpha + 0.5).astype(np.uint8)


def _blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An opaque smudge with a soft edge over 10-60% of the image (in its lower two thirds, where the
    ground is), as a 0..1 float map."""
    area = rng.uniform(0.1, 0.6) * height * width
    aspect = rng.uniform(0.6, 1.6)
    axis_x = math.sqrt(area * aspect / math.pi)
    axis_y = area / (math.pi * axis_x)
    centre = (rng.uniform(0.25, 0.75) * width, rng.uniform(0.45, 0.85) * height)
    mask = np.zeros((height, width), np.float32)
    cv2.ellipse(mask, (round(centre[0]), round(centre[1])), (round(axis_x), round(axis_y)), rng.uniform(0, 180), 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, width / 200))


def _flare(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A sun low in the sky: a saturated disc near the horizon fading over a third of the frame."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    centre = (rng.uniform(0.2, 0.8) * width, rng.uniform(0.3, 0.5) * height)
    distance = np.hypot(columns - centre[0], rows - centre[1]) / (0.35 * width)
    return np.clip(1.4 - distance, 0, 1).astype(np.float32)


def _drops(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Raindrops on the lens: a few dozen round drops, 1-5% of the width across."""
    mask = np.zeros((height, width), np.float32)
    for _ in range(45):
        radius = max(2, round(rng.uniform(0.01, 0.05) * width))
        cv2.circle(mask, (int(rng.integers(0, width)), int(rng.integers(0, height))), radius, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, width / 400))

"""What a camera fault does to the published costmap, frame by frame, scored against the truth.

A synthetic drive is rendered once; each fault is then applied to what the camera delivers
(``synth.faults``), the delivered frames go through the segmentation (the true masks, or a
network's), the camera health monitor and an anchored costmap as the node runs them (the pose
looked up at the stamp the camera gave, the grid read at the drive's time), and every published
grid is scored: dangerous free cells (``map_accuracy``), free IoU, contact recall. ``protected``
False runs the same frames the way the package did before camera health (no monitor, no shadow
rule): the baseline row. The bench (``bench/camera_faults.py``) and ``denseaspp demo --faults``
read these timelines. No ROS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..costmap import CostmapSettings, CostTable, PoseBuffer, SemanticCostmap
from ..model.weights import UncertaintyBand
from ..serving.camera_health import CameraHealthMonitor, HealthSettings, State
from ..synth.drive import DriveConfig, DriveFrame, drive, truth_map
from ..synth.faults import Fault, FaultInjector
from .map_accuracy import DriveMap, MapAccuracy

if TYPE_CHECKING:
    from ..inference.segmenter import Uncertainty

ARRIVAL_NS = 30_000_000  # how long after its true stamp a frame reaches the node in these drives
# RGB frame -> (trainIds, the network's self-check of it or None): a Segmenter's, or the truth's
Masks = Callable[[np.ndarray], tuple[np.ndarray, "Uncertainty | None"]]


@dataclass(frozen=True)
class FrameOutcome:
    index: int
    faults: tuple[str, ...]  # the truth: active in this frame
    state: State  # the monitor's verdict (OK without a monitor)
    described: str  # which kinds, e.g. "exposure FAULT"
    score: MapAccuracy


@dataclass
class RenderedDrive:
    """A drive's frames and truth, rendered once for every fault it is replayed with."""

    config: DriveConfig
    frames: list[DriveFrame]
    truth: np.ndarray
    truth_grid: object

    @classmethod
    def render(cls, config: DriveConfig) -> RenderedDrive:
        return cls(config, list(drive(replace(config, faults=()))), *truth_map(config))


def run_fault_drive(
    rendered: RenderedDrive,
    faults: Sequence[Fault],
    table: CostTable,
    costmap_settings: CostmapSettings,
    masks: Masks | None = None,
    protected: bool = True,
    health: HealthSettings | None = None,
    mask_cache: dict | None = None,
    band: UncertaintyBand | None = None,
) -> list[FrameOutcome]:
    """The drive with ``faults`` through masks, monitor and costmap; one outcome per frame.

    ``masks`` None takes the true labels of the frame the camera delivered (a frozen stream
    repeats its labels too). ``mask_cache`` (a dict kept across calls) spares the network a frame
    it has already segmented: the same pixels give the same masks. ``band``: the weights'
    uncertainty band, for the monitor's network self-check.
    """
    config = rendered.config
    settings = costmap_settings if protected else replace(costmap_settings, shadow_depth=0.0)
    costmap = SemanticCostmap(table, settings, anchored=True)
    costmap.set_camera("front", config.camera(), config.mount)
    monitor = CameraHealthMonitor(health or HealthSettings()) if protected else None
    injector = FaultInjector(faults, config.seed, config.size, config.noise)
    poses = PoseBuffer(history_s=None)
    for item in rendered.frames:
        poses.add(item.stamp_ns, item.odometry)
    drive_map = DriveMap(table, rendered.truth, rendered.truth_grid)
    outcomes, labels_held = [], None
    for item in rendered.frames:
        delivered = injector.deliver(item.frame.rgb, item.stamp_ns, item.index / config.fps)
        uncertainty = None
        if masks is None:
            labels_held = labels_held if "frozen" in delivered.faults and labels_held is not None else item.frame.train_ids
            train_ids = labels_held
        else:
            train_ids, uncertainty = _segment(masks, delivered.rgb, mask_cache)
        verdict = None
        if monitor is not None:
            verdict = monitor.observe(delivered.rgb, delivered.stamp_ns, item.stamp_ns + ARRIVAL_NS)
            verdict = monitor.judge_network(verdict, uncertainty, band)
        pose = poses.at(delivered.stamp_ns, tolerance_s=1.0)
        costmap.update(
            "front", train_ids, delivered.stamp_ns / 1e9, pose=pose,
            free=verdict is None or verdict.free_allowed,
            no_free=None if verdict is None else verdict.no_free(train_ids.shape),
        )
        snapshot = costmap.snapshot((item.stamp_ns + ARRIVAL_NS) / 1e9)
        score = drive_map.add(snapshot.costs, snapshot.grid)
        state = State.OK if verdict is None else verdict.state
        outcomes.append(FrameOutcome(item.index, delivered.faults, state, "" if verdict is None else verdict.describe(), score))
    return outcomes


def _segment(masks: Masks, rgb: np.ndarray, cache: dict | None) -> tuple[np.ndarray, Uncertainty | None]:
    if cache is None:
        return masks(rgb)
    key = (rgb.shape, hash(rgb.tobytes()))
    if key not in cache:
        cache[key] = masks(rgb)
    return cache[key]


@dataclass(frozen=True)
class FaultSummary:
    """One fault over one drive: how soon the monitor saw it and let go, and what reached the map."""

    detected_after: int | None  # frames from the fault's first frame to a state other than OK (None: never)
    fault_after: int | None  # ... to FAULT
    cleared_after: int | None  # frames from the first frame without the fault to OK again
    dangerous_during: float  # mean dangerous free cells per frame while the fault is active
    dangerous_after: float  # ... over the frames after it
    dangerous_max: int  # the most in one frame, during or after


def summarise(outcomes: list[FrameOutcome]) -> FaultSummary:
    faulted = [o.index for o in outcomes if o.faults]
    if not faulted:
        raise ValueError("no frame of this drive had a fault")
    first, last = faulted[0], faulted[-1]
    during = outcomes[first : last + 1]
    after = outcomes[last + 1 :]
    detected = next((o.index - first for o in outcomes[first:] if o.state != State.OK), None)
    fault = next((o.index - first for o in outcomes[first:] if o.state == State.FAULT), None)
    cleared = next((o.index - last - 1 for o in after if o.state == State.OK), None)
    return FaultSummary(
        detected, fault, cleared,
        float(np.mean([o.score.dangerous_free for o in during])),
        float(np.mean([o.score.dangerous_free for o in after])) if after else 0.0,
        max(o.score.dangerous_free for o in outcomes[first:]),
    )


def window_mean(outcomes: list[FrameOutcome], start: int, stop: int) -> float:
    """Mean dangerous free cells per frame over frames [start, stop): a clean drive's, for comparison."""
    return float(np.mean([o.score.dangerous_free for o in outcomes[start:stop]])) if stop > start else 0.0

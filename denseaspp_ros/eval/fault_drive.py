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

import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..costmap import CostmapSettings, CostTable, PoseBuffer, SemanticCostmap
from ..model.weights import UncertaintyBand
from ..serving.camera_health import CameraHealth, CameraHealthMonitor, HealthSettings, State
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
    score: MapAccuracy | None  # None: the frame had no pose, so no grid was scored
    withheld: bool = False  # the frame voted no free cell (the camera in FAULT, or this frame alone said so)


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
            forget_free=verdict is not None and verdict.judged_faulty,
        )
        snapshot = costmap.snapshot((item.stamp_ns + ARRIVAL_NS) / 1e9)
        score = drive_map.add(snapshot.costs, snapshot.grid)
        state = State.OK if verdict is None else verdict.state
        outcomes.append(FrameOutcome(
            item.index, delivered.faults, state, "" if verdict is None else verdict.describe(), score,
            verdict is not None and not verdict.free_allowed,
        ))
    return outcomes


def _segment(masks: Masks, rgb: np.ndarray, cache: dict | None) -> tuple[np.ndarray, Uncertainty | None]:
    if cache is None:
        return masks(rgb)
    key = (rgb.shape, hash(rgb.tobytes()))
    if key not in cache:
        cache[key] = masks(rgb)
    return cache[key]


def window_mean(outcomes: list[FrameOutcome], start: int, stop: int) -> float:
    """Mean dangerous free cells per frame over frames [start, stop): a clean drive's, for comparison."""
    return float(np.mean([o.score.dangerous_free for o in outcomes[start:stop]])) if stop > start else 0.0


def fault_report(outcomes: list[FrameOutcome]) -> dict:
    """What the monitor made of each fault kind over a drive (any number of faults, each a run of
    frames), and of the frames without one (less those it was still clearing a fault in): the part of ``denseaspp eval``'s report on a bag whose
    drive carries fault truth (``/ground_truth/faults``)."""
    kinds = sorted({kind for outcome in outcomes for kind in outcome.faults})
    report: dict = {"kinds": {}}
    for kind in kinds:
        runs = _runs([kind in outcome.faults for outcome in outcomes])
        detected, in_fault, cleared, after_frames = [], [], [], []
        for first, last in runs:
            during = outcomes[first : last + 1]
            detected.append(next((o.index - during[0].index for o in during if o.state != State.OK), None))
            in_fault.append(next((o.index - during[0].index for o in during if o.state == State.FAULT), None))
            after = list(itertools.takewhile(lambda o: not o.faults, outcomes[last + 1 :]))  # until the next fault
            cleared.append(next((i for i, o in enumerate(after) if o.state == State.OK), None))
            after_frames += after
        frames = [outcomes[i] for first, last in runs for i in range(first, last + 1)]
        report["kinds"][kind] = {
            "runs": len(runs), "frames": len(frames),
            "frames_judged_not_ok": sum(o.state != State.OK for o in frames),
            "frames_in_fault": sum(o.state == State.FAULT for o in frames),
            "frames_withheld": sum(o.withheld for o in frames),  # no free cells from them, judged so or not yet
            "detected_after_frames": detected, "fault_after_frames": in_fault, "cleared_after_frames": cleared,
            "dangerous_free_per_frame": _dangerous(frames), "dangerous_free_after_per_frame": _dangerous(after_frames),
            "dangerous_free_max": max((o.score.dangerous_free for o in frames + after_frames if o.score is not None), default=None),
        }
    # After a fault the monitor takes its leave_frames to clear: those frames are neither the fault's nor clean.
    clearing = set()
    for first, last in _runs([bool(outcome.faults) for outcome in outcomes]):
        for position in range(last + 1, len(outcomes)):
            if outcomes[position].state == State.OK or outcomes[position].faults:
                break
            clearing.add(position)
    clean = [o for position, o in enumerate(outcomes) if not o.faults and position not in clearing]
    report["clean"] = {
        "frames": len(clean), "frames_clearing_after_a_fault": len(clearing),
        "frames_degraded": sum(o.state == State.DEGRADED for o in clean),
        "frames_in_fault": sum(o.state == State.FAULT for o in clean), "dangerous_free_per_frame": _dangerous(clean),
    }
    return report


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) positions of each run of True."""
    runs, start = [], None
    for position, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = position
        elif not flag and start is not None:
            runs.append((start, position - 1))
            start = None
    return runs


def _dangerous(outcomes: list[FrameOutcome]) -> float | None:
    scored = [o.score.dangerous_free for o in outcomes if o.score is not None]
    return float(np.mean(scored)) if scored else None


class FaultScorer:
    """Camera health over the evaluated frames of a bag that carries fault truth: each frame judged
    as the node judges it, paired with its truth record by the stamp the camera gave it (in bag
    order where a stuck clock gave several the same)."""

    def __init__(self, records: list[dict], band: UncertaintyBand | None, settings: HealthSettings | None = None) -> None:
        self.monitor = CameraHealthMonitor(settings or HealthSettings())
        self.band = band
        self._truth: dict[int, deque] = defaultdict(deque)
        for record in records:
            self._truth[int(record["camera_stamp_ns"])].append(record)
        self.outcomes: list[FrameOutcome] = []
        self.without_truth = 0

    def judge(self, pixels: np.ndarray, stamp_ns: int, uncertainty: Uncertainty | None) -> CameraHealth:
        """The verdict of one evaluated frame (its truth, when the bag has one for its stamp, is kept for the report)."""
        waiting = self._truth.get(stamp_ns)
        record = waiting.popleft() if waiting else None
        arrival = None if record is None else int(record["stamp_ns"]) + ARRIVAL_NS
        verdict = self.monitor.judge_network(self.monitor.observe(pixels, stamp_ns, arrival), uncertainty, self.band)
        if record is None:
            self.without_truth += 1
        else:
            self.outcomes.append(FrameOutcome(
                int(record["frame"]), tuple(record["faults"]), verdict.state, verdict.describe(), None, not verdict.free_allowed,
            ))
        return verdict

    def scored(self, score: MapAccuracy | None) -> None:
        """The costmap's score after the frame just judged (``DriveMapScorer``'s, with the verdict heeded)."""
        if self.outcomes:
            self.outcomes[-1] = replace(self.outcomes[-1], score=score)

    def summary(self) -> dict:
        return {**fault_report(self.outcomes), "frames_without_truth": self.without_truth}


def plot_timeline(
    path: Path, faults: list[tuple[str, ...]], states: list[State | None], protected: list[int | None],
    unprotected: list[int | None], title: str,
) -> None:
    """Frame by frame, one picture: the faults the camera had (the truth), the state camera health
    judged, and the dangerous free cells of the published grid with it and without it."""
    from .report import pyplot, save_figure

    plt = pyplot()
    frames = np.arange(len(faults))
    figure, axes = plt.subplots(3, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [1, 1, 2]})
    kinds = sorted({kind for active in faults for kind in active})
    for row, kind in enumerate(kinds):
        for first, last in _runs([kind in active for active in faults]):
            axes[0].broken_barh([(first - 0.5, last - first + 1)], (row - 0.4, 0.8), color=f"C{row}")
    axes[0].set_yticks(range(len(kinds)), kinds)
    axes[0].set_ylim(-0.6, max(len(kinds), 1) - 0.4)
    axes[0].set_title("camera faults (the truth)")
    judged = np.array([np.nan if state is None else int(state) for state in states], float)
    axes[1].step(frames, judged, where="mid", color="black")
    axes[1].set_yticks([0, 1, 2], ["OK", "DEGRADED", "FAULT"])
    axes[1].set_ylim(-0.3, 2.3)
    axes[1].set_title("camera health, as the node judged each frame")
    for values, label, style in ((unprotected, "without camera health (and without the shadow rule)", "C3"),
                                 (protected, "the node's grid, with camera health", "C0")):
        axes[2].plot(frames, [np.nan if v is None else v for v in values], color=style, label=label)
    axes[2].set_ylabel("dangerous free cells")
    axes[2].set_xlabel("frame (10 Hz)")
    axes[2].legend(loc="upper left", fontsize=8)
    axes[2].set_title("published free cells inside a true obstacle's footprint")
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=80)

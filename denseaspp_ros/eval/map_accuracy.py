"""How right the accumulated costmap of a whole drive is, against the ground-truth map in odom.

A planner drives on the costmap's free cells and around its lethal ones, so a map is scored by:
- free and lethal IoU over the cells both the map and the truth know (``CostmapAgreement``);
- contact recall: the share of true obstacle contact cells (footprint cells the camera could see:
  next to a cell the map knows as ground) with a lethal cell within one cell;
- stray lethal cells: lethal cells with no true obstacle within one cell (goal: none), where the
  truth is known (not where traffic passed during the drive: no one class was true there);
- dangerous free cells: cells the map calls passable (known, below lethal) where the truth holds an
  obstacle more than one cell inside its footprint (the footprint's edge is where rasterising
  it is a matter of a cell either way): where a planner would drive into something (goal: none).

``DriveMap`` scores each grid published along a drive (a window in odom) and pastes them into the
accumulated map of the whole drive, which it scores and draws too; the demo and ``denseaspp
eval`` feed it the node's grids. ``drive_map_accuracy`` runs a synthetic drive through the
costmap frame by frame, with the true masks (which isolates the costmap from the segmentation) or
a Segmenter's, anchored to odometry or vehicle-centric, into a ``DriveMap``. No ROS imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..costmap import (
    CameraModel, CameraPose, CostmapSettings, CostTable, GridSpec, Pose2D, PoseBuffer, PoseUnavailable, SemanticCostmap,
)
from ..costmap.costs import LETHAL
from ..costmap.render import cost_colors
from ..frames import Frame
from ..serving.camera_health import CameraHealth
from ..synth.drive import DriveConfig, drive, truth_map
from .costmap_agreement import CostmapAgreement
from .report import pyplot, save_figure

UNKNOWN_CLASS = 255
_NEIGHBOURS = np.ones((3, 3), np.uint8)  # "within one cell"


def _near(mask: np.ndarray) -> np.ndarray:
    """Cells within one cell (8-neighbourhood) of ``mask``."""
    return cv2.dilate(mask.astype(np.uint8), _NEIGHBOURS).astype(bool)


@dataclass(frozen=True)
class MapAccuracy:
    free_iou: float | None
    lethal_iou: float | None
    contact_recall: float | None  # true contact cells with a lethal cell within one cell
    stray_lethal: int  # lethal cells with no true obstacle within one cell
    known_fraction: float | None
    dangerous_free: int = 0  # passable cells more than one cell inside a true obstacle's footprint


def truth_window(truth: np.ndarray, truth_grid: GridSpec, window: GridSpec) -> np.ndarray:
    """The truth's classes over ``window`` (same resolution, axis-aligned); outside it: unknown."""
    resolution = window.resolution
    column0 = round((window.origin_x - truth_grid.origin_x) / resolution)
    row0 = round((window.origin_y - truth_grid.origin_y) / resolution)
    out = np.full((window.height, window.width), UNKNOWN_CLASS, np.uint8)
    rows = slice(max(0, -row0), min(window.height, truth_grid.height - row0))
    columns = slice(max(0, -column0), min(window.width, truth_grid.width - column0))
    if rows.start < rows.stop and columns.start < columns.stop:
        out[rows, columns] = truth[rows.start + row0 : rows.stop + row0, columns.start + column0 : columns.stop + column0]
    return out


def score_map(costs: np.ndarray, table: CostTable, truth: np.ndarray) -> MapAccuracy:
    """A costmap (0..100, -1 unknown) against the true classes of the same cells (``truth_window``)."""
    agreement = CostmapAgreement(table)
    costs = costs.astype(np.int16)
    agreement.update(costs, truth)
    summary = agreement.summary()
    expected = table.class_cost[truth]
    true_obstacle = expected == LETHAL
    lethal = costs == LETHAL
    seen_ground = (costs >= 0) & (costs < LETHAL)
    visible_faces = true_obstacle & _near(seen_ground) & ~seen_ground
    near_lethal = _near(lethal)
    faces = int(visible_faces.sum())
    stray = lethal & (expected >= 0) & ~_near(true_obstacle)  # where the truth is known (traffic passed elsewhere)
    return MapAccuracy(
        summary["free_iou"], summary["lethal_iou"], (int((visible_faces & near_lethal).sum()) / faces) if faces else None,
        int(stray.sum()), summary["known_fraction"], int(np.count_nonzero(seen_ground & _inside(true_obstacle))),
    )


def _inside(mask: np.ndarray) -> np.ndarray:
    """Cells of ``mask`` whose 8 neighbours are all in it too: more than one cell inside its edge."""
    return cv2.erode(mask.astype(np.uint8), _NEIGHBOURS, borderValue=0).astype(bool)


class DriveMap:
    """A drive's costmaps, each a window in the truth's frame: every one scored against the truth,
    and all pasted into one accumulated map of the drive (the newest word on each cell kept)."""

    def __init__(self, table: CostTable, truth: np.ndarray, truth_grid: GridSpec) -> None:
        self.table, self.truth, self.truth_grid = table, truth, truth_grid
        self.accumulated = np.full(truth.shape, -1, np.int16)
        self.covered = np.zeros(truth.shape, bool)  # cells some window spanned: where the map is scored
        self.frames: list[MapAccuracy] = []

    def truth_window(self, window: GridSpec) -> np.ndarray:
        """The true classes under ``window``."""
        return truth_window(self.truth, self.truth_grid, window)

    def truth_costs(self, window: GridSpec) -> np.ndarray:
        """The true classes under ``window`` as costs (0..100, -1 unknown): what the grid should say."""
        return self.table.class_cost[self.truth_window(window)]

    def add(self, costs: np.ndarray, window: GridSpec) -> MapAccuracy:
        """Score one published grid (``costs`` over ``window``, same resolution, axis-aligned) and keep it."""
        truth = self.truth_window(window)
        score = score_map(costs, self.table, truth)
        self.frames.append(score)
        column0, row0 = self._offset(window)
        rows = slice(max(0, row0), min(self.truth.shape[0], row0 + window.height))
        columns = slice(max(0, column0), min(self.truth.shape[1], column0 + window.width))
        if rows.start < rows.stop and columns.start < columns.stop:
            part = costs[rows.start - row0 : rows.stop - row0, columns.start - column0 : columns.stop - column0]
            target = self.accumulated[rows, columns]
            np.copyto(target, part, where=part >= 0)  # what the window no longer knows keeps what it said
            self.covered[rows, columns] = True
        return score

    def _offset(self, window: GridSpec) -> tuple[int, int]:
        resolution = self.truth_grid.resolution
        return (round((window.origin_x - self.truth_grid.origin_x) / resolution),
                round((window.origin_y - self.truth_grid.origin_y) / resolution))

    def summary(self) -> dict:
        """The last window, the mean over the drive, and the accumulated map of the whole drive."""
        if not self.frames:
            return {"frames": 0}
        return {
            "final": asdict(self.frames[-1]), "mean": _mean(self.frames), "frames": len(self.frames),
            "accumulated": asdict(self._score_accumulated()),
        }

    def _score_accumulated(self) -> MapAccuracy:
        """The accumulated map where some window spanned (the rest of the street was never in reach)."""
        if not self.covered.any():  # no window met the truth (a map of another drive?): nothing to score
            return MapAccuracy(None, None, None, 0, None)
        rows, columns = np.nonzero(self.covered)
        box = slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1)
        truth = np.where(self.covered[box], self.truth[box], UNKNOWN_CLASS).astype(np.uint8)
        return score_map(self.accumulated[box], self.table, truth)

    def plot(self, path: Path, title: str = "accumulated costmap") -> bool:
        """The accumulated map above the truth, over the stretch of street the drive saw; False when empty."""
        seen_rows, seen_columns = np.nonzero(self.accumulated >= 0)
        if seen_rows.size == 0:
            return False
        rows = slice(seen_rows.min(), seen_rows.max() + 1)
        columns = slice(seen_columns.min(), seen_columns.max() + 1)
        expected = self.table.class_cost[self.truth[rows, columns]]
        plt = pyplot()
        aspect = (rows.stop - rows.start) / (columns.stop - columns.start)
        figure, axes = plt.subplots(2, 1, figsize=(14, 2 * 12 * aspect + 1.6))
        for axis, costs, caption in ((axes[0], self.accumulated[rows, columns], f"{title} (grey: unknown)"),
                                     (axes[1], expected, "ground truth, as costs")):
            # Rows run along y and columns along x: drawn from the bottom, x is to the right and y up.
            axis.imshow(cost_colors(costs), origin="lower", extent=self._extent(rows, columns), interpolation="nearest")
            axis.set_title(caption)
            axis.set_xlabel("x in odom (m)")
            axis.set_ylabel("y (m)")
        figure.tight_layout()
        save_figure(figure, path, dpi=90)
        return True

    def _extent(self, rows: slice, columns: slice) -> tuple[float, float, float, float]:
        grid, resolution = self.truth_grid, self.truth_grid.resolution
        return (grid.origin_x + columns.start * resolution, grid.origin_x + columns.stop * resolution,
                grid.origin_y + rows.start * resolution, grid.origin_y + rows.stop * resolution)


class DriveMapScorer:
    """The costmap of evaluated frames, anchored to the drive's odometry, built twice: from the
    network's masks and from the true masks (which isolates the costmap from the segmentation),
    each scored against the drive's true map as a ``DriveMap``. ``evaluate``'s ``on_prediction``."""

    SOURCES = ("network", "true_masks")
    CAMERA = "camera"

    def __init__(
        self, table: CostTable, settings: CostmapSettings, camera: CameraModel, mount: CameraPose,
        poses: list[tuple[int, Pose2D]], truth: np.ndarray, truth_grid: GridSpec, tolerance_s: float = 0.1,
    ) -> None:
        self.poses = PoseBuffer(history_s=None)
        for stamp, pose in sorted(poses, key=lambda item: item[0]):
            self.poses.add(stamp, pose)
        self.tolerance_s, self.world_frame = tolerance_s, truth_grid.frame_id
        self.costmaps = {source: SemanticCostmap(table, settings, anchored=True) for source in self.SOURCES}
        for costmap in self.costmaps.values():
            costmap.set_camera(self.CAMERA, camera, mount)
        self.maps = {source: DriveMap(table, truth, truth_grid) for source in self.SOURCES}
        self.without_pose: list[str] = []  # frames left out: no pose at their stamp

    def __call__(self, sample: Frame, prediction: np.ndarray, health: CameraHealth | None = None) -> MapAccuracy | None:
        """Fold one evaluated frame into both maps; returns the network map's score after it (None:
        no pose at its stamp). ``health``: the camera health monitor's verdict of the frame, which
        the network's map heeds as the node's costmap does (the true masks' map does not)."""
        try:
            pose = self.poses.at(sample.stamp_ns, self.tolerance_s)
        except PoseUnavailable as error:
            self.without_pose.append(f"{sample.name}: {error}")
            return None
        scores = []
        for source, masks in zip(self.SOURCES, (prediction, sample.labels)):
            costmap = self.costmaps[source]
            judged = health if source == "network" else None
            costmap.update(
                self.CAMERA, masks, sample.stamp_ns / 1e9, pose=pose, world_frame=self.world_frame,
                free=judged is None or judged.free_allowed, no_free=None if judged is None else judged.no_free(masks.shape),
                forget_free=judged is not None and judged.judged_faulty,
            )
            snapshot = costmap.snapshot()
            scores.append(self.maps[source].add(snapshot.costs, snapshot.grid))
        return scores[0]

    def summary(self) -> dict:
        return {**{source: drive_map.summary() for source, drive_map in self.maps.items()},
                "frames_without_pose": len(self.without_pose), "problems": self.without_pose[:20]}

    def plot(self, folder: Path) -> list[Path]:
        """costmap.png (from the network's masks) and costmap_true_masks.png: each accumulated map above the truth."""
        written = []
        for source, name, title in (("network", "costmap.png", "accumulated costmap of the network's masks"),
                                    ("true_masks", "costmap_true_masks.png", "accumulated costmap of the true masks")):
            if self.maps[source].plot(folder / name, title):
                written.append(folder / name)
        return written


def drive_map_accuracy(
    config: DriveConfig,
    table: CostTable,
    settings: CostmapSettings,
    anchored: bool = True,
    masks: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict:
    """The costmap of the whole drive, scored after every frame and at the end.

    ``masks`` turns a frame's RGB pixels into trainIds (a Segmenter); None takes the true masks.
    Anchored, the costmap gets the pose odometry reports at each frame (the true one unless the
    drive has odometry noise or drift); vehicle-centric, it is scored where the vehicle truly is
    at that frame (as a planner would read it). The truth is the true map, so odometry errors show.
    """
    drive_map = DriveMap(table, *truth_map(config))
    costmap = SemanticCostmap(table, settings, anchored=anchored)
    costmap.set_camera("front", config.camera(), config.mount)
    for item in drive(config):
        train_ids = item.frame.train_ids if masks is None else masks(item.frame.rgb)
        costmap.update("front", train_ids, item.stamp_ns / 1e9, pose=item.odometry if anchored else None)
        snapshot = costmap.snapshot()
        drive_map.add(snapshot.costs, snapshot.grid if anchored else _shifted(snapshot.grid, item.ego_x))
    return {**drive_map.summary(), "anchored": anchored}


def _shifted(grid: GridSpec, ego_x: float) -> GridSpec:
    """A vehicle-frame grid placed in odom where the vehicle is (heading 0, as in the synthetic drives)."""
    return GridSpec(grid.resolution, grid.length_x, grid.length_y, grid.origin_x + ego_x, grid.origin_y, "odom")


def _mean(frames: list[MapAccuracy]) -> dict:
    means = {}
    for name in ("free_iou", "lethal_iou", "contact_recall", "known_fraction"):
        values = [getattr(f, name) for f in frames if getattr(f, name) is not None]
        means[name] = float(np.mean(values)) if values else None
    means["stray_lethal"] = float(np.mean([f.stray_lethal for f in frames]))
    means["dangerous_free"] = float(np.mean([f.dangerous_free for f in frames]))
    means["dangerous_free_max"] = max(f.dangerous_free for f in frames)
    return means

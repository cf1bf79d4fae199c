"""How right the accumulated costmap of a whole drive is, against the ground-truth map in odom.

A planner drives on the costmap's free cells and around its lethal ones, so a map is scored by:
- free and lethal IoU over the cells both the map and the truth know (``CostmapAgreement``);
- contact recall: the share of true obstacle contact cells (footprint cells the camera could see:
  next to a cell the map knows as ground) with a lethal cell within one cell;
- stray lethal cells: lethal cells with no true obstacle within one cell (goal: none).

``drive_map_accuracy`` runs a synthetic drive through the costmap frame by frame, with the true
masks (which isolates the costmap from the segmentation) or a Segmenter's, anchored to odometry
or vehicle-centric, and scores the map after every frame and at the end. No ROS imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..costmap import CostmapSettings, CostTable, GridSpec, SemanticCostmap, Snapshot
from ..costmap.costs import LETHAL
from ..synth.drive import DriveConfig, drive, truth_map
from .costmap_agreement import CostmapAgreement

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


def score_map(snapshot: Snapshot, truth: np.ndarray) -> MapAccuracy:
    """``snapshot`` against the true classes of the same cells (``truth_window``)."""
    agreement = CostmapAgreement(snapshot.table)
    costs = snapshot.costs.astype(np.int16)
    agreement.update(costs, truth)
    summary = agreement.summary()
    expected = agreement.class_cost[truth]
    true_obstacle = expected == LETHAL
    lethal = costs == LETHAL
    seen_ground = (costs >= 0) & (costs < LETHAL)
    visible_faces = true_obstacle & _near(seen_ground) & ~seen_ground
    near_lethal = _near(lethal)
    faces = int(visible_faces.sum())
    stray = lethal & ~_near(true_obstacle)
    return MapAccuracy(
        summary["free_iou"], summary["lethal_iou"], (int((visible_faces & near_lethal).sum()) / faces) if faces else None,
        int(stray.sum()), summary["known_fraction"],
    )


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
    truth, truth_grid = truth_map(config)
    costmap = SemanticCostmap(table, settings, anchored=anchored)
    costmap.set_camera("front", config.camera(), config.mount)
    frames: list[MapAccuracy] = []
    for item in drive(config):
        train_ids = item.frame.train_ids if masks is None else masks(item.frame.rgb)
        costmap.update("front", train_ids, item.stamp_ns / 1e9, pose=item.odometry if anchored else None)
        snapshot = costmap.snapshot()
        window = snapshot.grid if anchored else _shifted(snapshot.grid, item.ego_x)
        frames.append(score_map(snapshot, truth_window(truth, truth_grid, window)))
    return {"final": asdict(frames[-1]), "mean": _mean(frames), "frames": len(frames), "anchored": anchored}


def _shifted(grid: GridSpec, ego_x: float) -> GridSpec:
    """A vehicle-frame grid placed in odom where the vehicle is (heading 0, as in the synthetic drives)."""
    return GridSpec(grid.resolution, grid.length_x, grid.length_y, grid.origin_x + ego_x, grid.origin_y, "odom")


def _mean(frames: list[MapAccuracy]) -> dict:
    means = {}
    for name in ("free_iou", "lethal_iou", "contact_recall", "known_fraction"):
        values = [getattr(f, name) for f in frames if getattr(f, name) is not None]
        means[name] = float(np.mean(values)) if values else None
    means["stray_lethal"] = float(np.mean([f.stray_lethal for f in frames]))
    return means

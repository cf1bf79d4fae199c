"""How far a costmap agrees with a ground-truth class grid (no ROS imports).

The ground truth holds classes, the costmap costs: the truth is turned into costs with the same
cost table, then free (cost 0) and lethal (100) cells are scored as two IoUs, over the cells
that both know. Cells the costmap has not seen are not errors; how many it knows is reported
apart (``known_fraction``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..costmap.costs import LETHAL, CostTable
from ..costmap.render import class_image, cost_image
from .report import pyplot, save_figure

_SCORED = {"free": 0, "lethal": LETHAL}


class CostmapAgreement:
    """Free and lethal IoU summed over frames; keeps the last pair compared, for a picture."""

    def __init__(self, table: CostTable) -> None:
        self.table = table
        self.intersection = dict.fromkeys(_SCORED, 0)
        self.union = dict.fromkeys(_SCORED, 0)
        self.frames = self.known_cells = self.total_cells = 0
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # costs, expected costs, classes

    def update(self, costs: np.ndarray, classes: np.ndarray) -> None:
        """``costs``: a costmap (0..100, -1 unknown); ``classes``: the trainIds of the same cells (255 unknown)."""
        costs = costs.astype(np.int16)
        expected = self.table.class_cost[classes]
        known = (costs >= 0) & (expected >= 0)
        for name, value in _SCORED.items():
            predicted, truth = (costs == value) & known, (expected == value) & known
            self.intersection[name] += int((predicted & truth).sum())
            self.union[name] += int((predicted | truth).sum())
        self.known_cells += int((costs >= 0).sum())
        self.total_cells += costs.size
        self.frames += 1
        self.last = (costs, expected, classes)

    def summary(self) -> dict[str, float | int | None]:
        def iou(name: str) -> float | None:
            return self.intersection[name] / self.union[name] if self.union[name] else None

        return {
            "frames": self.frames,
            "free_iou": iou("free"),
            "lethal_iou": iou("lethal"),
            "known_fraction": self.known_cells / self.total_cells if self.total_cells else None,
        }

    def plot_last(self, path: Path, title: str = "costmap (grey: unknown)") -> bool:
        """The last pair side by side, bird's-eye; False when nothing was compared."""
        if self.last is None:
            return False
        costs, expected, classes = self.last
        plt = pyplot()
        figure, axes = plt.subplots(1, 3, figsize=(12, 5.5))
        panels = ((cost_image(costs), title), (cost_image(expected), "ground truth, as costs"),
                  (class_image(classes, self.table.label_set), "ground truth classes"))
        for axis, (picture, caption) in zip(axes, panels):
            axis.imshow(picture)
            axis.set_title(caption)
            axis.set_xticks([])
            axis.set_yticks([])
        figure.suptitle("bird's-eye view around base_link, forward up (last frame compared)")
        figure.tight_layout()
        save_figure(figure, path, dpi=90)
        return True


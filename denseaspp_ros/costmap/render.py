"""Grids as pictures: bird's-eye view with the vehicle's x axis pointing up."""

from __future__ import annotations

import numpy as np

from ..labels import LabelSet
from .costs import LETHAL
from .fusion import Snapshot

UNKNOWN_COLOR = (40, 40, 40)
# Free green through yellow to lethal red: the anchors of matplotlib's RdYlGn_r, without matplotlib.
_COST_ANCHORS = np.array([[26, 150, 65], [255, 255, 191], [215, 25, 28]], np.float64)


def _cost_palette() -> np.ndarray:
    """Row 0 for unknown (-1), row 1 + c for cost c in 0..LETHAL."""
    where = np.linspace(0.0, 1.0, len(_COST_ANCHORS))
    steps = np.arange(LETHAL + 1) / LETHAL
    ramp = np.stack([np.interp(steps, where, _COST_ANCHORS[:, channel]) for channel in range(3)], axis=1)
    return np.concatenate([np.array([UNKNOWN_COLOR], np.uint8), ramp.round().astype(np.uint8)])


_COST_PALETTE = _cost_palette()


def bird_eye(cells: np.ndarray) -> np.ndarray:
    """(width, height) view of a (height, width) grid: forward (x) is up and left (y) is left, as seen from above.

    Grid rows run along y and columns along x; transposing and mirroring them lets a person look
    at the grid as at a map drawn ahead of the vehicle.
    """
    return np.ascontiguousarray(cells.T[::-1, ::-1])


def class_image(classes: np.ndarray, label_set: LabelSet) -> np.ndarray:
    """(width, height, 3) RGB of a (height, width) trainId grid in the label set's palette; 255 unknown."""
    palette = np.zeros((256, 3), np.uint8)
    palette[:] = UNKNOWN_COLOR
    palette[: label_set.num_classes] = label_set.colors
    return palette[bird_eye(classes)]


def cost_colors(costs: np.ndarray) -> np.ndarray:
    """RGB of each cell of an OccupancyGrid cost grid (0..100, -1 unknown), laid out as the grid is."""
    return _COST_PALETTE[np.clip(costs.astype(np.int16), -1, LETHAL) + 1]


def cost_image(costs: np.ndarray) -> np.ndarray:
    """(width, height, 3) RGB of a (height, width) OccupancyGrid cost grid, bird's-eye (forward up)."""
    return cost_colors(bird_eye(costs))


def bird_eye_image(snapshot: Snapshot) -> np.ndarray:
    """(width, height, 3) RGB of the class that decided each cell of the fused grid."""
    return class_image(snapshot.classes, snapshot.table.label_set)

"""The costmap's grid: cell size, extent and placement in the vehicle frame (Nav2 conventions).

Cell (col, row) covers x in [origin_x + col * resolution, ...) and y likewise; cells are stored
row-major from cell (0, 0), so index = row * width + col, as nav_msgs/OccupancyGrid lays out data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..declarations import setting
from ..errors import DenseASPPError


class GridError(DenseASPPError, ValueError):
    """A grid that cannot exist: non-positive or non-finite size or resolution."""


@dataclass(frozen=True)
class GridSpec:
    resolution: float = setting(0.1, "cell size in metres", low=0.005, high=100.0)
    length_x: float = setting(40.0, "grid extent along x in metres", low=0.01, high=10000.0)
    length_y: float = setting(30.0, "grid extent along y in metres", low=0.01, high=10000.0)
    origin_x: float = setting(-10.0, "x of the outer corner of cell (0, 0) in costmap.frame_id, metres")
    origin_y: float = setting(-15.0, "y of the outer corner of cell (0, 0) in costmap.frame_id, metres")
    frame_id: str = setting("base_link", "frame of the grid and of the camera poses (the vehicle, REP 105)")

    def __post_init__(self) -> None:
        values = (self.resolution, self.length_x, self.length_y, self.origin_x, self.origin_y)
        if not all(math.isfinite(v) for v in values):
            raise GridError(f"costmap grid values must be finite, got {values}")
        if self.resolution <= 0 or self.length_x <= 0 or self.length_y <= 0:
            raise GridError(
                f"costmap resolution and lengths must be positive, got resolution={self.resolution}, "
                f"length_x={self.length_x}, length_y={self.length_y}"
            )
        if self.width * self.height > 100_000_000:
            raise GridError(f"costmap of {self.width}x{self.height} cells is too large: raise costmap.resolution")
        if not self.frame_id:
            raise GridError("costmap frame_id must not be empty")

    @property
    def width(self) -> int:
        """Cells along x."""
        return max(1, round(self.length_x / self.resolution))

    @property
    def height(self) -> int:
        """Cells along y."""
        return max(1, round(self.length_y / self.resolution))

    @property
    def size(self) -> int:
        return self.width * self.height

    def cell_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Flat cell index of each point (int64), -1 outside the grid or NaN."""
        with np.errstate(invalid="ignore"):
            return self._cell_index(x, y)

    def _cell_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        col = np.floor((np.asarray(x) - self.origin_x) / self.resolution)
        row = np.floor((np.asarray(y) - self.origin_y) / self.resolution)
        inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)  # False for NaN
        return np.where(inside, row * self.width + np.where(inside, col, 0), -1).astype(np.int64)

    def cell_centers(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame (x, y) of the centres of the given flat cell indices."""
        row, col = np.divmod(np.asarray(cells, dtype=np.int64), self.width)
        return (
            self.origin_x + (col + 0.5) * self.resolution,
            self.origin_y + (row + 0.5) * self.resolution,
        )

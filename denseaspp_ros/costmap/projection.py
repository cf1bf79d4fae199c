"""Flat-ground inverse perspective mapping, precomputed once per camera as lookup tables.

Camera poses are static, so the geometry is done when a camera is set up: every pixel's ray is
intersected with the ground plane z = 0 of the vehicle frame, giving the grid cell it sees
(pixel -> cell votes, stored sorted by cell so that a frame reduces each cell's votes with one
``reduceat``); and every cell that no pixel centre lands in, but that lies in view and in range,
is projected back into the image to the one pixel that sees it (cell -> pixel coverage), so far
away, where pixel rows are sparser than cells, the grid has no holes. A frame is then a few uint8
lookups on the mask, a gather and a reduction: no per-pixel geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..errors import DenseASPPError
from .camera import CameraModel
from .costs import CostTable
from .grid import GridSpec
from .pose import CameraPose

RULES = ("max", "majority")
_SHADOW_BIN = 0.002  # radians: the bearing bins the shadow rule looks along (0.11 degree)
_RANGE_SPAN = 1e6  # metres: a bin's key spans more than any range on a grid
# Rays flatter than this (their downward slope) never meet the ground within any useful range.
_MIN_DOWNWARD = 1e-9


class AspectMismatch(DenseASPPError, ValueError):
    """A mask whose aspect ratio is not its camera model's: scaling the intrinsics to it would
    stretch the camera and put every pixel's ray in the wrong place."""


class ProjectionError(DenseASPPError, ValueError):
    """A camera whose view cannot be projected onto the ground (e.g. mounted below it)."""


@dataclass(frozen=True)
class FrameVotes:
    """What one camera frame says about the cells it sees: a key per cell (0 = seen, no vote)."""

    cells: np.ndarray  # int32 flat cell indices
    keys: np.ndarray  # uint8 vote keys (CostTable), 0 where the ground is hidden or ignored
    # Per cell (with ``shadow_depth``): hidden behind an obstacle face seen in this frame, at most
    # ``shadow_depth`` metres behind it along the ray: ground nothing can see now, inside or just
    # behind the obstacle, whose earlier word "free" must not stand.
    shadowed: np.ndarray | None = None


class GroundProjection:
    """Lookup tables of one camera (intrinsics at one mask size, pose) onto one grid."""

    def __init__(self, camera: CameraModel, pose: CameraPose, grid: GridSpec, max_range: float) -> None:
        if not np.isfinite(max_range) or max_range <= 0:
            raise ProjectionError(f"max_range must be a positive number of metres, got {max_range}")
        if pose.z <= 0:
            raise ProjectionError(f"camera height z = {pose.z} m: a camera must be mounted above the ground (z > 0)")
        self.camera, self.pose, self.grid, self.max_range = camera, pose, grid, max_range
        self.shape = (camera.height, camera.width)
        rotation = pose.optical_to_vehicle()
        x, y = ground_intersections(camera.pixel_rays(), rotation, pose, np.inf)
        sees_ground = np.isfinite(x)
        in_range = np.hypot(x - pose.x, y - pose.y) <= max_range
        pixel_cells = grid.cell_index(np.where(in_range, x, np.nan), np.where(in_range, y, np.nan))
        fill_cells, fill_pixels = self._coverage(rotation, pixel_cells, sees_ground)
        seen_pixels = np.flatnonzero(pixel_cells >= 0)
        rows = np.concatenate([seen_pixels // camera.width, fill_pixels // camera.width])
        # The frame path only looks at the band of rows that can see the ground (below the horizon).
        self.first_row = int(rows.min()) if rows.size else camera.height
        offset = self.first_row * camera.width
        order = np.argsort(pixel_cells[seen_pixels], kind="stable")
        self._vote_pixels = (seen_pixels[order] - offset).astype(np.int64)
        vote_cells = pixel_cells[seen_pixels[order]]
        new_cell = np.diff(vote_cells, prepend=-1) != 0  # votes are sorted by cell: each cell is one segment
        starts = np.flatnonzero(new_cell)
        self._segment_starts = starts
        self._segment_ids = np.cumsum(new_cell) - 1
        self._fill_pixels = (fill_pixels - offset).astype(np.int64)
        self.cells = np.concatenate([vote_cells[starts], fill_cells]).astype(np.int32)
        self.cells.setflags(write=False)

    @cached_property
    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame (x, y) of the centre of each of ``cells``: what an anchored costmap moves by
        the vehicle's pose every frame, computed once."""
        return self.grid.cell_centers(self.cells)

    @cached_property
    def _polar(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each of ``cells`` seen from the camera: its range on the ground, its bearing, and the half
        angle it spans (what the shadow rule looks along), computed once."""
        x, y = self.centers
        dx, dy = x - self.pose.x, y - self.pose.y
        distance = np.hypot(dx, dy)
        half_angle = (self.grid.resolution * 0.7072) / np.maximum(distance, self.grid.resolution)  # half a diagonal
        return distance.astype(np.float32), np.arctan2(dy, dx).astype(np.float32), half_angle.astype(np.float32)

    @property
    def visible_cells(self) -> int:
        """Cells of the grid this camera sees within range."""
        return int(self.cells.size)

    def _coverage(
        self, rotation: np.ndarray, pixel_cells: np.ndarray, sees_ground: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(cells, pixels): cells in view and range that no pixel centre lands in, and the pixel seeing each."""
        covered = np.zeros(self.grid.size, bool)
        covered[pixel_cells[pixel_cells >= 0]] = True
        candidates = np.flatnonzero(~covered)
        x, y = self.grid.cell_centers(candidates)
        near = np.hypot(x - self.pose.x, y - self.pose.y) <= self.max_range
        candidates, x, y = candidates[near], x[near], y[near]
        points = np.stack([x, y, np.zeros_like(x)], axis=1) - self.pose.position
        optical = points @ rotation  # rotation.T applied to row vectors: vehicle -> optical
        ahead = optical[:, 2] > 1e-6
        candidates, optical = candidates[ahead], optical[ahead]
        x_min, x_max, y_min, y_max = self.camera.field_of_view()
        normalised = optical[:, :2] / optical[:, 2:3]
        in_view = (
            (normalised[:, 0] >= x_min) & (normalised[:, 0] <= x_max)
            & (normalised[:, 1] >= y_min) & (normalised[:, 1] <= y_max)
        )
        candidates, optical = candidates[in_view], optical[in_view]
        pixels = np.rint(self.camera.project(optical)).astype(np.int64)
        inside = (
            (pixels[:, 0] >= 0) & (pixels[:, 0] < self.camera.width)
            & (pixels[:, 1] >= 0) & (pixels[:, 1] < self.camera.height)
        )
        flat = pixels[inside, 1] * self.camera.width + pixels[inside, 0]
        # The rounded pixel must itself look at the ground (not the sky at the horizon); its own
        # ground point may lie just off the grid or beyond range, for a cell on their edge.
        ground = sees_ground[flat]
        return candidates[inside][ground], flat[ground]

    def vote(
        self, train_ids: np.ndarray, table: CostTable, rule: str = "max", confidence: np.ndarray | None = None,
        no_free: np.ndarray | None = None, shadow_depth: float = 0.0,
    ) -> FrameVotes:
        """Each visible cell's key in this frame, from an HxW uint8 class mask of this camera.

        Obstacle classes vote only at their ground contacts (the lowest pixel of each run of
        obstacle pixels in an image column); the pixels above a contact are the obstacle's body,
        standing up from the ground, and say nothing about the cells their rays reach, except,
        with ``shadow_depth`` > 0, that those within that many metres behind the face are not
        seen free (``FrameVotes.shadowed``). Pixels of ``no_free`` (HxW bool: low confidence, a
        blocked part of the lens) vote no ground, only obstacles.
        """
        if train_ids.shape != self.shape or train_ids.dtype != np.uint8:
            raise ProjectionError(
                f"mask must be a {self.shape[1]}x{self.shape[0]} uint8 array for this projection, "
                f"got {train_ids.dtype} {train_ids.shape[::-1]}"
            )
        if no_free is not None and no_free.shape != self.shape:
            raise ProjectionError(f"no_free must be {self.shape[1]}x{self.shape[0]} like the mask, got {no_free.shape[::-1]}")
        if self.first_row == self.shape[0]:  # sees no ground at all
            return FrameVotes(self.cells, np.zeros(0, np.uint8))
        band = pixel_keys(np.ascontiguousarray(train_ids[self.first_row :]), table)
        if no_free is not None:
            band[no_free[self.first_row :] & ~table.key_is_contact[band]] = 0
        keys = band.ravel()
        votes = keys[self._vote_pixels]
        if rule == "max":
            cell_keys = np.maximum.reduceat(votes, self._segment_starts) if votes.size else votes
        elif rule == "majority":
            weights = None
            if confidence is not None:
                weights = confidence[self.first_row :].ravel()[self._vote_pixels]
            cell_keys = self._majority(votes, weights, table)
        else:
            raise ProjectionError(f"unknown cost rule {rule!r}: use {' or '.join(RULES)}")
        cell_keys = np.concatenate([cell_keys, keys[self._fill_pixels]])
        shadowed = None
        if shadow_depth > 0:
            shadowed = self._shadowed(cell_keys, table, shadow_depth)
        return FrameVotes(self.cells, cell_keys, shadowed)

    def _shadowed(self, cell_keys: np.ndarray, table: CostTable, depth: float) -> np.ndarray:
        """Per cell: it voted nothing (its ground hidden) and an obstacle contact seen in this frame
        stands at most ``depth`` metres in front of it, looking from the camera along the same
        bearing. Done on the cells (tens of thousands), not the pixels (millions)."""
        distance, bearing, half_angle = self._polar
        contact = np.flatnonzero(table.key_is_contact[cell_keys])
        hidden = np.flatnonzero(cell_keys == 0)
        shadowed = np.zeros(cell_keys.size, bool)
        if contact.size == 0 or hidden.size == 0:
            return shadowed
        # Each contact covers the bearing bins its cell spans; a hidden cell looks up, in its own bin,
        # the farthest contact nearer than itself (one sort of contacts keyed by bin, then range).
        first = np.floor((bearing[contact] - half_angle[contact]) / _SHADOW_BIN).astype(np.int64)
        last = np.floor((bearing[contact] + half_angle[contact]) / _SHADOW_BIN).astype(np.int64)
        spans = last - first + 1
        owner = np.repeat(contact, spans)
        bins = np.repeat(first, spans) + np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
        keys = bins * _RANGE_SPAN + distance[owner].astype(np.float64)
        order = np.argsort(keys, kind="stable")
        keys, owner = keys[order], owner[order]
        hidden_bins = np.floor(bearing[hidden] / _SHADOW_BIN).astype(np.int64)
        position = np.searchsorted(keys, hidden_bins * _RANGE_SPAN + distance[hidden].astype(np.float64), side="left") - 1
        found = position >= 0
        position = np.maximum(position, 0)
        in_front = owner[position]
        same_bin = np.floor(keys[position] / _RANGE_SPAN).astype(np.int64) == hidden_bins
        behind = distance[hidden] - distance[in_front]
        shadowed[hidden[found & same_bin & (behind <= depth)]] = True
        return shadowed

    def _majority(self, votes: np.ndarray, weights: np.ndarray | None, table: CostTable) -> np.ndarray:
        """Per cell the key with most pixels (confidence-weighted); a ground contact still wins.

        Votes are sorted by cell and, within a cell, by pixel, so equal keys come in runs along
        image rows: counting runs (weighted by their length or summed confidence) instead of pixels
        makes the histogram ~20x smaller to build.
        """
        if not votes.size:
            return votes
        segments, width = len(self._segment_starts), table.num_keys
        new_run = np.empty(votes.size, bool)
        new_run[0] = True
        np.not_equal(votes[1:], votes[:-1], out=new_run[1:])
        new_run[self._segment_starts] = True
        runs = np.flatnonzero(new_run)
        if weights is None:
            run_weights = np.diff(np.append(runs, votes.size))
        else:
            run_weights = np.add.reduceat(weights, runs, dtype=np.uint32)  # uint8 sums would wrap
        counts = np.bincount(self._segment_ids[runs] * width + votes[runs], run_weights, minlength=segments * width)
        counts = counts.reshape(segments, width)
        counts[:, 0] = 0  # hidden and ignored pixels elect nothing
        majority = counts.argmax(1).astype(np.uint8)
        majority[counts.max(1) == 0] = 0
        highest = np.maximum.reduceat(votes, self._segment_starts)
        contact = table.key_is_contact[highest]
        return np.where(contact, highest, majority)


def ground_intersections(
    rays: np.ndarray, rotation: np.ndarray, pose: CameraPose, max_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vehicle-frame (x, y) where optical-frame rays from the camera meet the ground plane z = 0.

    NaN for rays that point at or above the horizon, or meet the ground farther than
    ``max_range`` from the camera (measured along the ground).
    """
    directions = rays @ rotation.T  # vehicle frame
    downward = directions[:, 2] < -_MIN_DOWNWARD
    distance = np.where(downward, -pose.z / np.where(downward, directions[:, 2], -1.0), np.nan)
    x = pose.x + distance * directions[:, 0]
    y = pose.y + distance * directions[:, 1]
    beyond = ~(np.hypot(x - pose.x, y - pose.y) <= max_range)  # NaN compares False: beyond too
    x[beyond] = np.nan
    y[beyond] = np.nan
    return x, y


def project_pixels(camera: CameraModel, pose: CameraPose, pixels: np.ndarray, max_range: float = np.inf) -> np.ndarray:
    """Ground points (N, 2) seen by pixel coordinates (N, 2) of ``camera``; NaN where none."""
    x, y = ground_intersections(camera.normalize(pixels), pose.optical_to_vehicle(), pose, max_range)
    return np.stack([x, y], axis=1)


def pixel_keys(train_ids: np.ndarray, table: CostTable) -> np.ndarray:
    """HxW uint8 vote key of every pixel: ground classes vote their key, obstacles at contacts only."""
    contact = cv2.LUT(train_ids, table.contact_key)  # obstacle pixels: their key, all others 0
    bottom_of_run = contact[1:] == 0  # the pixel below is not an obstacle: a ground contact
    np.multiply(contact[:-1], bottom_of_run, out=contact[:-1])
    keys = cv2.LUT(train_ids, table.ground_key)
    np.add(keys, contact, out=keys)  # the two tables are never non-zero for the same class
    return keys

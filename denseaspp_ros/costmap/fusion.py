"""All cameras into one vehicle-centric grid, with memory that decays.

Each camera keeps a layer: the key its latest frames voted into each cell and when. A new frame
overwrites the cells it sees (what a camera sees now replaces what it saw before, so a car that
drove away is cleared); the fused grid takes, per cell, the highest key over the cameras whose
observation of it is fresh, i.e. the highest cost. A cell no camera observed within
``decay_time`` of now returns to unknown; keep it above the cameras' frame period, or a camera's
cells vanish between its frames. "Now" is the caller's clock (a node's ROS time), so a camera
whose clock runs ahead cannot age the other cameras' cells; offline, without a clock, it is the
newest frame's stamp.

Without odometry the grid moves with the vehicle (``base_link``): a remembered cell is where the
obstacle was relative to the vehicle when it was seen, so ``decay_time`` should stay short on a
moving vehicle (the default is a second). Anchored to odometry, what was seen stays where it is
in the world, so the grid remembers for ``map_decay_time`` (default 30 s) and, by default,
accumulates evidence per cell (``memory: auto``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..declarations import group, setting
from ..errors import DenseASPPError
from .camera import CameraModel
from .egomotion import Pose2D, RollingWindow, scroll
from .costs import CostTable
from .grid import GridSpec
from .pose import CameraPose
from .projection import RULES, AspectMismatch, GroundProjection, ProjectionError

_NEVER = -np.inf
# Projections kept per camera (one per mask size seen): a camera that changes resolution back and
# forth does not rebuild each time, and the cache cannot grow without bound.
_PROJECTIONS_PER_CAMERA = 4
MEMORIES = ("auto", "latest", "evidence")


@dataclass(frozen=True)
class CostmapSettings:
    grid: GridSpec = group(GridSpec, flatten=True)
    max_range: float = setting(
        30.0, "ground points farther than this from the camera are ignored, metres", low=0.1, high=10000.0
    )
    decay_time: float = setting(
        1.0, "seconds after which a cell no camera sees again returns to unknown (vehicle-centric grid)",
        low=0.01, high=3600.0,
    )
    map_decay_time: float = setting(
        30.0, "decay_time of a grid anchored to odometry (it stays right while the vehicle drives); "
        "cells that leave the window are forgotten anyway", low=0.01, high=3600.0,
    )
    rule: str = setting(
        "max", "cost of a cell from its pixels: max (highest cost wins) or majority (by pixel count)", choices=RULES
    )
    occluded_unknown: bool = setting(False, "cells in view whose ground is hidden become unknown at once (else they decay)")
    shadow_depth: float = setting(
        8.0, "cells hidden behind an obstacle face seen now, up to this many metres behind it along the camera's rays, "
        "lose what earlier frames called free (0: keep it until it decays)", low=0.0, high=1000.0,
    )
    memory: str = setting(
        "auto", "what a cell keeps: latest (the last observation), evidence (obstacle log-odds over frames) "
        "or auto (evidence when anchored to odometry, else latest); either way it returns to unknown after "
        "the decay time", choices=MEMORIES,
    )
    hit_weight: float = setting(1.0, "evidence: added by a frame that sees an obstacle's contact in the cell", low=0.01, high=100.0)
    miss_weight: float = setting(1.0, "evidence: taken away by a frame that sees ground in the cell", low=0.01, high=100.0)
    occupied_threshold: float = setting(
        1.0, "evidence: an obstacle from this much evidence on; free below 0; unknown between (a cell seen free "
        "and then once as an obstacle)", low=0.01, high=100.0,
    )
    evidence_min: float = setting(-1.0, "evidence: the least a cell holds (how free it can be)", low=-100.0, high=-0.01)
    evidence_max: float = setting(3.0, "evidence: the most a cell holds (how long an obstacle resists free views)", low=0.01, high=100.0)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise DenseASPPError(f"costmap.rule must be {' or '.join(RULES)}, got {self.rule!r}")
        if not np.isfinite(self.decay_time) or self.decay_time < 0:
            raise DenseASPPError(f"costmap.decay_time must be a non-negative number of seconds, got {self.decay_time}")
        if not np.isfinite(self.max_range) or self.max_range <= 0:
            raise DenseASPPError(f"costmap.max_range must be positive, got {self.max_range}")
        if self.occupied_threshold > self.evidence_max:
            raise DenseASPPError(
                f"costmap.occupied_threshold {self.occupied_threshold} is above costmap.evidence_max {self.evidence_max}: "
                "no cell could ever be lethal"
            )

    def decay(self, anchored: bool) -> float:
        """Seconds a cell is remembered after its last observation, for this kind of grid."""
        return self.map_decay_time if anchored else self.decay_time

    def accumulates(self, anchored: bool) -> bool:
        """Whether cells keep evidence over frames (a vehicle-centric grid would smear it as the vehicle moves)."""
        return self.memory == "evidence" or (self.memory == "auto" and anchored)


@dataclass
class _Layer:
    """What one camera says of each cell: its key, when it last saw it, and with ``evidence`` memory
    the obstacle log-odds and the last obstacle and ground keys the key is chosen from."""

    keys: np.ndarray
    seen: np.ndarray  # stamp of the frame that last observed each cell
    latest: float = _NEVER
    evidence: np.ndarray | None = None
    obstacle_keys: np.ndarray | None = None
    ground_keys: np.ndarray | None = None

    @classmethod
    def empty(cls, size: int, with_evidence: bool) -> _Layer:
        layer = cls(np.zeros(size, np.uint8), np.full(size, _NEVER))
        if with_evidence:
            layer.evidence = np.zeros(size, np.float32)
            layer.obstacle_keys, layer.ground_keys = np.zeros(size, np.uint8), np.zeros(size, np.uint8)
        return layer

    def arrays(self) -> dict[str, tuple[np.ndarray, float]]:
        """Every per-cell array with its value for a cell nothing has seen."""
        named = {"keys": (self.keys, 0), "seen": (self.seen, _NEVER)}
        if self.evidence is not None:
            named.update(evidence=(self.evidence, 0.0), obstacle_keys=(self.obstacle_keys, 0), ground_keys=(self.ground_keys, 0))
        return named

    def forget(self) -> None:
        for values, unseen in self.arrays().values():
            values[:] = unseen
        self.latest = _NEVER


@dataclass(frozen=True)
class Snapshot:
    """The fused grid at one moment: what the publishers turn into messages."""

    keys: np.ndarray  # (height, width) uint8 fused keys, 0 unknown
    table: CostTable
    grid: GridSpec

    @property
    def costs(self) -> np.ndarray:
        """(height, width) int8: 0..100, -1 unknown (OccupancyGrid data)."""
        return self.table.key_cost[self.keys]

    @property
    def classes(self) -> np.ndarray:
        """(height, width) uint8 trainId that decided each cell, 255 unknown."""
        return self.table.key_class[self.keys]

    def contact_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(flat cell indices, trainIds) of the cells an obstacle's ground contact decided."""
        flat = self.keys.ravel()
        cells = np.flatnonzero(self.table.key_is_contact[flat])
        return cells, self.table.key_class[flat[cells]]


def _surroundings(window: GridSpec) -> GridSpec:
    """The vehicle-frame square the cameras' lookup tables cover when anchored: every cell of a
    window of ``window``'s size centred on the vehicle, whatever its heading."""
    reach = math.hypot(window.width * window.resolution, window.height * window.resolution) / 2
    cells = math.ceil(reach / window.resolution)
    side = 2 * cells * window.resolution
    return GridSpec(window.resolution, side, side, -cells * window.resolution, -cells * window.resolution, window.frame_id)


class SemanticCostmap:
    """Projects class masks of any number of cameras and fuses them; no ROS, no threads.

    Vehicle-centric by default: the grid is ``settings.grid`` in the vehicle frame. Anchored to
    a world frame (``anchored=True``), each frame comes with the vehicle's pose at its stamp:
    the cameras' lookup tables stay in the vehicle frame (over a square that holds the window in
    any heading), their cells are moved by the pose into a window of ``settings.grid``'s size
    that follows the vehicle (``egomotion.RollingWindow``), and what was seen stays where it was.
    """

    def __init__(self, table: CostTable, settings: CostmapSettings, anchored: bool = False) -> None:
        self.table, self.settings, self.anchored = table, settings, anchored
        self.window: RollingWindow | None = None  # anchored: where the grid is in the world, once a pose came
        self._cameras: dict[str, tuple[CameraModel, CameraPose]] = {}
        self._projections: dict[str, dict[tuple, GroundProjection]] = {}
        self._layers: dict[str, _Layer] = {}
        self._projection_grid = _surroundings(settings.grid) if anchored else settings.grid
        self.decay_time = settings.decay(anchored)
        self._followed = _NEVER  # anchored: the stamp of the newest frame the window was centred on

    @property
    def grid(self) -> GridSpec:
        """The published grid: the vehicle-frame grid, or the window where it is in the world now."""
        if self.window is not None:
            return self.window.grid
        return self.settings.grid

    @property
    def cameras(self) -> list[str]:
        return list(self._cameras)

    def set_camera(self, name: str, camera: CameraModel, pose: CameraPose) -> None:
        """(Re)define a camera; its lookup tables are rebuilt lazily, for each mask size it sends."""
        if self._cameras.get(name) is not None:
            old_camera, old_pose = self._cameras[name]
            if old_camera.key == camera.key and old_pose == pose:
                return
        self._cameras[name] = (camera, pose)
        self._projections[name] = {}
        if name not in self._layers:
            size = self.grid.size
            self._layers[name] = _Layer.empty(size, self.settings.accumulates(self.anchored))

    def has_camera(self, name: str) -> bool:
        return name in self._cameras

    def projection(self, name: str, mask_shape: tuple[int, int]) -> GroundProjection:
        """The camera's lookup tables for masks of ``mask_shape`` (H, W): intrinsics scaled to it."""
        try:
            camera, pose = self._cameras[name]
        except KeyError:
            raise DenseASPPError(f"camera {name!r} has no model and pose in the costmap") from None
        # Keyed by mask size: set_camera empties the cache, so a frame costs a dict lookup here.
        cache = self._projections[name]
        projection = cache.get(mask_shape)
        if projection is None:
            height, width = mask_shape
            if (width, height) != (camera.width, camera.height):
                if not camera.uniformly_scales_to(width, height):
                    raise AspectMismatch(
                        f"a {width}x{height} mask is not the camera's {camera.width}x{camera.height} at one scale: its "
                        "intrinsics would be stretched, so it stays out of the costmap (give the camera_info of the "
                        "images these masks come from, or image_width/image_height that match them)"
                    )
                camera = camera.scaled_to(width, height)
            projection = GroundProjection(camera, pose, self._projection_grid, self.settings.max_range)
            if len(cache) >= _PROJECTIONS_PER_CAMERA:
                cache.pop(next(iter(cache)))
            cache[mask_shape] = projection
        return projection

    def update(
        self, name: str, train_ids: np.ndarray, stamp: float, confidence: np.ndarray | None = None,
        pose: Pose2D | None = None, world_frame: str = "odom", free: bool = True, no_free: np.ndarray | None = None,
        forget_free: bool = False,
    ) -> int:
        """Fold one camera frame into its layer; returns how many cells it observed.

        Anchored, ``pose`` is the vehicle in ``world_frame`` at the frame's stamp: the window moves
        with it first. ``free`` False (a camera whose frames cannot be trusted) folds in only the
        obstacles it sees: its ground votes nothing. ``forget_free`` (the camera is judged in FAULT,
        not just this frame withheld) also takes what it called free before back to unknown at once:
        the frames that would have set a wrong word right are the ones that cannot be trusted.
        ``no_free`` (HxW bool, like the mask) marks pixels that may not vote ground (a blocked
        part of the lens, low confidence); they still mark obstacles.
        """
        if train_ids.ndim != 2:
            raise ProjectionError(f"mask must be HxW, got shape {train_ids.shape}")
        if self.anchored and pose is None:
            raise DenseASPPError("an anchored costmap needs the vehicle's pose for every frame")
        projection = self.projection(name, train_ids.shape)
        settings = self.settings
        shadow_depth = 0.0 if settings.occluded_unknown else settings.shadow_depth  # all hidden cells are unknown anyway
        votes = projection.vote(train_ids, self.table, settings.rule, confidence, no_free, shadow_depth)
        layer = self._layers[name]
        cells, keys = votes.cells, votes.keys
        observed = np.ones(keys.shape, bool) if settings.occluded_unknown else keys != 0  # hidden cells keep what was seen
        if not free:
            observed &= self.table.key_is_contact[keys]
        shadowed = votes.shadowed
        cells, keys = cells[observed], keys[observed]
        if self.anchored:
            if stamp >= self._followed or self.window is None or self.window.grid.frame_id != world_frame:
                self.follow(pose, world_frame)  # a late frame lands in the window as it is: it never moves it back
                self._followed = stamp
            x, y = projection.centers
            cells, keys = self._into_window(x[observed], y[observed], keys, pose)
            if shadowed is not None:
                shadowed = self.window.grid.cell_index(*pose.transform(x[shadowed], y[shadowed]))
                shadowed = shadowed[shadowed >= 0]
        elif shadowed is not None:
            shadowed = votes.cells[shadowed]
        if layer.evidence is not None:
            cells, keys = self._accumulate(layer, cells, keys)
        layer.keys[cells] = keys
        layer.seen[cells] = stamp
        layer.latest = max(layer.latest, stamp)
        if shadowed is not None and shadowed.size:
            written = np.zeros(layer.keys.size, bool)
            written[cells] = True  # what this frame saw itself stands
            self._withdraw_free(layer, shadowed[~written[shadowed]])
        if forget_free:
            self._withdraw_free(layer, np.flatnonzero(self.table.key_is_contact[layer.keys] == 0))
        return int(cells.size)

    def _withdraw_free(self, layer: _Layer, cells: np.ndarray) -> None:
        """Cells hidden just behind a face seen now: what they were called free no longer stands (they
        show unknown); obstacle evidence stays."""
        if layer.evidence is not None:
            evidence = np.maximum(layer.evidence[cells], np.float32(0))
            layer.evidence[cells] = evidence
            layer.keys[cells] = np.where(evidence >= self.settings.occupied_threshold, layer.obstacle_keys[cells], 0)
        else:
            keys = layer.keys[cells]
            layer.keys[cells] = np.where(self.table.key_is_contact[keys], keys, 0)

    def _accumulate(self, layer: _Layer, cells: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold the frame's keys into the cells' evidence; returns the cells (each once) with the keys
        they now show: the last obstacle seen there from ``occupied_threshold`` on, the last ground
        seen there below 0, else unknown: a cell seen free and then once as an obstacle is neither
        (one misread frame does not make a lethal cell of free ground, nor is an arriving obstacle free)."""
        settings = self.settings
        if self.anchored:  # several vehicle cells may land in one window cell: one vote each, the highest
            last = cells.size - 1 - np.unique(cells[::-1], return_index=True)[1]
            cells, keys = cells[last], keys[last]
        contact = self.table.key_is_contact[keys]
        change = np.where(contact, np.float32(settings.hit_weight), np.float32(-settings.miss_weight))
        evidence = np.clip(layer.evidence[cells] + change, settings.evidence_min, settings.evidence_max)
        layer.evidence[cells] = evidence
        layer.obstacle_keys[cells[contact]] = keys[contact]
        layer.ground_keys[cells[~contact]] = keys[~contact]
        occupied = evidence >= settings.occupied_threshold
        shown = np.where(evidence < 0, layer.ground_keys[cells], 0)
        return cells, np.where(occupied, layer.obstacle_keys[cells], shown)

    def follow(self, pose: Pose2D, world_frame: str) -> None:
        """Centre the window on ``pose``: what stays in it keeps its world position, the rest is forgotten."""
        window = RollingWindow.around(pose, self.settings.grid, world_frame)
        if self.window is not None and window.grid.frame_id == self.window.grid.frame_id:
            columns, rows = self.window.shift_to(window)
            if columns or rows:
                shape = (window.grid.height, window.grid.width)
                for layer in self._layers.values():
                    for name, (values, unseen) in layer.arrays().items():
                        setattr(layer, name, scroll(values.reshape(shape), columns, rows, unseen).ravel())
        elif self.window is not None:
            self.clear()  # another world frame: nothing seen maps into it
        self.window = window

    def _into_window(
        self, x: np.ndarray, y: np.ndarray, keys: np.ndarray, pose: Pose2D
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-frame cell centres moved by ``pose`` into the window's cells (a 2-D rigid transform).
        Where several land in one window cell, the highest key wins, as within a frame."""
        world_x, world_y = pose.transform(x, y)
        window_cells = self.window.grid.cell_index(world_x, world_y)
        inside = window_cells >= 0
        window_cells, keys = window_cells[inside], keys[inside]
        order = np.argsort(keys, kind="stable")  # ascending: the last write to a cell is its highest key
        return window_cells[order], keys[order]

    def snapshot(self, now: float | None = None) -> Snapshot:
        """The fused grid at ``now`` (seconds; default the newest frame's stamp): per cell the highest fresh key."""
        now = max((layer.latest for layer in self._layers.values()), default=_NEVER) if now is None else now
        fused = np.zeros(self.grid.size, np.uint8)
        horizon = now - self.decay_time
        for layer in self._layers.values():
            if layer.latest == _NEVER or layer.latest < horizon:
                continue  # a camera that stopped sending: all it saw has decayed
            fresh = layer.seen >= horizon
            np.maximum(fused, np.where(fresh, layer.keys, 0).astype(np.uint8), out=fused)
        return Snapshot(fused.reshape(self.grid.height, self.grid.width), self.table, self.grid)

    def clear(self) -> None:
        """Forget everything seen (cameras and their lookup tables stay), e.g. when time went back."""
        for layer in self._layers.values():
            layer.forget()
        self._followed = _NEVER

"""A procedural street: a straight two-lane road with parking strips, sidewalks, terrain, buildings,
walls, fences, trees, poles with signs and lights, parked vehicles, pedestrians, and traffic that
moves: vehicles ahead in the ego lane and oncoming in the other, a motorcycle, cyclists along the
kerb, pedestrians crossing. All are boxes, vertical cylinders and spheres standing on flat ground.

World frame: x along the road, y to the left, z up, the road centred on y = 0. Everything is
generated from one seed, so a scene (and every frame rendered from it) is reproducible. Movers go
at a constant velocity for a while (``Motion``); ``Scene.at(t)`` is the scene t seconds into the
drive, exact, so labels and ground truth stay exact for what moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..labels import CITYSCAPES

ROAD_HALF_WIDTH = 6.0  # two 3.5 m lanes plus a 2.5 m parking strip on each side
LANE_CENTRE = 1.75  # the ego vehicle drives on the right: y = -1.75
PARKING_CENTRE = 4.75

CLASS = {name: index for index, name in enumerate(CITYSCAPES.class_names)}

# Base colours (RGB 0..1): plausible materials, deliberately not the label palette.
_PALETTES = {
    "road": [(0.28, 0.28, 0.30)],
    "sidewalk": [(0.62, 0.60, 0.57), (0.55, 0.52, 0.50)],
    "terrain": [(0.45, 0.55, 0.25), (0.50, 0.45, 0.30)],
    "building": [(0.70, 0.62, 0.52), (0.55, 0.35, 0.28), (0.80, 0.78, 0.72), (0.45, 0.47, 0.52), (0.62, 0.55, 0.40)],
    "wall": [(0.60, 0.58, 0.55), (0.50, 0.40, 0.32)],
    "fence": [(0.35, 0.30, 0.22), (0.55, 0.55, 0.58)],
    "pole": [(0.45, 0.47, 0.50), (0.30, 0.30, 0.32)],
    "traffic light": [(0.10, 0.10, 0.10), (0.20, 0.25, 0.15)],
    "traffic sign": [(0.85, 0.80, 0.15), (0.15, 0.35, 0.75), (0.85, 0.15, 0.12)],
    "vegetation": [(0.20, 0.40, 0.15), (0.28, 0.45, 0.18), (0.35, 0.30, 0.18)],
    "person": [(0.55, 0.20, 0.20), (0.20, 0.25, 0.45), (0.75, 0.65, 0.50), (0.15, 0.15, 0.15)],
    "rider": [(0.80, 0.40, 0.10), (0.25, 0.55, 0.30)],
    "car": [(0.70, 0.05, 0.05), (0.10, 0.20, 0.60), (0.85, 0.85, 0.85), (0.12, 0.12, 0.12), (0.50, 0.52, 0.55)],
    "truck": [(0.90, 0.90, 0.88), (0.20, 0.35, 0.25)],
    "bus": [(0.85, 0.70, 0.10), (0.70, 0.10, 0.10)],
    "bicycle": [(0.15, 0.15, 0.20), (0.60, 0.10, 0.10)],
    "motorcycle": [(0.10, 0.10, 0.12), (0.75, 0.10, 0.08), (0.20, 0.30, 0.60)],
}


@dataclass(frozen=True)
class Motion:
    """A mover's velocity (m/s) from ``start`` (s into the drive) for ``duration`` seconds; it stands
    still before and after (a pedestrian waiting at the kerb, then arrived)."""

    vx: float
    vy: float
    start: float = 0.0
    duration: float = np.inf

    def shift(self, t: float) -> tuple[float, float]:
        moving = min(max(t - self.start, 0.0), self.duration)
        return self.vx * moving, self.vy * moving


STILL = Motion(0.0, 0.0)
# The columns of each shape's geometry that hold x and y: a box's corners, a cylinder's axis.
_XY_COLUMNS = {6: ((0, 3), (1, 4)), 5: ((0,), (1,))}


@dataclass
class Primitives:
    """Objects of one shape as parallel arrays (the renderer works on them a shape at a time)."""

    geometry: list[tuple[float, ...]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    colors: list[tuple[float, float, float]] = field(default_factory=list)
    motions: list[Motion] = field(default_factory=list)
    _arrays: tuple | None = field(default=None, repr=False)  # built once, for every frame rendered

    def add(
        self, geometry: tuple[float, ...], class_name: str, color: tuple[float, float, float], motion: Motion = STILL
    ) -> None:
        self.geometry.append(tuple(float(v) for v in geometry))
        self.classes.append(CLASS[class_name])
        self.colors.append(color)
        self.motions.append(motion)
        self._arrays = None

    def at(self, t: float) -> Primitives:
        """These objects ``t`` seconds into the drive: the ones that move, moved (the arrays are shared otherwise)."""
        geometry, classes, colors = self.arrays()
        moving = [index for index, motion in enumerate(self.motions) if motion != STILL]
        if not moving:
            return self
        geometry = geometry.copy()
        x_columns, y_columns = _XY_COLUMNS[geometry.shape[1]]
        for index in moving:
            dx, dy = self.motions[index].shift(t)
            geometry[index, list(x_columns)] += dx
            geometry[index, list(y_columns)] += dy
        moved = Primitives(list(self.geometry), list(self.classes), list(self.colors), list(self.motions))
        moved._arrays = (geometry, classes, colors)
        return moved

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = self._build_arrays()
        return self._arrays

    def _build_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width = len(self.geometry[0]) if self.geometry else 1
        return (
            np.array(self.geometry, np.float64).reshape(-1, width),
            np.array(self.classes, np.uint8),
            np.array(self.colors, np.float32).reshape(-1, 3),
        )

    def subset(self, moving: bool) -> Primitives:
        """The objects that move during the drive (or those that stand still)."""
        chosen = Primitives()
        for geometry, class_id, color, motion in zip(self.geometry, self.classes, self.colors, self.motions):
            if (motion != STILL) == moving:
                chosen.geometry.append(geometry)
                chosen.classes.append(class_id)
                chosen.colors.append(color)
                chosen.motions.append(motion)
        return chosen


@dataclass
class Scene:
    """Boxes (x0, y0, z0, x1, y1, z1), cylinders (cx, cy, radius, z0, z1), spheres (cx, cy, cz, radius),
    and the ground layout on each side of the road (y > 0 and y < 0): sidewalk and terrain widths."""

    seed: int
    length: float
    boxes: Primitives = field(default_factory=Primitives)
    cylinders: Primitives = field(default_factory=Primitives)
    spheres: Primitives = field(default_factory=Primitives)
    sidewalk_width: tuple[float, float] = (3.0, 3.0)  # (left, right)
    terrain_width: tuple[float, float] = (0.0, 0.0)

    def ground_class(self, y: np.ndarray) -> np.ndarray:
        """The ground's class at lateral position y (uint8): road, sidewalk, terrain, or terrain beyond."""
        side = (y < 0).astype(int)  # 0 left, 1 right
        distance = np.abs(y)
        sidewalk = np.take(self.sidewalk_width, side)
        classes = np.full(y.shape, CLASS["terrain"], np.uint8)  # terrain strips, and ground between buildings
        classes[distance < ROAD_HALF_WIDTH + sidewalk] = CLASS["sidewalk"]
        classes[distance < ROAD_HALF_WIDTH] = CLASS["road"]
        return classes

    def frontage(self, side: int) -> float:
        """|y| where buildings start on a side (0 left, 1 right)."""
        return ROAD_HALF_WIDTH + self.sidewalk_width[side] + self.terrain_width[side]

    def at(self, t: float) -> Scene:
        """The scene ``t`` seconds into the drive, every mover where it is then."""
        return replace(self, boxes=self.boxes.at(t), cylinders=self.cylinders.at(t))

    def static(self) -> Scene:
        """The scene without anything that moves during the drive."""
        return replace(self, boxes=self.boxes.subset(moving=False), cylinders=self.cylinders.subset(moving=False))

    def movers(self) -> Scene:
        """Only what moves (``at(t)`` places it; its footprints sweep the street)."""
        return replace(self, boxes=self.boxes.subset(moving=True), cylinders=self.cylinders.subset(moving=True),
                       spheres=Primitives())


def generate_scene(seed: int, length: float, ego_speed: float = 8.0) -> Scene:
    """A street ``length`` metres long (from x = -20), fully determined by ``seed``, for an ego
    vehicle that drives it at ``ego_speed`` m/s from x = 0 (traffic is placed around it: nothing
    ever drives into it, or it into anything).

    Each row of the street (building line, kerb furniture, parked vehicles, pedestrians, traffic)
    draws from one generator in a fixed order, so a seed always gives the same scene.
    """
    rng = np.random.default_rng(seed)
    scene = Scene(
        seed=seed,
        length=length,
        sidewalk_width=tuple(rng.uniform(2.5, 4.0, 2)),
        terrain_width=tuple(np.where(rng.random(2) < 0.5, rng.uniform(1.5, 4.0, 2), 0.0)),
    )
    span = (-20.0, length + 60.0)

    def color(name: str) -> tuple[float, float, float]:
        base = np.array(_PALETTES[name][rng.integers(len(_PALETTES[name]))])
        return tuple(np.clip(base * rng.uniform(0.85, 1.15), 0, 1))

    for side, sign in ((0, 1.0), (1, -1.0)):
        for row in (_building_line, _kerb_furniture, _parked_vehicles, _pedestrians):
            row(scene, side, sign, span, rng, color)
    _traffic(scene, span, length / max(ego_speed, 0.1), ego_speed, rng, color)
    _crossings(scene, span, length / max(ego_speed, 0.1), ego_speed, rng, color)
    return scene


def _building_line(scene: Scene, side: int, sign: float, span: tuple[float, float], rng, color) -> None:
    """Buildings, with gaps closed by walls or fences and trees."""
    frontage = scene.frontage(side)
    x, end = span
    while x < end:
        width = rng.uniform(8, 25)
        if rng.random() < 0.75:
            depth, height = rng.uniform(10, 20), rng.uniform(6, 25)
            y0, y1 = sorted((sign * frontage, sign * (frontage + depth)))
            scene.boxes.add((x, y0, 0.0, x + width, y1, height), "building", color("building"))
        else:
            kind = "wall" if rng.random() < 0.5 else "fence"
            thickness, height = (0.3, rng.uniform(1.5, 2.5)) if kind == "wall" else (0.12, rng.uniform(1.0, 2.0))
            y0, y1 = sorted((sign * frontage, sign * (frontage + thickness)))
            scene.boxes.add((x, y0, 0.0, x + width, y1, height), kind, color(kind))
            for tree_x in np.arange(x + 3, x + width - 2, rng.uniform(5, 8)):
                _tree(scene, tree_x, sign * (frontage + rng.uniform(2, 5)), rng, color)
        x += width + rng.uniform(0, 2)


def _kerb_furniture(scene: Scene, side: int, sign: float, span: tuple[float, float], rng, color) -> None:
    """Trees and poles along the kerb, some poles with a sign or a traffic light."""
    x, end = span[0] + rng.uniform(0, 10), span[1]
    while x < end:
        y = sign * (ROAD_HALF_WIDTH + rng.uniform(0.4, 0.8))
        if rng.random() < 0.45:
            _tree(scene, x, sign * (ROAD_HALF_WIDTH + scene.sidewalk_width[side] * 0.5), rng, color)
        else:
            height = rng.uniform(3.5, 7.0)
            scene.cylinders.add((x, y, rng.uniform(0.08, 0.14), 0.0, height), "pole", color("pole"))
            if rng.random() < 0.5:
                size = rng.uniform(0.5, 0.9)
                scene.boxes.add(
                    (x - 0.03, y - size / 2, height - size, x + 0.03, y + size / 2, height), "traffic sign", color("traffic sign")
                )
            elif rng.random() < 0.5:
                scene.boxes.add((x - 0.2, y - 0.2, height - 1.0, x + 0.2, y + 0.2, height), "traffic light", color("traffic light"))
        x += rng.uniform(8, 20)


def _parked_vehicles(scene: Scene, side: int, sign: float, span: tuple[float, float], rng, color) -> None:
    """Cars, trucks and buses in the parking strip, with gaps."""
    x, end = span[0] + rng.uniform(0, 8), span[1]
    while x < end:
        kind = rng.choice(["car", "car", "car", "car", "truck", "bus"])
        length_, width_, height = _vehicle_size(kind, rng)
        if rng.random() < 0.7:
            y = sign * PARKING_CENTRE
            scene.boxes.add((x, y - width_ / 2, 0.0, x + length_, y + width_ / 2, height), kind, color(kind))
        x += length_ + rng.uniform(1.0, 12.0)


def _pedestrians(scene: Scene, side: int, sign: float, span: tuple[float, float], rng, color) -> None:
    x, end = span[0] + rng.uniform(0, 10), span[1]
    while x < end:
        y = sign * (ROAD_HALF_WIDTH + rng.uniform(0.8, scene.sidewalk_width[side] - 0.4))
        scene.cylinders.add((x, y, rng.uniform(0.22, 0.3), 0.0, rng.uniform(1.55, 1.9)), "person", color("person"))
        x += rng.uniform(4, 25)


def _traffic(scene: Scene, span: tuple[float, float], duration: float, ego_speed: float, rng, color) -> None:
    """Oncoming vehicles (now and then a motorcycle) in the other lane, one or two vehicles ahead in
    the ego lane pulling away from it, and cyclists along the right kerb that it overtakes."""
    oncoming = rng.uniform(6.0, 11.0)  # one speed for the lane: its vehicles keep their gaps
    x, end = span[0] + rng.uniform(5, 20), span[1] + oncoming * duration
    while x < end:
        kind = rng.choice(["car", "car", "car", "truck", "bus", "motorcycle"])
        x += _vehicle(scene, kind, x, LANE_CENTRE + rng.uniform(-0.3, 0.3), Motion(-oncoming, 0.0), rng, color)
        x += rng.uniform(8, 30)
    x = rng.uniform(12.0, 25.0)  # ahead of the camera at the start, and faster than the ego vehicle
    ahead = Motion(ego_speed * rng.uniform(1.05, 1.3), 0.0)  # one speed for the lane: they keep their gap
    for kind in ("motorcycle" if rng.random() < 0.5 else "car", rng.choice(["car", "truck", "bus"])):
        if x > span[1]:
            break
        x += _vehicle(scene, kind, x, -LANE_CENTRE, ahead, rng, color)
        x += rng.uniform(15, 40)
    x = span[0] + rng.uniform(5, 20)
    while x < span[1]:
        y, motion = -(ROAD_HALF_WIDTH - 1.2), Motion(rng.uniform(3.0, 5.0), 0.0)
        scene.boxes.add((x, y - 0.3, 0.0, x + 1.75, y + 0.3, 1.05), "bicycle", color("bicycle"), motion)
        scene.cylinders.add((x + 0.85, y, 0.25, 0.9, 1.75), "rider", color("rider"), motion)
        x += rng.uniform(25, 60)


def _vehicle(scene: Scene, kind: str, x: float, y: float, motion: Motion, rng, color) -> float:
    """One moving vehicle with its rear at ``x`` (a motorcycle with its rider); returns its length."""
    length_, width_, height = _vehicle_size(kind, rng)
    scene.boxes.add((x, y - width_ / 2, 0.0, x + length_, y + width_ / 2, height), kind, color(kind), motion)
    if kind == "motorcycle":
        scene.cylinders.add((x + length_ / 2, y, 0.25, 0.75, 1.7), "rider", color("rider"), motion)
    return length_


def _crossings(scene: Scene, span: tuple[float, float], duration: float, ego_speed: float, rng, color) -> None:
    """Pedestrians walking across the road, one every 25-50 m, timed to be out of the ego lane when
    the ego vehicle passes (they wait at the kerb before, and stand on the far side after)."""
    kerb = ROAD_HALF_WIDTH + 0.8
    x = span[0] + rng.uniform(10, 30)
    while x < span[1]:
        sign = 1.0 if rng.random() < 0.5 else -1.0  # start on the left (walk right) or on the right
        speed = rng.uniform(1.1, 1.5)
        crossing = 2 * kerb / speed
        # In the ego lane (y in [-4, 0.5], with margins) between these times after setting off:
        near, far = sorted((kerb - sign * y) / speed for y in (0.5, -4.0))
        # The ego vehicle (base_link 1 m behind its rear, its front 4 m ahead) spans x in these times:
        arrives, leaves = (x - 4.0) / ego_speed - 1.0, (x + 1.0) / ego_speed + 1.0
        for _ in range(20):
            start = rng.uniform(-crossing / 2, duration)
            if start + far < arrives or start + near > leaves:
                motion = Motion(0.0, -sign * speed, start, crossing)
                scene.cylinders.add((x, sign * kerb, rng.uniform(0.22, 0.3), 0.0, rng.uniform(1.55, 1.9)), "person",
                                    color("person"), motion)
                break
        x += rng.uniform(25, 50)


def _tree(scene: Scene, x: float, y: float, rng: np.random.Generator, color) -> None:
    trunk = rng.uniform(1.8, 3.0)
    crown = rng.uniform(1.2, 2.5)
    scene.cylinders.add((x, y, rng.uniform(0.12, 0.22), 0.0, trunk + crown * 0.3), "vegetation", color("vegetation"))
    scene.spheres.add((x, y, trunk + crown * 0.8, crown), "vegetation", color("vegetation"))


def _vehicle_size(kind: str, rng: np.random.Generator) -> tuple[float, float, float]:
    if kind == "motorcycle":
        return rng.uniform(2.0, 2.3), rng.uniform(0.7, 0.9), rng.uniform(1.0, 1.2)
    if kind == "truck":
        return rng.uniform(6, 9), rng.uniform(2.3, 2.5), rng.uniform(2.8, 3.5)
    if kind == "bus":
        return rng.uniform(11, 13), 2.5, rng.uniform(3.0, 3.3)
    return rng.uniform(4.0, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)

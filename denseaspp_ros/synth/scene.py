"""A procedural street: a straight two-lane road with parking strips, sidewalks, terrain, buildings,
walls, fences, trees, poles with signs and lights, parked and stopped vehicles, pedestrians and
cyclists, all as boxes, vertical cylinders and spheres standing on flat ground.

World frame: x along the road, y to the left, z up, the road centred on y = 0. Everything is
generated from one seed, so a scene (and every frame rendered from it) is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
}


@dataclass
class Primitives:
    """Objects of one shape as parallel arrays (the renderer works on them a shape at a time)."""

    geometry: list[tuple[float, ...]] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    colors: list[tuple[float, float, float]] = field(default_factory=list)
    _arrays: tuple | None = field(default=None, repr=False)  # built once, for every frame rendered

    def add(self, geometry: tuple[float, ...], class_name: str, color: tuple[float, float, float]) -> None:
        self.geometry.append(tuple(float(v) for v in geometry))
        self.classes.append(CLASS[class_name])
        self.colors.append(color)
        self._arrays = None

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


def generate_scene(seed: int, length: float) -> Scene:
    """A street ``length`` metres long (from x = -20), fully determined by ``seed``.

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
    _traffic(scene, span, rng, color)
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


def _traffic(scene: Scene, span: tuple[float, float], rng, color) -> None:
    """Stopped traffic in the oncoming lane, cyclists at the right kerb (the ego lane stays clear)."""
    x, end = span[0] + rng.uniform(5, 20), span[1]
    while x < end:
        if rng.random() < 0.6:
            kind = rng.choice(["car", "car", "car", "truck", "bus"])
            length_, width_, height = _vehicle_size(kind, rng)
            y = LANE_CENTRE + rng.uniform(-0.3, 0.3)
            scene.boxes.add((x, y - width_ / 2, 0.0, x + length_, y + width_ / 2, height), kind, color(kind))
        else:
            y = -(ROAD_HALF_WIDTH - 1.2)
            scene.boxes.add((x, y - 0.3, 0.0, x + 1.75, y + 0.3, 1.05), "bicycle", color("bicycle"))
            scene.cylinders.add((x + 0.85, y, 0.25, 0.9, 1.75), "rider", color("rider"))
        x += rng.uniform(10, 30)


def _tree(scene: Scene, x: float, y: float, rng: np.random.Generator, color) -> None:
    trunk = rng.uniform(1.8, 3.0)
    crown = rng.uniform(1.2, 2.5)
    scene.cylinders.add((x, y, rng.uniform(0.12, 0.22), 0.0, trunk + crown * 0.3), "vegetation", color("vegetation"))
    scene.spheres.add((x, y, trunk + crown * 0.8, crown), "vegetation", color("vegetation"))


def _vehicle_size(kind: str, rng: np.random.Generator) -> tuple[float, float, float]:
    if kind == "truck":
        return rng.uniform(6, 9), rng.uniform(2.3, 2.5), rng.uniform(2.8, 3.5)
    if kind == "bus":
        return rng.uniform(11, 13), 2.5, rng.uniform(3.0, 3.3)
    return rng.uniform(4.0, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)

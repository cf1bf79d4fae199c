"""Vectorised ray casting of a street scene through a pinhole camera: RGB, exact labels, depth.

Rays are the camera model's own pixel rays (optical frame, z = 1), so the ray parameter of a hit
is its optical depth and the labels agree with the geometry the costmap uses. The ground is hit
analytically by every ray; each object is then intersected only with the rays inside its
projected bounding rectangle (a ray-cast rasteriser with a depth buffer), which keeps a 256x512
frame in the tens of milliseconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..costmap import CameraModel, CameraPose, GridSpec
from .scene import CLASS, LANE_CENTRE, ROAD_HALF_WIDTH, Scene

_LIGHT = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])
_AMBIENT = 0.45
_FOG_DISTANCE = 180.0
_SKY_ZENITH = np.array([0.35, 0.55, 0.85], np.float32)
_SKY_HORIZON = np.array([0.78, 0.85, 0.92], np.float32)
_GROUND_COLORS = {
    CLASS["road"]: (0.28, 0.28, 0.30),
    CLASS["sidewalk"]: (0.60, 0.58, 0.55),
    CLASS["terrain"]: (0.42, 0.52, 0.24),
}
_NEAR = 0.05


@dataclass
class Frame:
    """One rendered image with its ground truth."""

    rgb: np.ndarray  # HxWx3 uint8
    train_ids: np.ndarray  # HxW uint8 (255 nowhere: every pixel has a class)
    depth: np.ndarray  # HxW float32 metres along the optical axis, inf for the sky


class Renderer:
    """Renders scenes seen from a camera mounted on a vehicle that drives along the road."""

    def __init__(self, camera: CameraModel, mount: CameraPose, seed: int = 0, noise: float = 2.0) -> None:
        self.camera, self.mount, self.noise = camera, mount, noise
        self.rotation = mount.optical_to_vehicle()  # the vehicle's axes are the world's (yaw 0)
        self.rays = (camera.pixel_rays() @ self.rotation.T).reshape(camera.height, camera.width, 3)
        self._texture = np.random.default_rng(seed).random((256, 256)).astype(np.float32)
        self._noise_rng = np.random.default_rng(seed + 1)

    def vehicle_position(self, ego_x: float) -> np.ndarray:
        """World position of base_link when the vehicle has driven ``ego_x`` metres along its lane."""
        return np.array([ego_x, -LANE_CENTRE, 0.0])

    def render(self, scene: Scene, ego_x: float) -> Frame:
        origin = self.vehicle_position(ego_x) + self.mount.position
        height, width = self.camera.height, self.camera.width
        rays = self.rays
        depth = np.full((height, width), np.inf, np.float64)
        labels = np.full((height, width), CLASS["sky"], np.uint8)
        color = self._sky(rays)
        self._ground(scene, origin, depth, labels, color)
        boxes, box_classes, box_colors = scene.boxes.arrays()
        for box, class_id, base in zip(boxes, box_classes, box_colors):
            self._draw(origin, box, class_id, base, depth, labels, color, _hit_box, box.reshape(2, 3))
        cylinders, cylinder_classes, cylinder_colors = scene.cylinders.arrays()
        for cylinder, class_id, base in zip(cylinders, cylinder_classes, cylinder_colors):
            cx, cy, radius, z0, z1 = cylinder
            bounds = np.array([[cx - radius, cy - radius, z0], [cx + radius, cy + radius, z1]])
            self._draw(origin, cylinder, class_id, base, depth, labels, color, _hit_cylinder, bounds)
        spheres, sphere_classes, sphere_colors = scene.spheres.arrays()
        for sphere, class_id, base in zip(spheres, sphere_classes, sphere_colors):
            cx, cy, cz, radius = sphere
            bounds = np.array([[cx - radius, cy - radius, cz - radius], [cx + radius, cy + radius, cz + radius]])
            self._draw(origin, sphere, class_id, base, depth, labels, color, _hit_sphere, bounds)
        fog = (1.0 - np.exp(-np.where(np.isfinite(depth), depth, 1e9) / _FOG_DISTANCE))[..., None]
        color = color * (1 - fog) + _SKY_HORIZON * fog
        if self.noise:
            color = color + self._noise_rng.normal(0.0, self.noise / 255.0, color.shape).astype(np.float32)
        rgb = (np.clip(color, 0, 1) * 255 + 0.5).astype(np.uint8)
        return Frame(rgb, labels, depth.astype(np.float32))

    def _sky(self, rays: np.ndarray) -> np.ndarray:
        elevation = np.clip(rays[..., 2] / np.linalg.norm(rays, axis=-1), 0, 1)[..., None].astype(np.float32)
        return _SKY_HORIZON * (1 - elevation) + _SKY_ZENITH * elevation

    def _ground(self, scene: Scene, origin: np.ndarray, depth, labels, color) -> None:
        down = self.rays[..., 2] < -1e-9
        t = np.where(down, -origin[2] / np.where(down, self.rays[..., 2], -1.0), np.inf)
        reach = np.where(down, t, 0.0)  # the sky's rays get finite, unused coordinates
        x = origin[0] + reach * self.rays[..., 0]
        y = origin[1] + reach * self.rays[..., 1]
        classes = scene.ground_class(y)
        classes[~down] = CLASS["sky"]
        base = np.zeros(color.shape, np.float32)
        for class_id, rgb in _GROUND_COLORS.items():
            base[classes == class_id] = rgb
        texture = self._sample(x * 4.0, y * 4.0)
        marking = _lane_markings(x, y) & (classes == CLASS["road"])
        base[marking] = (0.85, 0.85, 0.82)
        shade = _AMBIENT + (1 - _AMBIENT) * _LIGHT[2]
        ground_color = base * (shade * (0.8 + 0.4 * texture))[..., None]
        color[down] = ground_color[down]
        labels[down] = classes[down]
        depth[down] = t[down]

    def _draw(self, origin, shape, class_id, base, depth, labels, color, intersect, bounds) -> None:
        """Intersect the rays inside ``bounds``' image rectangle; keep the hits nearer than the buffer."""
        window = self._window(origin, bounds)
        if window is None:
            return
        v0, v1, u0, u1 = window
        rays = self.rays[v0:v1, u0:u1]
        t, normal, surface = intersect(origin, rays, shape)
        block = depth[v0:v1, u0:u1]
        nearer = t < block
        if not nearer.any():
            return
        block[nearer] = t[nearer]
        labels[v0:v1, u0:u1][nearer] = class_id
        lambert = np.clip(normal @ _LIGHT, 0, 1)
        texture = self._sample(surface[..., 0] * 3.0, surface[..., 1] * 3.0)
        shaded = base * ((_AMBIENT + (1 - _AMBIENT) * lambert) * (0.85 + 0.3 * texture))[..., None]
        pattern = _PATTERNS.get(int(class_id))
        if pattern is not None:
            shaded = pattern(shaded, surface, normal, shape)
        color[v0:v1, u0:u1][nearer] = shaded[nearer]

    def _window(self, origin: np.ndarray, bounds: np.ndarray) -> tuple[int, int, int, int] | None:
        """Pixel rectangle (v0, v1, u0, u1) covering a world-space box, None when out of view."""
        corners = np.array(np.meshgrid(*bounds.T, indexing="ij")).reshape(3, -1).T  # corner i: bits x, y, z
        optical = (corners - origin) @ self.rotation  # world (= vehicle axes) -> optical
        ahead = optical[:, 2] > _NEAR
        if not ahead.any() or optical[:, 2].min() > 4 * _FOG_DISTANCE:
            return None  # behind the camera, or lost in the fog
        if not ahead.all():  # straddles the camera plane: clip its edges there
            clipped = [optical[ahead]]
            for i in range(8):
                for bit in (1, 2, 4):
                    j = i | bit
                    if i & bit or ahead[i] == ahead[j]:
                        continue
                    a, b = optical[i], optical[j]
                    clipped.append((a + (_NEAR - a[2]) / (b[2] - a[2]) * (b - a))[None])
            optical = np.concatenate(clipped)
        height, width = self.camera.height, self.camera.width
        u, v = self.camera.project(optical).T
        u0, u1 = int(np.clip(np.floor(u.min()) - 1, 0, width)), int(np.clip(np.ceil(u.max()) + 2, 0, width))
        v0, v1 = int(np.clip(np.floor(v.min()) - 1, 0, height)), int(np.clip(np.ceil(v.max()) + 2, 0, height))
        if u0 >= u1 or v0 >= v1:
            return None
        return v0, v1, u0, u1

    def _sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Value noise (nearest texel of a tiling random texture) at surface coordinates."""
        return self._texture[(np.floor(u).astype(np.int64) & 255), (np.floor(v).astype(np.int64) & 255)]

    def ground_truth_grid(self, scene: Scene, ego_x: float, grid: GridSpec) -> np.ndarray:
        """(height, width) uint8 class of what stands on (or is) the ground in each cell, vehicle frame.

        Objects raised off the ground (signs, lights, tree crowns, a rider above the saddle) have
        no footprint; trunks, poles and everything else standing on the ground do. Each object only
        touches the cells under its bounding square.
        """
        vehicle = self.vehicle_position(ego_x)
        world_x = grid.origin_x + vehicle[0] + (np.arange(grid.width) + 0.5) * grid.resolution  # cell centres
        world_y = grid.origin_y + vehicle[1] + (np.arange(grid.height) + 0.5) * grid.resolution
        classes = np.repeat(scene.ground_class(world_y)[:, None], grid.width, axis=1)
        boxes, box_classes, _ = scene.boxes.arrays()
        for box, class_id in zip(boxes, box_classes):
            if box[2] <= 0.3:
                rows, columns = _span(world_y, box[1], box[4]), _span(world_x, box[0], box[3])
                classes[rows, columns] = class_id
        cylinders, cylinder_classes, _ = scene.cylinders.arrays()
        for (cx, cy, radius, z0, _), class_id in zip(cylinders, cylinder_classes):
            if z0 <= 0.3:
                rows, columns = _span(world_y, cy - radius, cy + radius), _span(world_x, cx - radius, cx + radius)
                inside = (world_x[columns][None, :] - cx) ** 2 + (world_y[rows][:, None] - cy) ** 2 <= radius**2
                classes[rows, columns][inside] = class_id
        return classes


def _span(centres: np.ndarray, low: float, high: float) -> slice:
    """The cells whose (sorted) centres lie in [low, high]."""
    return slice(int(np.searchsorted(centres, low, "left")), int(np.searchsorted(centres, high, "right")))


def _lane_markings(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    centre = (np.abs(y) < 0.075) & (np.mod(x, 9.0) < 3.0)
    edges = np.abs(np.abs(y) - (ROAD_HALF_WIDTH - 2.6)) < 0.06  # between the lanes and the parking strips
    return centre | edges


# What tells some classes apart besides their colour, painted on their surfaces (surface =
# horizontal, vertical coordinate): a fence and a wall are otherwise the same box, and a traffic
# light a dark box like many others.
def _windows(shaded: np.ndarray, surface: np.ndarray, normal: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Darker window panes in a grid on building facades."""
    across = np.mod(surface[..., 0], 3.0) < 1.6
    up = (np.mod(surface[..., 1], 3.2) > 1.0) & (np.mod(surface[..., 1], 3.2) < 2.4)
    return shaded * np.where(across & up, 0.45, 1.0).astype(np.float32)[..., None]


def _boards(shaded: np.ndarray, surface: np.ndarray, normal: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Fences: vertical boards with dark gaps between them, where a wall's face is plain."""
    gaps = np.mod(surface[..., 0], 0.2) < 0.07
    return shaded * np.where(gaps, 0.4, 1.0).astype(np.float32)[..., None]


_LAMP_COLORS = np.array([(0.95, 0.12, 0.10), (0.95, 0.65, 0.10), (0.10, 0.80, 0.30)], np.float32)  # top to bottom
_LAMP_RADIUS = 0.12


def _lamps(shaded: np.ndarray, surface: np.ndarray, normal: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Traffic lights: red, amber and green lenses down the middle of each side face."""
    along_x = np.abs(normal[..., 0]) > 0.5  # the face looks along the road: its horizontal coordinate is y
    centre = np.where(along_x, (box[1] + box[4]) / 2, (box[0] + box[3]) / 2)
    side = np.abs(normal[..., 2]) < 0.5
    shaded = shaded.copy()
    for index, rgb in enumerate(_LAMP_COLORS):
        height = box[5] - 0.2 - 0.3 * index
        lens = side & ((surface[..., 0] - centre) ** 2 + (surface[..., 1] - height) ** 2 <= _LAMP_RADIUS**2)
        shaded[lens] = rgb
    return shaded


_PATTERNS = {CLASS["building"]: _windows, CLASS["fence"]: _boards, CLASS["traffic light"]: _lamps}


def _hit_box(origin: np.ndarray, rays: np.ndarray, box: np.ndarray):
    """Slab test; returns (t, normal, surface coordinates) with t = inf where the ray misses."""
    lower, upper = box[:3], box[3:]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / rays
        t0 = (lower - origin) * inverse
        t1 = (upper - origin) * inverse
    near = np.minimum(t0, t1)
    far = np.maximum(t0, t1)
    near = np.where(np.isnan(near), -np.inf, near)
    far = np.where(np.isnan(far), np.inf, far)
    entry = near.max(-1)
    exit_ = far.min(-1)
    hit = (entry <= exit_) & (entry > _NEAR)
    t = np.where(hit, entry, np.inf)
    axis = near.argmax(-1)
    normal = np.zeros(rays.shape, np.float64)
    np.put_along_axis(normal, axis[..., None], -np.sign(np.take_along_axis(rays, axis[..., None], -1)), -1)
    point = origin + np.where(hit, entry, 0.0)[..., None] * rays
    # Facade coordinates: along the face horizontally, and height (for windows and texture).
    horizontal = np.where(axis == 0, point[..., 1], point[..., 0])
    vertical = np.where(axis == 2, point[..., 1], point[..., 2])
    return t, normal, np.stack([horizontal, vertical], -1)


def _hit_cylinder(origin: np.ndarray, rays: np.ndarray, cylinder: np.ndarray):
    """Vertical cylinder with a top cap."""
    cx, cy, radius, z0, z1 = cylinder
    ox, oy = origin[0] - cx, origin[1] - cy
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    a = dx * dx + dy * dy
    b = 2 * (dx * ox + dy * oy)
    c = ox * ox + oy * oy - radius * radius
    discriminant = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(discriminant)) / (2 * a)
    z = origin[2] + t_side * dz
    side = (discriminant >= 0) & (t_side > _NEAR) & (z >= z0) & (z <= z1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_cap = (z1 - origin[2]) / dz
    cap_x, cap_y = ox + t_cap * dx, oy + t_cap * dy
    cap = (t_cap > _NEAR) & (cap_x * cap_x + cap_y * cap_y <= radius * radius)
    t = np.where(side, t_side, np.inf)
    t = np.where(cap & (t_cap < t), t_cap, t)
    point = origin + np.where(np.isfinite(t), t, 0.0)[..., None] * rays
    normal = np.stack([point[..., 0] - cx, point[..., 1] - cy, np.zeros_like(t)], -1) / radius
    normal[cap & (t == t_cap)] = (0.0, 0.0, 1.0)
    angle = np.arctan2(point[..., 1] - cy, point[..., 0] - cx) * radius
    return t, normal, np.stack([angle, point[..., 2]], -1)


def _hit_sphere(origin: np.ndarray, rays: np.ndarray, sphere: np.ndarray):
    centre, radius = sphere[:3], sphere[3]
    offset = origin - centre
    a = (rays * rays).sum(-1)
    b = 2 * (rays @ offset)
    c = offset @ offset - radius * radius
    discriminant = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(discriminant)) / (2 * a)
    hit = (discriminant >= 0) & (t > _NEAR)
    t = np.where(hit, t, np.inf)
    point = origin + np.where(hit, t, 0.0)[..., None] * rays
    normal = (point - centre) / radius
    return t, normal, np.stack([point[..., 0] + point[..., 1], point[..., 2]], -1)


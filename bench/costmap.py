"""Costmap update time per frame: one camera and three cameras at 1024x2048 (Cityscapes resolution).

Times what the node does per camera frame (``SemanticCostmap.update``: uint8 lookups on the mask,
a gather, a per-cell reduction, the layer write), what it does once per batch (``snapshot``: the
fusion of every camera's layer, plus filling the OccupancyGrid message), and, once per camera,
the lookup-table build. Masks are a street scene: road and sidewalks below the horizon, buildings
at the sides, cars standing on the road, sky. Usage:

    .venv/bin/python bench/costmap.py [--size 1024x2048] [--iterations 50] [--anchored] [--memory evidence] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from denseaspp_ros.cli import _size
from denseaspp_ros.costmap.fusion import MEMORIES
from denseaspp_ros.costmap import (
    CameraModel,
    CameraPose,
    CostmapSettings,
    Pose2D,
    SemanticCostmap,
    bird_eye_image,
    load_cost_table,
    project_pixels,
)
from denseaspp_ros.imageio import write_png
from denseaspp_ros.inference.benchmark import describe_machine
from denseaspp_ros.labels import CITYSCAPES

# Cityscapes' camera, scaled to the benchmark size; three cameras looking ahead, left and right.
CITYSCAPES_INTRINSICS = (2262.52, 2265.3, 1096.98, 513.14)
POSES = {
    "front": CameraPose(1.7, 0.1, 1.22, 0.0, 0.05, 0.0),
    "left": CameraPose(1.0, 0.9, 1.6, 0.0, 0.25, 1.5708),
    "right": CameraPose(1.0, -0.9, 1.6, 0.0, 0.25, -1.5708),
}


def street_mask(camera: CameraModel, pose: CameraPose, seed: int) -> np.ndarray:
    """A plausible class mask: classes by where each pixel meets the ground, plus car blocks."""
    index = {name: i for i, name in enumerate(CITYSCAPES.class_names)}
    u, v = np.meshgrid(np.arange(camera.width, dtype=float), np.arange(camera.height, dtype=float))
    ground = project_pixels(camera, pose, np.stack([u.ravel(), v.ravel()], 1)).reshape(camera.height, camera.width, 2)
    lateral = np.abs(ground[..., 1])
    mask = np.full((camera.height, camera.width), index["sky"], np.uint8)
    mask[lateral < 40] = index["building"]
    mask[lateral < 7] = index["sidewalk"]
    mask[lateral < 5] = index["road"]
    rng = np.random.default_rng(seed)
    for _ in range(6):  # cars: blocks standing on the lower half of the image
        bottom = int(rng.integers(camera.height // 2, camera.height))
        height = int(rng.integers(camera.height // 20, camera.height // 6))
        left = int(rng.integers(0, camera.width - camera.width // 8))
        mask[max(0, bottom - height) : bottom, left : left + camera.width // 10] = index["car"]
    return mask


def timed(function, iterations: int) -> np.ndarray:
    function()  # warm-up
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=_size, default=(1024, 2048), help="mask size HxW")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path, help="write the fused three-camera grid as a bird's-eye PNG")
    parser.add_argument("--memory", default="auto", choices=MEMORIES, help="costmap.memory (auto: evidence when --anchored)")
    parser.add_argument("--anchored", action="store_true",
                        help="the grid in odom (costmap.odometry_topic): each frame comes with a new vehicle pose")
    args = parser.parse_args()
    height, width = args.size
    full = CameraModel.from_intrinsics(CITYSCAPES_INTRINSICS, 2048, 1024)
    camera = full.scaled_to(width, height)
    table = load_cost_table(None, CITYSCAPES)
    rows = []
    for rule in ("max", "majority"):
        costmap = SemanticCostmap(table, CostmapSettings(rule=rule, memory=args.memory), anchored=args.anchored)
        masks = {}
        builds = {}
        for name, pose in POSES.items():
            costmap.set_camera(name, camera, pose)
            masks[name] = street_mask(camera, pose, seed=len(masks))
            start = time.perf_counter()
            costmap.projection(name, masks[name].shape)
            builds[name] = (time.perf_counter() - start) * 1000
        confidence = np.full((height, width), 200, np.uint8) if rule == "majority" else None
        stamp = iter(range(1, 10**9))

        def pose(now: float) -> Pose2D | None:
            """Driving at 8 m/s and turning slowly (10 Hz frames): the window scrolls every frame."""
            return Pose2D(0.8 * now, 0.05 * now, 0.01 * now) if args.anchored else None

        def one_camera() -> None:
            now = float(next(stamp))
            costmap.update("front", masks["front"], now, confidence, pose=pose(now))

        one = timed(one_camera, args.iterations)

        def three_cameras() -> None:
            now = float(next(stamp))
            for name in POSES:
                costmap.update(name, masks[name], now, confidence, pose=pose(now))
            costmap.snapshot().costs.tobytes()

        three = timed(three_cameras, args.iterations)
        fuse = timed(lambda: costmap.snapshot().costs.tobytes(), args.iterations)
        row = {
            "rule": rule,
            "anchored": args.anchored,
            "memory": args.memory,
            "size": f"{height}x{width}",
            "visible_cells_front": costmap.projection("front", (height, width)).visible_cells,
            "build_ms_front": builds["front"],
            "update_ms_p50": float(np.median(one)),
            "update_ms_p95": float(np.percentile(one, 95)),
            "three_cameras_ms_p50": float(np.median(three)),
            "three_cameras_ms_p95": float(np.percentile(three, 95)),
            "snapshot_ms_p50": float(np.median(fuse)),
        }
        rows.append(row)
        print(json.dumps(row))
    print(f"\ncostmap {costmap.grid.width}x{costmap.grid.height} cells of {costmap.grid.resolution} m, masks {height}x{width}; "
          f"machine: {describe_machine(__import__('torch').device('cpu'))}, {os.cpu_count()} cores")
    print(f"{'rule':>8} {'build ms':>9} {'1 camera p50':>13} {'p95':>7} {'3 cameras + fuse p50':>21} {'p95':>7} {'fuse p50':>9}")
    for r in rows:
        print(f"{r['rule']:>8} {r['build_ms_front']:9.0f} {r['update_ms_p50']:13.2f} {r['update_ms_p95']:7.2f} "
              f"{r['three_cameras_ms_p50']:21.2f} {r['three_cameras_ms_p95']:7.2f} {r['snapshot_ms_p50']:9.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.png:
        write_png(args.png, np.ascontiguousarray(bird_eye_image(costmap.snapshot())[..., ::-1]))  # RGB -> BGR


if __name__ == "__main__":
    main()

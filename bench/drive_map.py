"""Accuracy of the accumulated costmap over a whole synthetic drive, against its ground-truth map in
odom: with the true masks (the costmap alone) and with the demo weights' masks, anchored to
odometry or vehicle-centric, for each costmap memory. Usage:

    .venv/bin/python bench/drive_map.py [--frames 60] [--seed 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from denseaspp_ros.cli import _size
from denseaspp_ros.costmap import CostmapSettings, load_cost_table
from denseaspp_ros.eval.map_accuracy import drive_map_accuracy
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.synth.drive import DriveConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7, help="the demo's drive (the demo weights never saw it)")
    parser.add_argument("--size", type=_size, default=(256, 512))
    parser.add_argument("--decay-time", type=float, default=30.0, help="costmap.decay_time of the anchored runs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    config = DriveConfig(frames=args.frames, seed=args.seed, size=args.size)
    table = load_cost_table(None, CITYSCAPES)
    engine = load_engine("demo", backend=BackendSettings(backend="auto"), input_size=args.size, log=lambda m: None)

    def network(rgb):
        return engine.segment([rgb])[0].train_ids

    rows = []
    for masks, segment in (("true", None), ("demo weights", network)):
        for anchored, memory, decay in ((True, "latest", args.decay_time), (True, "evidence", args.decay_time),
                                        (False, "latest", 1.0)):
            settings = CostmapSettings(grid=config.grid, decay_time=decay, memory=memory)
            result = drive_map_accuracy(config, table, settings, anchored=anchored, masks=segment)
            row = {"masks": masks, "odometry": anchored, "memory": memory, "decay_time": decay,
                   "final": result["final"], "mean": result["mean"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.frames} frames, seed {args.seed}, {args.size[0]}x{args.size[1]}, grid {config.grid.length_x:g}x"
          f"{config.grid.length_y:g} m of {config.grid.resolution} m")
    print(f"{'masks':>13} {'odometry':>8} {'memory':>8} {'decay s':>7} {'free IoU':>9} {'lethal IoU':>10} "
          f"{'contacts':>8} {'stray':>6} {'known':>6}   (final map; mean over the drive in brackets)")
    for r in rows:
        f, m = r["final"], r["mean"]
        print(f"{r['masks']:>13} {str(r['odometry']):>8} {r['memory']:>8} {r['decay_time']:7.0f} "
              f"{100 * f['free_iou']:5.1f} ({100 * m['free_iou']:4.1f}) {100 * f['lethal_iou']:5.1f} ({100 * m['lethal_iou']:4.1f}) "
              f"{100 * f['contact_recall']:5.1f} ({100 * m['contact_recall']:4.1f}) {f['stray_lethal']:4d} ({m['stray_lethal']:5.1f}) "
              f"{100 * f['known_fraction']:4.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Accuracy of the accumulated costmap over a whole synthetic drive, against its ground-truth map in
odom: with the true masks (the costmap alone) and with the demo weights' masks, anchored to
odometry or vehicle-centric, for each costmap memory, and with odometry that drifts. Usage:

    .venv/bin/python bench/drive_map.py [--frames 60] [--seed 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
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
    parser.add_argument("--drift", type=float, default=0.0005, help="odometry heading error per metre of the drifting rows, rad")
    parser.add_argument("--noise", type=float, default=0.02, help="odometry position jitter of the drifting rows, m")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exact = DriveConfig(frames=args.frames, seed=args.seed, size=args.size)
    drifting = replace(exact, odometry_drift=args.drift, odometry_noise=args.noise)
    table = load_cost_table(None, CITYSCAPES)
    engine = load_engine("demo", backend=BackendSettings(backend="auto"), input_size=args.size, log=lambda m: None)

    def network(rgb):
        return engine.segment([rgb])[0].train_ids

    # (odometry, memory): the defaults anchored (auto = evidence) and vehicle-centric (auto = latest, 1 s).
    runs = (("exact", "auto"), ("exact", "latest"), ("drifting", "auto"), ("none", "auto"))
    rows = []
    for masks, segment in (("true", None), ("demo weights", network)):
        for odometry, memory in runs:
            config = drifting if odometry == "drifting" else exact
            settings = CostmapSettings(grid=config.grid, memory=memory)
            result = drive_map_accuracy(config, table, settings, anchored=odometry != "none", masks=segment)
            row = {"masks": masks, "odometry": odometry, "memory": memory, **{k: result[k] for k in ("final", "mean", "accumulated")}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.frames} frames, seed {args.seed}, {args.size[0]}x{args.size[1]}, grid {exact.grid.length_x:g}x"
          f"{exact.grid.length_y:g} m of {exact.grid.resolution} m; drifting odometry: {args.drift} rad/m, {args.noise} m jitter")
    print(f"{'masks':>13} {'odometry':>8} {'memory':>7} {'free IoU':>9} {'lethal IoU':>10} {'contacts':>8} {'stray':>6}"
          "   (the map accumulated over the drive; mean of the windows over the drive in brackets)")
    for r in rows:
        a, m = r["accumulated"], r["mean"]
        print(f"{r['masks']:>13} {r['odometry']:>8} {r['memory']:>7} "
              f"{100 * a['free_iou']:5.1f} ({100 * m['free_iou']:4.1f}) {100 * a['lethal_iou']:5.1f} ({100 * m['lethal_iou']:4.1f}) "
              f"{100 * a['contact_recall']:5.1f} ({100 * m['contact_recall']:4.1f}) {a['stray_lethal']:4d} ({m['stray_lethal']:5.1f})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""What the camera health monitor costs per frame, and whether it raises alarms on clean drives.

    .venv/bin/python bench/camera_health.py [--seeds 7 1000 818181] [--frames 60]

Prints the median time of one ``CameraHealthMonitor.observe`` on a 1024x2048 frame of a moving
drive, clean and with mud on the lens (with the no-free pixel mask the node then builds; the node
calls both once per frame, on the worker thread), and the frames in DEGRADED or FAULT over moving
synthetic drives of seeds the demo weights never trained on (10 Hz, 256x512).
"""

from __future__ import annotations

import argparse

import numpy as np
from tqdm import tqdm

from denseaspp_ros.inference.benchmark import median_milliseconds
from denseaspp_ros.serving.camera_health import CameraHealthMonitor, State
from denseaspp_ros.synth.drive import DriveConfig, drive
from denseaspp_ros.synth.faults import Fault, FaultInjector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 1000, 818181])
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    # Two frames of a moving 1024x2048 drive, alternated (the tiles see motion), and the same two
    # with mud over part of the lens (suspect tiles: the pixel mask they withhold is made too).
    drive_frames = [item.frame.rgb for item in drive(DriveConfig(frames=2, seed=818181, size=(1024, 2048)))]
    muddy = [FaultInjector((Fault("blockage", 0.0, 1.0),), 818181, (1024, 2048)).deliver(rgb, 0, 0.0).rgb for rgb in drive_frames]
    for name, frames in (("moving drive", drive_frames), ("with mud on the lens, and its no-free pixel mask", muddy)):
        monitor, count = CameraHealthMonitor(), [0]

        def observe(frames=frames, monitor=monitor, count=count) -> None:
            count[0] += 1
            verdict = monitor.observe(frames[count[0] % 2], count[0] * 100_000_000)
            verdict.no_free((1024, 2048))

        print(f"observe on a 1024x2048 frame, {name}: {median_milliseconds(observe, 50):.2f} ms (median of 50)")
    print("| seed | frames | DEGRADED | FAULT |\n| ---: | ---: | ---: | ---: |")
    for seed in args.seeds:
        monitor = CameraHealthMonitor()
        states = [
            monitor.observe(item.frame.rgb, (index + 1) * 100_000_000).state
            for index, item in enumerate(tqdm(drive(DriveConfig(frames=args.frames, seed=seed, size=(256, 512))),
                                              total=args.frames, desc=f"seed {seed}", leave=False))
        ]
        print(f"| {seed} | {len(states)} | {states.count(State.DEGRADED)} | {states.count(State.FAULT)} |")


if __name__ == "__main__":
    main()

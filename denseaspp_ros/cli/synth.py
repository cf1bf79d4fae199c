"""``denseaspp synth``: render a synthetic street drive into a Cityscapes-layout folder and/or a bag."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import DenseASPPError
from ..synth.faults import KINDS as FAULT_KINDS
from ..synth.faults import Fault, parse_faults
from .arguments import _count, _size


def _faults(text: str) -> tuple[Fault, ...]:
    try:
        return parse_faults(text)
    except DenseASPPError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(commands) -> None:
    synth = commands.add_parser("synth", help="render a synthetic street drive: Cityscapes-layout folder and/or bag")
    synth.add_argument("--output", type=Path, help="Cityscapes-layout folder (leftImg8bit/, gtFine/, bev/, camera.yaml)")
    synth.add_argument("--bag", type=Path, help="also (or only) write a ROS 2 bag into this new folder")
    synth.add_argument("--frames", type=_count(1), default=50)
    synth.add_argument("--seed", type=_count(0), default=0, help="the scene: same seed, same frames")
    synth.add_argument("--size", type=_size, default=(256, 512), help="image size HxW")
    synth.add_argument("--split", default="train", help="Cityscapes split folder name (train, val, ...)")
    synth.add_argument("--fps", type=float, default=10.0, help="frames per second of the drive")
    synth.add_argument("--speed", type=float, default=8.0, help="ego speed in m/s")
    synth.add_argument("--odometry-noise", type=float, default=0.0, help="/odom position jitter, standard deviation in m")
    synth.add_argument("--odometry-drift", type=float, default=0.0, help="/odom heading error per metre driven, rad")
    synth.add_argument(
        "--faults", type=_faults, default=(), metavar="SPEC",
        help="camera faults over intervals of the drive, KIND@START-END in seconds, comma-separated "
        f"(e.g. glare@3-6,frozen@4.5-7.5); kinds: {', '.join(FAULT_KINDS)}; their truth goes to /ground_truth/faults",
    )
    synth.add_argument("--compressed", action="store_true", help="JPEG CompressedImage in the bag instead of rgb8 Image")
    synth.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage format")
    synth.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from ..synth.drive import DriveConfig
    from ..synth.outputs import write_drive

    if args.output is None and args.bag is None:
        raise DenseASPPError("nothing to write: give --output DIR (Cityscapes layout), --bag PATH, or both")
    config = DriveConfig(
        frames=args.frames, seed=args.seed, size=args.size, fps=args.fps, speed=args.speed,
        odometry_noise=args.odometry_noise, odometry_drift=args.odometry_drift, faults=args.faults,
    )
    start = time.perf_counter()
    count = write_drive(config, args.output, args.split, args.bag, args.compressed, args.storage)
    elapsed = time.perf_counter() - start
    where = " and ".join(str(path) for path in (args.output, args.bag) if path is not None)
    print(f"rendered {count} frames of seed {args.seed} at {args.size[0]}x{args.size[1]} in {elapsed:.1f} s "
          f"({count / elapsed:.1f} frames/s) into {where}")
    return 0

"""Measure the demo weights' uncertainty band on their validation drives, and store it with them.

    .venv/bin/python bench/uncertainty_band.py [--frames 60] [--write]

The band is the 1st and 99th percentile, over the frames of the weights' validation seeds (their
record's ``validation_seeds``, moving drives at 10 Hz, 256x512, the network at the input size the
weights declare), of each frame's low-confidence share and mean normalised entropy
(``inference.Uncertainty``). ``--write`` puts it into the weights' record beside the file, where
``uncertainty_band_of`` finds it for the camera health monitor's network self-check. Printed
beside it: the same figures under each synthetic camera fault, on the first validation seed.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from tqdm import tqdm

from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.inference.segmenter import LOW_CONFIDENCE
from denseaspp_ros.model import DEMO_WEIGHTS
from denseaspp_ros.synth.drive import DriveConfig, drive
from denseaspp_ros.synth.faults import KINDS, Fault, FaultInjector

SIZE = (256, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--write", action="store_true", help="store the band in the demo weights' record")
    args = parser.parse_args()
    record = DEMO_WEIGHTS.record()
    seeds = record["training"]["validation_seeds"]
    engine = load_engine(DEMO_WEIGHTS.name, backend=BackendSettings(backend="auto"), log=lambda m: None)
    figures, first_drive = [], None
    for seed in seeds:
        frames = [item.frame.rgb for item in tqdm(drive(DriveConfig(frames=args.frames, seed=seed, size=SIZE)),
                                                  total=args.frames, desc=f"seed {seed}", leave=False)]
        first_drive = first_drive or frames
        for rgb in frames:
            uncertainty = engine.segment([rgb])[0].uncertainty
            figures.append((uncertainty.low_confidence_share, uncertainty.mean_entropy))
    values = np.array(figures)
    band = {
        "low_confidence_share": [round(float(v), 5) for v in np.percentile(values[:, 0], [1, 99])],
        "mean_entropy": [round(float(v), 5) for v in np.percentile(values[:, 1], [1, 99])],
        "low_confidence_level": LOW_CONFIDENCE,
        "measured_on": f"validation seeds {seeds}, {args.frames} frames each at 10 Hz, {SIZE[0]}x{SIZE[1]} images, "
                       f"network input {engine.input_size[0]}x{engine.input_size[1]}, bench/uncertainty_band.py",
    }
    print(json.dumps(band, indent=1))
    print(f"clean frames: entropy max {values[:, 1].max():.4f}, low-confidence share max {values[:, 0].max():.4f}")
    print("| fault | low-confidence share (median) | mean entropy (10th pct, median) | median entropy / band top |")
    print("| --- | ---: | ---: | ---: |")
    for kind in KINDS[:6]:
        injector = FaultInjector((Fault(kind, 0.0, 1e9),), seeds[0], SIZE)
        faulty = np.array([
            (lambda u: (u.low_confidence_share, u.mean_entropy))(engine.segment([injector.deliver(rgb, 0, 1.0).rgb])[0].uncertainty)
            for rgb in first_drive[::3]
        ])
        entropy = np.percentile(faulty[:, 1], [10, 50])
        print(f"| {kind} | {np.median(faulty[:, 0]):.4f} | {entropy[0]:.4f}, {entropy[1]:.4f} | {entropy[1] / band['mean_entropy'][1]:.2f} |")
    if args.write:
        record["uncertainty_band"] = band
        DEMO_WEIGHTS.record_path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"written into {DEMO_WEIGHTS.record_path}")


if __name__ == "__main__":
    main()

"""Every camera fault over held-out drives: what reaches the costmap with camera health and without.

    .venv/bin/python bench/camera_faults.py [--seeds 2000 2001 2002 2003 2004] [--frames 100] [--json out.json]

Each seed is a 10 s moving drive (10 Hz, 256x512 images, the demo network at its own input size of
384x768, where its uncertainty band was measured) the demo weights never trained on; each fault
kind is held from 3.5 s to 6.5 s. For the true masks and the demo weights' masks, every drive runs
twice on the same delivered frames: as main ran before camera health (``baseline``: no monitor, no
shadow rule) and as it runs now (``health``). Printed per kind: dangerous free cells per frame
during and after the fault, beside the same drive without the fault; the frames the monitor took
to leave OK and to reach FAULT; the frames it took to clear. Then the clean drives: frames in
DEGRADED or FAULT, free IoU and contact recall (mean over the published grids).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from denseaspp_ros.costmap import CostmapSettings, load_cost_table
from denseaspp_ros.eval.fault_drive import RenderedDrive, fault_report, run_fault_drive, window_mean
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.serving.camera_health import State
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.faults import KINDS, Fault

START, END = 3.5, 6.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2000, 2001, 2002, 2003, 2004])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--masks", nargs="+", default=["true", "demo"], choices=("true", "demo"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    table = load_cost_table(None, CITYSCAPES)
    engine = load_engine("demo", backend=BackendSettings(backend="auto"), log=lambda m: None)  # its own input size, as its band

    def demo(rgb: np.ndarray):
        result = engine.segment([rgb])[0]
        return result.train_ids, result.uncertainty

    sources = {"true": None, "demo": demo}
    rows, clean_rows = [], []
    runs = [(seed, masks) for seed in args.seeds for masks in args.masks]
    for seed, masks in tqdm(runs, desc="drives", unit="drive"):
        config = DriveConfig(frames=args.frames, seed=seed)
        rendered = RenderedDrive.render(config)
        settings = CostmapSettings(grid=config.grid)
        cache: dict = {}
        first, last = round(START * config.fps), round(END * config.fps)
        clean = {}
        for protected in (False, True):
            outcomes = run_fault_drive(rendered, (), table, settings, sources[masks], protected, mask_cache=cache,
                                       band=engine.uncertainty_band)
            clean[protected] = outcomes
            states = [o.state for o in outcomes]
            clean_rows.append({
                "seed": seed, "masks": masks, "run": "health" if protected else "baseline",
                "fault_frames": states.count(State.FAULT), "degraded_frames": states.count(State.DEGRADED),
                "free_iou": _mean(o.score.free_iou for o in outcomes), "contact_recall": _mean(o.score.contact_recall for o in outcomes),
                "dangerous": window_mean(outcomes, 0, len(outcomes)),
            })
        for kind in tqdm(args.kinds, desc=f"seed {seed} {masks}", leave=False):
            for protected in (False, True):
                outcomes = run_fault_drive(rendered, (Fault(kind, START, END),), table, settings, sources[masks], protected,
                                           mask_cache=cache, band=engine.uncertainty_band)
                summary = fault_report(outcomes)["kinds"][kind]
                rows.append({
                    "seed": seed, "masks": masks, "kind": kind, "run": "health" if protected else "baseline",
                    "detected_after": summary["detected_after_frames"][0], "fault_after": summary["fault_after_frames"][0],
                    "cleared_after": summary["cleared_after_frames"][0], "dangerous_during": summary["dangerous_free_per_frame"],
                    "dangerous_after": summary["dangerous_free_after_per_frame"] or 0.0, "dangerous_max": summary["dangerous_free_max"],
                    "clean_during": window_mean(clean[protected], first, last),
                    "clean_after": window_mean(clean[protected], last, len(outcomes)),
                })
    report(rows, clean_rows, args)
    if args.json:
        args.json.write_text(json.dumps({"faults": rows, "clean": clean_rows}, indent=1))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def report(rows: list[dict], clean_rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\nseeds {args.seeds}, {args.frames} frames at 10 Hz, 256x512, each fault {START}-{END} s; dangerous free cells "
          "per frame, mean over the seeds (worst seed's frame in brackets); detection and clearing in frames, worst seed")
    print("| masks | fault | run | during | clean drive, same frames | after | clean, after | max | left OK after | FAULT after | cleared after |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for masks in args.masks:
        for kind in args.kinds:
            for run in ("baseline", "health"):
                group = [r for r in rows if r["masks"] == masks and r["kind"] == kind and r["run"] == run]
                if not group:
                    continue
                worst = lambda name: _worst([r[name] for r in group])  # noqa: E731
                print(f"| {masks} | {kind} | {run} | {np.mean([r['dangerous_during'] for r in group]):.2f} | "
                      f"{np.mean([r['clean_during'] for r in group]):.2f} | {np.mean([r['dangerous_after'] for r in group]):.2f} | "
                      f"{np.mean([r['clean_after'] for r in group]):.2f} | {max(r['dangerous_max'] for r in group)} | "
                      + (f"{worst('detected_after')} | {worst('fault_after')} | {worst('cleared_after')} |" if run == "health" else "- | - | - |"))
    print("\nclean drives (no fault): frames judged DEGRADED / FAULT, mean free IoU and contact recall of the published grids")
    print("| masks | run | frames | DEGRADED | FAULT | free IoU | contact recall | dangerous/frame |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for masks in args.masks:
        for run in ("baseline", "health"):
            group = [r for r in clean_rows if r["masks"] == masks and r["run"] == run]
            frames = len(group) * args.frames
            print(f"| {masks} | {run} | {frames} | {sum(r['degraded_frames'] for r in group)} | {sum(r['fault_frames'] for r in group)} | "
                  f"{100 * np.mean([r['free_iou'] for r in group]):.2f} | {100 * np.mean([r['contact_recall'] for r in group]):.2f} | "
                  f"{np.mean([r['dangerous'] for r in group]):.2f} |")


def _worst(values: list) -> str:
    if any(v is None for v in values):
        return "never"
    return str(max(values))


if __name__ == "__main__":
    main()

"""The GPU figures in one command: ``make gpu-check`` (or ``bench/gpu_check.py --output DIR``).

On a CUDA machine it measures, within a time budget (8 minutes by default, rows beyond it are
listed as skipped): DenseASPP161 and MobileNetDenseASPP at 1024x2048 and 512x1024, batch 1 and 3,
fp32/fp16/bf16, eager and compiled (torch.compile with CUDA graphs), the raw forward beside the
whole engine path, peak GPU memory, how many pixels fp16 and bf16 masks share with fp32 ones,
ONNX Runtime's CUDA and TensorRT providers where the installed onnxruntime has them, and the
node with 3 cameras x 1024x2048 at 30 Hz where rclpy is installed. It writes gpu.json and gpu.md.

Without CUDA it says so in both files and exits 0; ``--smoke`` runs the same code at toy sizes on
the CPU, which is how the tests keep it working.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from denseaspp_ros.cli import _size
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.inference.benchmark import Contender, describe_machine, run_benchmarks
from denseaspp_ros.inference.calibration import calibration_frames

MODELS = ("DenseASPP161", "MobileNetDenseASPP")
SIZES = ((1024, 2048), (512, 1024))
BATCHES = (1, 3)
PRECISIONS = ("fp32", "fp16", "bf16")
GOALS = {  # images/s at 1024x2048, fp16, batch 1 (the goals on an H100/H200)
    "DenseASPP161": 100.0,
    "MobileNetDenseASPP": 500.0,
}


class Budget:
    """Rows run while time is left; the others are recorded as skipped, not silently dropped."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def engine(model: str, device: str, precision: str, batch: int, compile_mode: str = "none", backend: str = "torch",
           providers: tuple[str, ...] = ("CPUExecutionProvider",)):
    return load_engine(
        None, model, allow_untrained=True, warn=lambda _: None, log=lambda _: None, device=device, precision=precision,
        max_batch=batch, backend=BackendSettings(backend=backend, compile=compile_mode, providers=providers),
    )


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def timing_rows(args: argparse.Namespace, budget: Budget, device: str) -> tuple[list[dict], list[str]]:
    rows, skipped = [], []
    for model in args.models:
        for size in args.sizes:
            for batch in args.batches:
                for precision in args.precisions:
                    for compile_mode in args.compile_modes:
                        label = f"{model} {size[0]}x{size[1]} batch {batch} {precision} {compile_mode}"
                        if budget.left() < 20:
                            skipped.append(label)
                            continue
                        if torch.cuda.is_available():
                            torch.cuda.reset_peak_memory_stats()
                        try:
                            segmenter = engine(model, device, precision, batch, compile_mode)
                            table = run_benchmarks([Contender.of(segmenter)], model, size, batch, args.warmup, args.iterations)
                        except Exception as error:  # one failing combination must not lose the others' figures
                            skipped.append(f"{label}: {type(error).__name__}: {error}")
                            continue
                        raw, full = table.rows
                        rows.append({
                            "model": model, "size": list(size), "batch": batch, "precision": precision, "compile": compile_mode,
                            "raw_images_per_s": raw.images_per_s, "engine_images_per_s": full.images_per_s,
                            "engine_share": full.images_per_s / raw.images_per_s, "engine_p50_ms": full.p50_ms,
                            "engine_p95_ms": full.p95_ms, "peak_memory_mb": peak_memory_mb(segmenter.device),
                        })
                        print(json.dumps(rows[-1]), flush=True)
                        del segmenter
    return rows, skipped


def agreement_rows(args: argparse.Namespace, device: str) -> list[dict]:
    """Share of pixels whose class fp16/bf16 keep from fp32, on real frames, same random weights."""
    rows = []
    for model in args.models:
        size = args.sizes[-1]
        frames = calibration_frames(None, 2, size)
        torch.manual_seed(0)
        reference = [r.train_ids for r in engine(model, device, "fp32", 1).segment(frames)]
        for precision in args.precisions:
            if precision == "fp32":
                continue
            torch.manual_seed(0)  # the same random weights
            try:
                masks = [r.train_ids for r in engine(model, device, precision, 1).segment(frames)]
            except Exception as error:
                rows.append({"model": model, "precision": precision, "skipped": str(error)})
                continue
            share = float(np.mean([np.mean(a == b) for a, b in zip(masks, reference)]))
            rows.append({"model": model, "size": list(size), "precision": precision, "agreement_with_fp32": share})
    return rows


def onnxruntime_rows(args: argparse.Namespace, budget: Budget) -> list[dict]:
    if importlib.util.find_spec("onnxruntime") is None:
        return [{"skipped": "onnxruntime is not installed (pip install 'denseaspp_ros[onnx]' or onnxruntime-gpu)"}]
    import onnxruntime

    available = onnxruntime.get_available_providers()
    rows = []
    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        if provider not in available:
            rows.append({"provider": provider, "skipped": f"not in this onnxruntime ({', '.join(available)})"})
            continue
        if budget.left() < 60:
            rows.append({"provider": provider, "skipped": "out of time"})
            continue
        model, size = args.models[-1], args.sizes[-1]
        try:
            segmenter = engine(model, "cpu", "fp32", 1, backend="onnxruntime", providers=(provider, "CPUExecutionProvider"))
            table = run_benchmarks([Contender.of(segmenter)], model, size, 1, args.warmup, args.iterations)
            raw, full = table.rows
            rows.append({"provider": provider, "model": model, "size": list(size), "raw_images_per_s": raw.images_per_s,
                         "engine_images_per_s": full.images_per_s})
        except Exception as error:
            rows.append({"provider": provider, "skipped": f"{type(error).__name__}: {error}"})
    return rows


def node_row(args: argparse.Namespace, budget: Budget, output: Path) -> dict:
    if importlib.util.find_spec("rclpy") is None:
        return {"skipped": "rclpy is not installed here (the ros-* wheels for this Python can be carried as wheels)"}
    seconds = min(budget.left() - 10, 180)
    if seconds < 60:
        return {"skipped": "out of time"}
    script = Path(__file__).resolve().parent / "node_throughput.py"
    size = args.sizes[0]
    command = [sys.executable, str(script), "--model", args.models[0], "--size", f"{size[0]}x{size[1]}",
               "--camera-counts", "3", "--fixed-rate", "30", "--saturation-rate", "30", "--duration", "10",
               "--backend", "torch", "--device", args.device, "--json", str(output / "node.json")]
    try:
        subprocess.run(command, timeout=seconds, check=True, capture_output=True, text=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as error:
        return {"skipped": f"node run failed: {error}"}
    return {"rows": json.loads((output / "node.json").read_text())}


def markdown(report: dict) -> str:
    lines = [f"# GPU check\n\nmachine: {report['machine']}; torch {report['torch']}\n"]
    if not report["cuda"]:
        lines.append(f"CUDA: not available, {report['note']}\n")
    lines.append("| model | size | batch | precision | compile | raw img/s | engine img/s | engine/raw | p95 ms | peak MB |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report["timings"]:
        memory = "" if r["peak_memory_mb"] is None else f"{r['peak_memory_mb']:.0f}"
        lines.append(
            f"| {r['model']} | {r['size'][0]}x{r['size'][1]} | {r['batch']} | {r['precision']} | {r['compile']} | "
            f"{r['raw_images_per_s']:.1f} | {r['engine_images_per_s']:.1f} | {100 * r['engine_share']:.1f}% | "
            f"{r['engine_p95_ms']:.1f} | {memory} |"
        )
    for title, key in (("Masks against fp32", "agreement"), ("ONNX Runtime providers", "onnxruntime"), ("Goals", "goals")):
        lines.append(f"\n## {title}\n\n```\n{json.dumps(report[key], indent=1)}\n```")
    lines.append(f"\n## Node\n\n```\n{json.dumps(report['node'], indent=1)}\n```")
    if report["skipped"]:
        lines.append("\n## Skipped (time budget or errors)\n\n" + "\n".join(f"- {s}" for s in report["skipped"]))
    return "\n".join(lines) + "\n"


def goals(timings: list[dict]) -> dict:
    met = {}
    for model, goal in GOALS.items():
        best = max((r["engine_images_per_s"] for r in timings if r["model"] == model and r["size"] == [1024, 2048]
                    and r["batch"] == 1 and r["precision"] == "fp16"), default=None)
        met[model] = {"goal_images_per_s": goal, "best_fp16_batch1": best, "met": best is not None and best >= goal}
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check")
    parser.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: checks the script itself")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    args.device = "cuda" if cuda else "cpu"
    args.models, args.sizes, args.batches = MODELS, SIZES, BATCHES
    args.precisions, args.compile_modes = PRECISIONS, ("none", "reduce-overhead")
    report = {"cuda": cuda, "machine": describe_machine(torch.device(args.device)), "torch": torch.__version__,
              "timings": [], "agreement": [], "onnxruntime": [], "node": {}, "skipped": [], "note": ""}
    if args.smoke:
        args.models, args.sizes, args.batches = ("MobileNetDenseASPP",), ((32, 64),), (1,)
        args.precisions, args.compile_modes = ("fp32",), ("none",)
        args.iterations, args.warmup = 2, 1
        report["note"] = "--smoke: toy sizes on the CPU"
    elif not cuda:
        report["note"] = "nothing measured (run this on a CUDA machine)"
        report["skipped"] = ["every GPU measurement: no CUDA device"]
    if cuda or args.smoke:
        budget = Budget(args.budget)
        report["timings"], report["skipped"] = timing_rows(args, budget, args.device)
        report["agreement"] = agreement_rows(args, args.device)
        report["onnxruntime"] = onnxruntime_rows(args, budget) if cuda else [{"skipped": "no CUDA device"}]
        report["node"] = node_row(args, budget, args.output) if cuda else {"skipped": "no CUDA device"}
    report["goals"] = goals(report["timings"])
    (args.output / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output / "gpu.md").write_text(markdown(report))
    print(f"wrote {args.output / 'gpu.json'} and {args.output / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

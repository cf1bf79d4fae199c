"""An evaluation's results as files: report.json (with the raw confusion counts, so shards merge
exactly), report.md, confusion.png (row-normalised heatmap) and per_class_iou.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write
from ..errors import DenseASPPError
from ..labels import LabelSet
from .metrics import ConfusionMatrix
from .timing import LatencySummary

REPORT = "report.json"


def _finite(value: float | None) -> float | None:
    """A metric for JSON: NaN (no pixel of the class anywhere) becomes null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def format_percent(value: float | None) -> str:
    """A fraction for people: "53.12%", or "n/a" where the metric is undefined."""
    return "n/a" if value is None else f"{100 * value:.2f}%"


def format_number(value: float | None) -> str:
    """A measured figure for people: "12.3", or "n/a" where nothing was measured."""
    return "n/a" if value is None else f"{value:.1f}"


def build_report(matrix: ConfusionMatrix, label_set: LabelSet, **details: Any) -> dict[str, Any]:
    """Metrics of ``matrix`` plus whatever describes the run (frames, timing, model, ...)."""
    iou = matrix.iou()
    report = {
        "miou": _finite(matrix.miou()),
        "per_class": {name: _finite(value) for name, value in zip(label_set.class_names, iou.tolist())},
        "pixel_accuracy": _finite(matrix.pixel_accuracy()),
        "mean_class_accuracy": _finite(matrix.mean_class_accuracy()),
        "label_set": label_set.name,
        **details,
        "confusion": matrix.counts.tolist(),
    }
    if label_set.categories is not None:
        report["category_iou"] = {k: _finite(v) for k, v in matrix.category_iou(label_set.categories).items()}
    return report


def timing(seconds: list[float]) -> dict[str, float | None]:
    """Latency percentiles of frames processed one after another, and the frame rate they add up to."""
    rate = float(len(seconds) / np.sum(seconds)) if seconds else None
    return {**LatencySummary.of(seconds).fields(), "frames_per_second": rate}


def write_report(report: dict[str, Any], label_set: LabelSet, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    atomic_write(output / REPORT, lambda target: Path(target).write_text(text))
    markdown = _markdown(report)
    atomic_write(output / "report.md", lambda target: Path(target).write_text(markdown))
    counts = np.array(report["confusion"], np.int64)
    _plot_confusion(counts, label_set, output / "confusion.png")
    _plot_per_class(report, output / "per_class_iou.png")


def read_report(path: Path) -> dict[str, Any]:
    file = path / REPORT if path.is_dir() else path
    try:
        report = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DenseASPPError(f"cannot read evaluation report {file}: {error}") from None
    if "confusion" not in report:
        raise DenseASPPError(f"{file} has no confusion counts to merge")
    return report


def merge_reports(reports: list[dict[str, Any]], label_set: LabelSet) -> dict[str, Any]:
    """One report from shards: confusion counts and frame counts add up exactly."""
    matrix = ConfusionMatrix(label_set.num_classes)
    for report in reports:
        counts = np.array(report["confusion"], np.int64)
        if counts.shape != matrix.counts.shape or report.get("label_set") != label_set.name:
            raise DenseASPPError(f"cannot merge a {report.get('label_set')} report of shape {counts.shape}")
        matrix.counts += counts
    summed = {
        key: sum(report.get(key, 0) for report in reports)
        for key in ("frames_evaluated", "frames_unmatched_images", "frames_unmatched_labels", "frames_corrupt",
                    "frames_duplicate_stamps")
    }
    first = reports[0]
    return build_report(
        matrix, label_set, **summed, complete=all(r.get("complete", False) for r in reports),
        shards=len(reports), model=first.get("model"), weights=first.get("weights"), device=first.get("device"),
        precision=first.get("precision"),
    )


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Evaluation", ""]
    if report.get("summary"):
        lines += ["```", *report["summary"], "```", ""]
    if report.get("pictures"):
        lines += [f"- [{name}]({name}): {caption}" for name, caption in report["pictures"].items()] + [""]
    lines += [
        f"- mIoU: **{format_percent(report['miou'])}** (Cityscapes convention: one confusion matrix, ignore pixels"
        " excluded, classes absent from ground truth and prediction left out)",
        f"- pixel accuracy: {format_percent(report['pixel_accuracy'])}, "
        f"mean class accuracy: {format_percent(report['mean_class_accuracy'])}",
    ]
    for key in ("frames_evaluated", "frames_unmatched_images", "frames_unmatched_labels", "frames_corrupt",
                "frames_duplicate_stamps", "complete",
                "model", "weights", "device", "precision", "frames_per_second", "latency_ms_p50", "latency_ms_p95",
                "latency_ms_p99"):
        if key in report:
            lines.append(f"- {key.replace('_', ' ')}: {report[key]}")
    lines += ["", "| class | IoU |", "| --- | ---: |"]
    lines += [f"| {name} | {format_percent(value)} |" for name, value in report["per_class"].items()]
    if "category_iou" in report:
        lines += ["", "| category | IoU |", "| --- | ---: |"]
        lines += [f"| {name} | {format_percent(value)} |" for name, value in report["category_iou"].items()]
    for problem in report.get("problems", []):
        lines.append(f"\n> {problem}")
    return "\n".join(lines) + "\n"


def pyplot():
    """matplotlib's pyplot on the Agg backend: reports are files, never windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, dpi: int = 100) -> None:
    """Write ``figure`` as a PNG atomically, then free it (pyplot keeps every open figure)."""
    atomic_write(path, lambda target: figure.savefig(target, format="png", dpi=dpi))
    pyplot().close(figure)


def _plot_confusion(counts: np.ndarray, label_set: LabelSet, path: Path) -> None:
    plt = pyplot()
    rows = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = max(6.0, 0.4 * len(label_set.class_names))
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(normalised, cmap="viridis", vmin=0, vmax=1)
    ticks = range(len(label_set.class_names))
    axis.set_xticks(ticks, label_set.class_names, rotation=90)
    axis.set_yticks(ticks, label_set.class_names)
    axis.set(xlabel="prediction", ylabel="ground truth", title="confusion matrix (each row sums to 1)")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    save_figure(figure, path)


def _plot_per_class(report: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    names = list(report["per_class"])
    values = [np.nan if v is None else v for v in report["per_class"].values()]
    figure, axis = plt.subplots(figsize=(max(6, 0.45 * len(names)), 4))
    axis.bar(range(len(names)), np.nan_to_num(values), color="tab:blue")
    axis.set_xticks(range(len(names)), names, rotation=90)
    miou = report["miou"]
    if miou is not None:
        axis.axhline(miou, color="tab:red", linestyle="--", label=f"mIoU {100 * miou:.1f}%")
        axis.legend()
    axis.set(ylim=(0, 1), ylabel="IoU", title="per-class IoU (classes without a bar: absent)")
    figure.tight_layout()
    save_figure(figure, path)

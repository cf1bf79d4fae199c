"""One confusion matrix over a whole run, and the metrics the official Cityscapes evaluation reports.

Dataset-level convention (not a mean of per-image IoUs): every pixel of every image adds to one
matrix; ground-truth pixels labelled ignore (255) do not count, whatever was predicted there; a
class with no pixel in the ground truth and none predicted has no IoU and is left out of the mean.
"""

from __future__ import annotations

import numpy as np

from ..labels import IGNORE_INDEX


class ConfusionMatrix:
    """``counts[truth, prediction]`` over trainIds 0..num_classes-1 (int64, exact to any size)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), np.int64)

    def update(self, truth: np.ndarray, prediction: np.ndarray) -> None:
        """Add one image (or batch): equal-shape uint8 trainId maps."""
        if truth.shape != prediction.shape:
            raise ValueError(f"ground truth {truth.shape} and prediction {prediction.shape} differ in size")
        valid = truth != IGNORE_INDEX
        truth, prediction = truth[valid].astype(np.int64), prediction[valid].astype(np.int64)
        if truth.size == 0:
            return
        for what, values in (("ground truth", truth), ("prediction", prediction)):
            if values.max() >= self.num_classes:
                raise ValueError(f"{what} holds class {int(values.max())}, beyond the {self.num_classes} classes")
        pairs = np.bincount(truth * self.num_classes + prediction, minlength=self.num_classes**2)
        self.counts += pairs.reshape(self.num_classes, self.num_classes)

    def merge(self, other: ConfusionMatrix) -> None:
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class counts into {self.num_classes}-class counts")
        self.counts += other.counts

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from both ground truth and prediction."""
        true_positive = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, true_positive / union, np.nan)

    def miou(self) -> float:
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return float(np.trace(self.counts) / total) if total else float("nan")

    def mean_class_accuracy(self) -> float:
        """Mean over classes present in the ground truth of the fraction of their pixels found."""
        per_class = self.counts.sum(1)
        present = per_class > 0
        return float((np.diag(self.counts)[present] / per_class[present]).mean()) if present.any() else float("nan")

    def category_iou(self, categories: tuple[str, ...]) -> dict[str, float]:
        """IoU of coarse groups of classes (Cityscapes' flat, construction, ... categories)."""
        names = sorted(set(categories), key=categories.index)
        index = np.array([names.index(c) for c in categories])
        grouped = np.zeros((len(names), len(names)), np.int64)
        np.add.at(grouped, (index[:, None], index[None, :]), self.counts)
        merged = ConfusionMatrix(len(names))
        merged.counts = grouped
        return dict(zip(names, merged.iou().tolist()))

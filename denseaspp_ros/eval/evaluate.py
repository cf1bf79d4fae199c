"""Offline evaluation: stream labelled frames from a bag or a Cityscapes folder through the Segmenter.

One confusion matrix over the whole run (the official Cityscapes convention), timing per frame,
and everything that could not be evaluated counted, never silently dropped. ``--shard i/N``
takes every N-th frame starting at i, so several machines can split a run and ``merge`` their
matrices exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..bags import BagError, MatchStats, read_labelled_frames
from ..datasets import BagDataset, CityscapesDataset
from ..errors import DenseASPPError
from ..inference import Segmenter
from ..labels import LabelSet
from .metrics import ConfusionMatrix


@dataclass(frozen=True)
class Sample:
    """One labelled frame: RGB or BGR image, trainId ground truth, and where it came from."""

    name: str  # image path relative to the split, or the bag stamp
    image: np.ndarray
    is_bgr: bool
    truth: np.ndarray
    stamp_ns: int = 0


@dataclass
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise DenseASPPError(f"--shard takes i/N such as 0/4, got {text!r}") from None
        if count < 1 or not 0 <= index < count:
            raise DenseASPPError(f"--shard {text}: need 0 <= i < N")
        return cls(index, count)

    def takes(self, position: int) -> bool:
        return position % self.count == self.index


@dataclass
class EvalResult:
    matrix: ConfusionMatrix
    frames: int = 0
    seconds: list[float] = field(default_factory=list)  # Segmenter time per frame
    unmatched_images: int = 0
    unmatched_labels: int = 0
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)
    complete: bool = True  # False when the run stopped early (interrupted, unreadable input)


def bag_samples(
    path: str | Path, image_topic: str, label_topic: str, label_set: LabelSet, label_format: str, tolerance_s: float,
    stats: MatchStats, max_pixels: int | None = None,
) -> Iterator[Sample]:
    for frame in read_labelled_frames(path, image_topic, label_topic, tolerance_s, stats, max_pixels):
        truth = label_set.to_train_ids(frame.label) if label_format == "labelid" else frame.label
        yield Sample(str(frame.stamp_ns), frame.image, frame.is_bgr, truth, frame.stamp_ns)


def cityscapes_samples(root: str | Path, split: str, label_set: LabelSet, max_pixels: int | None = None) -> Iterator[Sample]:
    """A Cityscapes-layout split; a folder without one fails when the first sample is read, like a bad bag."""
    yield from dataset_samples(CityscapesDataset(root, split, label_set, max_pixels))


def dataset_samples(dataset: CityscapesDataset | BagDataset, indices: Iterable[int] | None = None) -> Iterator[Sample]:
    """The items of a training dataset (all, or ``indices``) as RGB samples, read one at a time."""
    for index in range(len(dataset)) if indices is None else indices:
        image, truth = dataset[index]
        yield Sample(dataset.name(index), image, False, truth, dataset.stamp_ns(index))


def evaluate(
    samples: Iterator[Sample],
    segmenter: Segmenter,
    label_set: LabelSet,
    shard: Shard = Shard(),
    on_prediction=None,
    total: int | None = None,
    stats: MatchStats | None = None,
) -> EvalResult:
    """Run every sample of this shard; ``on_prediction(sample, train_ids)`` sees each result (writers)."""
    result = EvalResult(ConfusionMatrix(label_set.num_classes))
    bar = tqdm(total=total, desc="eval", unit="frame")
    try:
        for position, sample in enumerate(samples):
            if not shard.takes(position):
                continue
            if sample.truth.shape != sample.image.shape[:2]:
                result.corrupt += 1
                result.problems.append(f"{sample.name}: label and image sizes differ")
                continue
            start = time.perf_counter()
            segmentation = segmenter.segment([sample.image], bgr=sample.is_bgr)[0]
            result.seconds.append(time.perf_counter() - start)
            if not segmentation.finite:  # NaN/inf logits: no prediction to score, and the run is not valid
                result.complete = False
                result.problems.append(f"{sample.name}: non-finite logits (NaN/inf): not scored")
                continue
            prediction = segmentation.train_ids
            result.matrix.update(sample.truth, prediction)
            result.frames += 1
            if on_prediction is not None:
                on_prediction(sample, prediction)
            bar.update(1)
            bar.set_postfix(miou=f"{result.matrix.miou():.3f}")
    except KeyboardInterrupt:
        result.complete = False
        result.problems.append("interrupted: the figures cover the frames evaluated before")
    except (BagError, DenseASPPError) as error:
        result.complete = False
        result.problems.append(f"stopped early: {error}")
    finally:
        bar.close()
        if stats is not None:
            result.unmatched_images, result.unmatched_labels = stats.unmatched_images, stats.unmatched_labels
            result.corrupt += stats.corrupt
            result.problems.extend(stats.problems)
    return result

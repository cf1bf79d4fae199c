"""Offline evaluation: stream labelled frames from a bag or a Cityscapes folder through the Segmenter.

One confusion matrix over the whole run (the official Cityscapes convention), timing per frame,
and everything that could not be evaluated counted, never silently dropped. ``--shard i/N``
takes every N-th frame starting at i, so several machines can split a run and ``merge`` their
matrices exactly. Frames go to the Segmenter in batches while a reader thread decodes the next
ones, so evaluation runs at the engine's pace, not at the engine's plus the decoder's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..bags import BagError, MatchStats, read_labelled_frames
from ..frames import Frame
from ..datasets import BagDataset, CityscapesDataset
from ..errors import DenseASPPError, ImageError
from ..inference import Segmentation, Segmenter
from ..labels import IGNORE_INDEX, LabelSet
from .metrics import ConfusionMatrix


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
    seconds: list[float] = field(default_factory=list)  # Segmenter time per frame (a batch's time shared by its frames)
    unmatched_images: int = 0
    unmatched_labels: int = 0
    duplicate_stamps: int = 0  # bag messages stamped like an earlier one of their topic (paired in bag order)
    corrupt: int = 0
    problems: list[str] = field(default_factory=list)
    complete: bool = True  # False when the run stopped early (interrupted, unreadable input)
    interrupted: bool = False  # Ctrl-C: a caller that goes on (training) must stop too


def bag_samples(
    path: str | Path, image_topic: str, label_topic: str, label_set: LabelSet, label_format: str, tolerance_s: float,
    stats: MatchStats, max_pixels: int | None = None,
) -> Iterator[Frame]:
    label_ids = label_set if label_format == "labelid" else None
    return read_labelled_frames(path, image_topic, label_topic, tolerance_s, stats, max_pixels, label_ids)


def cityscapes_samples(
    root: str | Path, split: str, label_set: LabelSet, max_pixels: int | None = None, shard: Shard = Shard()
) -> Iterator[Frame]:
    """A Cityscapes-layout split, only ``shard``'s frames read and decoded (evaluate them with the
    whole ``Shard()``); a folder without one fails when the first sample is read, like a bad bag."""
    dataset = CityscapesDataset(root, split, label_set, max_pixels)
    yield from dataset_samples(dataset, range(shard.index, len(dataset), shard.count))


def dataset_samples(dataset: CityscapesDataset | BagDataset, indices: Iterable[int] | None = None) -> Iterator[Frame]:
    """The frames of a dataset (all, or ``indices``), read one at a time."""
    for index in range(len(dataset)) if indices is None else indices:
        yield dataset.frame(index)


def evaluate(
    samples: Iterable[Frame],
    segmenter: Segmenter,
    label_set: LabelSet,
    shard: Shard = Shard(),
    on_prediction: Callable[[Frame, Segmentation], None] | None = None,
    total: int | None = None,
    stats: MatchStats | None = None,
    *,
    batch: int = 1,
    progress: bool = True,
) -> EvalResult:
    """Run every sample of this shard, ``batch`` frames per Segmenter call while a reader thread
    decodes the next ones (up to two batches ahead).

    ``on_prediction(sample, segmentation)`` sees each scored frame in source order (writers);
    ``stats``: the bag reader's counts, added to the result; ``progress``: show a progress bar.
    """
    if batch < 1:
        raise DenseASPPError(f"evaluation batch must be at least 1, got {batch}")
    result = EvalResult(ConfusionMatrix(label_set.num_classes))
    bar = tqdm(total=total, desc="eval", unit="frame", disable=not progress)
    reader = _Prefetch(samples, shard, depth=2 * batch)
    try:
        for frames in reader.batches(batch):
            _evaluate_batch(frames, segmenter, result, on_prediction)
            bar.update(len(frames))
            bar.set_postfix(miou=f"{result.matrix.miou():.3f}")
    except KeyboardInterrupt:
        result.complete, result.interrupted = False, True
        result.problems.append("interrupted: the figures cover the frames evaluated before")
    except (BagError, DenseASPPError) as error:
        result.complete = False
        result.problems.append(f"stopped early: {error}")
    finally:
        reader.close()  # the reader no longer counts: stats are final
        bar.close()
        if stats is not None:
            result.unmatched_images, result.unmatched_labels = stats.unmatched_images, stats.unmatched_labels
            result.duplicate_stamps = stats.duplicate_stamps
            result.corrupt += stats.corrupt
            result.problems.extend(stats.problems)
    return result


def _evaluate_batch(
    samples: list[Frame], segmenter: Segmenter, result: EvalResult, on_prediction: Callable[[Frame, Segmentation], None] | None
) -> None:
    """Segment ``samples`` in one call and score them in order."""
    frames = []
    classes = result.matrix.num_classes
    # One 256-entry table, one lookup per pixel: which label values the confusion matrix cannot take.
    foreign = np.ones(256, bool)
    foreign[:classes] = foreign[IGNORE_INDEX] = False
    for sample in samples:
        if sample.labels.shape != sample.pixels.shape[:2]:
            result.corrupt += 1
            result.problems.append(f"{sample.name}: label and image sizes differ")
        elif (unknown := np.unique(sample.labels[foreign[sample.labels]])).size:
            result.corrupt += 1
            result.problems.append(
                f"{sample.name}: labels hold ids {unknown[:10].tolist()} outside 0..{classes - 1} and {IGNORE_INDEX} "
                "(another label set, or labelIds read as trainIds?): not scored"
            )
        else:
            frames.append(sample)
    if not frames:
        return
    start = time.perf_counter()
    try:
        segmentations = segmenter.segment([s.pixels for s in frames], bgr=[s.bgr for s in frames])
    except ImageError:
        if len(frames) == 1:
            raise
        for sample in frames:  # one at a time: the frames before the refused one still count, as unbatched
            _evaluate_batch([sample], segmenter, result, on_prediction)
        return
    share = (time.perf_counter() - start) / len(frames)
    for sample, segmentation in zip(frames, segmentations):
        result.seconds.append(share)
        if not segmentation.finite:  # NaN/inf logits: no prediction to score, and the run is not valid
            result.complete = False
            result.problems.append(f"{sample.name}: non-finite logits (NaN/inf): not scored")
            continue
        result.matrix.update(sample.labels, segmentation.train_ids)
        result.frames += 1
        if on_prediction is not None:
            on_prediction(sample, segmentation)


_END = object()  # the reader's last item once the source is exhausted


class _Prefetch:
    """Reads (and so decodes) the shard's next samples on a thread while the Segmenter runs.

    At most ``depth`` samples ahead, so a fast reader cannot fill memory with decoded frames. An
    error of the source (a truncated bag, Ctrl-C raised by a test's source) reaches the consumer
    after the samples read before it, as it would without the thread.
    """

    def __init__(self, samples: Iterable[Frame], shard: Shard, depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(samples, shard), name="eval-reader", daemon=True)
        self._thread.start()

    def batches(self, size: int) -> Iterator[list[Frame]]:
        """Up to ``size`` samples at a time, in source order; then the source's error, if it had one."""
        batch: list[Frame] = []
        while True:
            item = self._queue.get()
            if not isinstance(item, Frame):
                break
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
        if item is not _END:
            raise item

    def close(self) -> None:
        """Stop reading (the sample in hand is finished) and wait for the thread."""
        self._stop.set()
        self._thread.join()

    def _read(self, samples: Iterable[Frame], shard: Shard) -> None:
        source = iter(samples)
        try:
            for position, sample in enumerate(source):
                if self._stop.is_set():
                    return
                if shard.takes(position):
                    self._put(sample)
            self._put(_END)
        except BaseException as error:  # handed to the consumer, which decides what it means
            self._put(error)
        finally:
            # A source left early is closed here, in the thread that opened its files (sqlite
            # connections refuse to be closed from another thread, e.g. by the garbage collector).
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> None:
        while not self._stop.is_set():  # a consumer that has stopped takes nothing more
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

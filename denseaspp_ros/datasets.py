"""Labelled images: Cityscapes-layout folders and ROS 2 bags, for training and evaluation alike.

Both give (RGB uint8 HxWx3, trainId uint8 HxW) pairs and a name per item; training augments
them (``train.augmentation``), evaluation streams them through the Segmenter (``eval.evaluate``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from .bags import MatchStats, read_labelled_frames
from .errors import DenseASPPError, ImageError
from .frames import Frame
from .image_messages import DECODE_AS_STORED
from .imageio import read_bgr
from .labels import IGNORE_INDEX, LabelSet

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png")  # trainIds preferred
_SHOWN = 3
# Folder images have no time: they are spaced this far apart (result bags, costmap decay).
_FOLDER_FRAME_PERIOD_NS = 100_000_000


class DatasetError(DenseASPPError):
    """A dataset that cannot be used as it is: missing labels, size mismatches, bad class ids."""


def check_label(label: np.ndarray, num_classes: int, where: str) -> None:
    """Class ids must be < num_classes or the ignore index: anything else is a labelling error."""
    bad = (label >= num_classes) & (label != IGNORE_INDEX)
    if bad.any():
        values = sorted(int(v) for v in np.unique(label[bad]))[:10]
        raise DatasetError(
            f"{where}: class ids {values} lie outside 0..{num_classes - 1} (and are not the ignore index "
            f"{IGNORE_INDEX}): wrong label set, or labelIds where trainIds are expected?"
        )


class CityscapesDataset(Dataset):
    """``ROOT/leftImg8bit/SPLIT/<city>/*_leftImg8bit.png`` with ``ROOT/gtFine/SPLIT/<city>/*_gtFine_labelTrainIds.png``
    (or ``*_gtFine_labelIds.png``, converted to trainIds through the label set)."""

    def __init__(self, root: str | Path, split: str, label_set: LabelSet, max_pixels: int | None = None) -> None:
        self.root, self.split, self.label_set = Path(root), split, label_set
        self.max_pixels = max_pixels  # images declaring more are refused before decoding
        image_folder = self.root / "leftImg8bit" / split
        images = sorted(image_folder.rglob(f"*{_IMAGE_SUFFIX}"))
        if not images:
            raise DatasetError(f"no *{_IMAGE_SUFFIX} images under {image_folder}: not a Cityscapes-layout folder?")
        self.items: list[tuple[Path, Path, bool]] = []  # image, label, label is in labelIds
        missing = []
        for image in images:
            relative = image.relative_to(image_folder)
            stem = str(relative)[: -len(_IMAGE_SUFFIX)]
            for suffix in _LABEL_SUFFIXES:
                label = self.root / "gtFine" / split / f"{stem}{suffix}"
                if label.is_file():
                    self.items.append((image, label, suffix.endswith("labelIds.png") and "Train" not in suffix))
                    break
            else:
                missing.append(str(relative))
        if missing:
            raise DatasetError(
                f"{len(missing)} of {len(images)} images under {image_folder} have no gtFine label "
                f"({' or '.join(_LABEL_SUFFIXES)}), e.g. {', '.join(missing[:_SHOWN])}"
            )
        if any(label_ids for *_, label_ids in self.items) and label_set.label_ids is None:
            raise DatasetError(f"labels are labelIds but label set {label_set.name!r} has no labelId mapping")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB image and trainIds, for training."""
        frame = self.frame(index)
        return frame.rgb(), frame.labels

    def frame(self, index: int) -> Frame:
        """The item as decoded (BGR: the Segmenter swaps on the device), named as Cityscapes' tools
        name predictions (the path relative to the split folder)."""
        image_path, label_path, label_ids = self.items[index]
        try:
            image = read_bgr(image_path, self.max_pixels)
        except ImageError as error:
            raise DatasetError(str(error)) from None
        label = cv2.imread(str(label_path), DECODE_AS_STORED)
        if label is None or label.ndim != 2 or label.dtype != np.uint8:
            raise DatasetError(f"{label_path} is not a single-channel 8-bit label image")
        if label.shape != image.shape[:2]:
            raise DatasetError(
                f"{label_path.name} is {label.shape[1]}x{label.shape[0]} but {image_path.name} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        if label_ids:
            label = self.label_set.to_train_ids(label)
        check_label(label, self.label_set.num_classes, str(label_path))
        name = str(image_path.relative_to(self.root / "leftImg8bit" / self.split))
        return Frame(image, True, index * _FOLDER_FRAME_PERIOD_NS, name=name, labels=label)


class BagDataset(Dataset):
    """Image + label topic pairs of a ROS 2 bag, matched by stamp (read once, kept in memory)."""

    def __init__(
        self, path: str | Path, image_topic: str, label_topic: str, label_set: LabelSet,
        label_format: str = "trainid", tolerance_s: float = 0.001,
    ) -> None:
        if label_format not in ("trainid", "labelid"):
            raise DatasetError(f"label format must be trainid or labelid, got {label_format!r}")
        self.stats = MatchStats()
        self.frames: list[Frame] = []  # RGB, converted once for every epoch
        label_ids = label_set if label_format == "labelid" else None
        for frame in read_labelled_frames(path, image_topic, label_topic, tolerance_s, self.stats, label_ids=label_ids):
            check_label(frame.labels, label_set.num_classes, f"{path} {label_topic} at {frame.stamp_ns}")
            pixels, labels = np.ascontiguousarray(frame.rgb()), np.ascontiguousarray(frame.labels)
            self.frames.append(replace(frame, pixels=pixels, bgr=False, labels=labels))
        if not self.frames:
            raise DatasetError(
                f"no image/label pairs in {path} ({image_topic} + {label_topic}): {self.stats.unmatched_images} "
                f"images and {self.stats.unmatched_labels} labels without a partner, {self.stats.corrupt} undecodable"
            )

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        frame = self.frames[index]
        return frame.pixels, frame.labels

    def frame(self, index: int) -> Frame:
        return self.frames[index]

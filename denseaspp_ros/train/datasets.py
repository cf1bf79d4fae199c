"""Labelled images for training and validation: Cityscapes-layout folders and ROS 2 bags.

Both give (RGB uint8 HxWx3, trainId uint8 HxW) pairs; the augmentation of the original recipe
(random scale, random crop, horizontal flip) turns them into fixed-size training crops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..bags import MatchStats, read_labelled_frames
from ..errors import DenseASPPError, ImageError
from ..imageio import read_bgr
from ..labels import IGNORE_INDEX, LabelSet

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png")  # trainIds preferred
_SHOWN = 3


class DatasetError(DenseASPPError):
    """A dataset that cannot be trained on as it is: missing labels, size mismatches, bad class ids."""


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
        image_path, label_path, label_ids = self.items[index]
        try:
            image = read_bgr(image_path, self.max_pixels)
        except ImageError as error:
            raise DatasetError(str(error)) from None
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
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
        return np.ascontiguousarray(image[..., ::-1]), label


class BagDataset(Dataset):
    """Image + label topic pairs of a ROS 2 bag, matched by stamp (read once, kept in memory)."""

    def __init__(
        self, path: str | Path, image_topic: str, label_topic: str, label_set: LabelSet,
        label_format: str = "trainid", tolerance_s: float = 0.001,
    ) -> None:
        if label_format not in ("trainid", "labelid"):
            raise DatasetError(f"label format must be trainid or labelid, got {label_format!r}")
        self.stats = MatchStats()
        self.frames = []
        for frame in read_labelled_frames(path, image_topic, label_topic, tolerance_s, self.stats):
            label = label_set.to_train_ids(frame.label) if label_format == "labelid" else frame.label
            check_label(label, label_set.num_classes, f"{path} {label_topic} at {frame.stamp_ns}")
            image = np.ascontiguousarray(frame.image[..., ::-1]) if frame.is_bgr else np.ascontiguousarray(frame.image)
            self.frames.append((image, np.ascontiguousarray(label)))
        if not self.frames:
            raise DatasetError(
                f"no image/label pairs in {path} ({image_topic} + {label_topic}): {self.stats.unmatched_images} "
                f"images and {self.stats.unmatched_labels} labels without a partner, {self.stats.corrupt} undecodable"
            )

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.frames[index]


@dataclass(frozen=True)
class Augmentation:
    """The original recipe: random scale, random crop (padded with ignore), horizontal flip."""

    crop: tuple[int, int] = (512, 512)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        factor = rng.uniform(*self.scale)
        height, width = label.shape
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
        crop_height, crop_width = self.crop
        pad_bottom, pad_right = max(crop_height - size[1], 0), max(crop_width - size[0], 0)
        if pad_bottom or pad_right:
            # Padded pixels: the dataset's mean colour (zero after normalisation) and ignored in the loss.
            image = cv2.copyMakeBorder(image, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT, value=(74, 84, 73))
            label = cv2.copyMakeBorder(label, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        top = int(rng.integers(0, label.shape[0] - crop_height + 1))
        left = int(rng.integers(0, label.shape[1] - crop_width + 1))
        image = image[top : top + crop_height, left : left + crop_width]
        label = label[top : top + crop_height, left : left + crop_width]
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


class TrainingCrops(Dataset):
    """Augmented crops of a dataset as tensors: uint8 NHWC images (normalised on the device) and int64 labels.

    Items are addressed by (epoch, index) and their randomness comes from (seed, epoch, index), so a
    resumed run sees the same crops as the uninterrupted one, whatever the number of loader workers.
    """

    def __init__(self, source: Dataset, augmentation: Augmentation, seed: int) -> None:
        self.source, self.augmentation, self.seed = source, augmentation, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng((self.seed, epoch, index))
        image, label = self.augmentation(*self.source[index], rng)
        return torch.from_numpy(image), torch.from_numpy(label.astype(np.int64))

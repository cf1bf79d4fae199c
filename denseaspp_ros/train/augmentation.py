"""The augmentation of the original recipe (random scale, random crop, horizontal flip), turning
labelled images (``denseaspp_ros.datasets``) into fixed-size, reproducible training crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..inference import MEAN_RGB
from ..labels import IGNORE_INDEX

# Padding colour of crops larger than the scaled image: the dataset mean, zero after normalisation.
_MEAN_COLOUR = tuple(round(255 * channel) for channel in MEAN_RGB)


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
            # Padded pixels are ignored in the loss; the mean colour keeps the image statistics unchanged.
            image = cv2.copyMakeBorder(image, 0, pad_bottom, 0, pad_right, cv2.BORDER_CONSTANT, value=_MEAN_COLOUR)
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

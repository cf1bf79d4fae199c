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
    """The original recipe: random scale, random crop (padded with ignore), horizontal flip.

    ``class_uniform`` is the fraction of crops placed on a class drawn uniformly from those in the
    image (class-uniform sampling, Zhu et al., CVPR 2019): a traffic light, a few hundred pixels of
    a frame, is then the centre of attention as often as the road.
    """

    crop: tuple[int, int] = (512, 512)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    class_uniform: float = 0.0

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
        top, left = self._corner(label, rng)
        image = image[top : top + crop_height, left : left + crop_width]
        label = label[top : top + crop_height, left : left + crop_width]
        if self.flip and rng.random() < 0.5:
            image, label = image[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def _corner(self, label: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        """The crop's top-left corner: anywhere, or (class-uniform) such that the crop holds a pixel
        of a class drawn uniformly from the labelled ones, at a random place in the crop."""
        crop_height, crop_width = self.crop
        last_top, last_left = label.shape[0] - crop_height, label.shape[1] - crop_width
        if self.class_uniform > 0 and rng.random() < self.class_uniform:
            classes = np.unique(label)
            classes = classes[classes != IGNORE_INDEX]
            if classes.size:
                rows, columns = np.nonzero(label == rng.choice(classes))
                pick = int(rng.integers(rows.size))
                top = int(rows[pick]) - int(rng.integers(crop_height))
                left = int(columns[pick]) - int(rng.integers(crop_width))
                return min(max(top, 0), last_top), min(max(left, 0), last_left)
        return int(rng.integers(0, last_top + 1)), int(rng.integers(0, last_left + 1))


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

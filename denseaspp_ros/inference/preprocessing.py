"""The one normalisation of network inputs, shared by inference, export checks and training."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..model.weights import RELEASE_NORMALIZATION, Normalization


@lru_cache(maxsize=None)
def normalization(
    device: torch.device, normalize: Normalization = RELEASE_NORMALIZATION
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), shaped (1, 3, 1, 1): (x / 255 - mean) / std == x * scale + shift, one fused pass.

    Made once per device and normalisation (read-only): a copy from pageable host memory per batch
    would wait for the device's queued work and stall the asynchronous upload.
    """
    std = torch.tensor(normalize.std_rgb).view(1, 3, 1, 1)
    mean = torch.tensor(normalize.mean_rgb).view(1, 3, 1, 1)
    return (1.0 / (255.0 * std)).to(device), (-mean / std).to(device)


def preprocess(
    images: torch.Tensor,
    device: torch.device,
    *,
    bgr: bool = False,
    dtype: torch.dtype = torch.float32,
    memory_format: torch.memory_format = torch.channels_last,
    normalize: Normalization = RELEASE_NORMALIZATION,
) -> torch.Tensor:
    """uint8 NHWC images (host or device) -> the normalised NCHW batch the networks take, on ``device``.

    The one path of inference and training (the release's normalisation unless the weights say
    otherwise), so the two cannot drift apart. A host batch is copied without blocking: pin it
    for a DMA copy.
    """
    scale, shift = normalization(device, normalize)
    batch = images.to(device, non_blocking=True).permute(0, 3, 1, 2)  # NHWC -> NCHW view
    if bgr:
        batch = batch.flip(1)
    batch = batch.float().mul_(scale).add_(shift)
    return batch.to(dtype=dtype, memory_format=memory_format)

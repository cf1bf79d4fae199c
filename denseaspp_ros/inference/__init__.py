"""Inference engine: device, precision, batching, pre- and post-processing (no ROS imports)."""

from .loader import load_engine
from .segmenter import (
    MEAN_RGB,
    MULTISCALE_SCALES,
    STD_RGB,
    Segmentation,
    Segmenter,
    check_image,
    normalization,
    preprocess,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "MEAN_RGB",
    "MULTISCALE_SCALES",
    "STD_RGB",
    "Segmentation",
    "Segmenter",
    "check_image",
    "load_engine",
    "normalization",
    "preprocess",
    "resolve_device",
    "resolve_precision",
]

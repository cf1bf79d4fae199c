"""Inference engine: device, precision, batching, pre- and post-processing (no ROS imports)."""

from .backends import BACKENDS, BackendSettings
from .loader import load_engine
from .preprocessing import normalization, preprocess
from .segmenter import (
    MEAN_RGB,
    MULTISCALE_SCALES,
    STD_RGB,
    Segmentation,
    Segmenter,
    check_image,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "BACKENDS",
    "BackendSettings",
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

"""Every knob of a training run, with the original recipe as defaults; from a YAML file and/or flags.

Each field is declared once (``declarations.setting``): ``denseaspp train``'s flags and the keys
of its ``--config`` file are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..declarations import SettingError, build, parameters, parse_size, setting, validate
from ..errors import DenseASPPError
from ..model import MODEL_NAMES

LABEL_FORMATS = ("trainid", "labelid")


def _scale_range(name: str, value: tuple[float, ...]) -> None:
    if len(value) != 2 or not 0 < value[0] <= value[1]:
        raise SettingError(f"{name} must be [low, high] with 0 < low <= high, got {list(value)}")


def _crop_size(name: str, value: tuple[int, ...]) -> None:
    if len(value) != 2 or min(value) < 8:
        raise SettingError(f"{name} must be [height, width] of at least 8 pixels, got {list(value)}")


def _input_size(name: str, value: tuple[int, ...]) -> None:
    if value:
        _crop_size(name, value)


@dataclass
class TrainConfig:
    data: str = setting("", "Cityscapes-layout folder (real or synthetic) or a ROS 2 bag (required)")
    output: str = setting(
        "runs/train", "run folder: last.pt (resumable), best.pt, *.safetensors, log.csv/json, training.png"
    )
    model: str = setting("MobileNetDenseASPP", "network variant", choices=MODEL_NAMES)
    labels: str = setting("cityscapes", "cityscapes or a label set YAML file (sets the class count)")
    train_split: str = setting("train", "training split folder")
    val_split: str = setting("val", "validation split folder")
    val_data: str | None = setting(None, "validate on this folder or bag instead of data's val_split")
    image_topic: str | None = setting(None, "bag image topic (Image or CompressedImage); bags only")
    label_topic: str | None = setting(None, "bag label topic (mono8, matched by stamp); bags only")
    label_format: str = setting("trainid", "what the label images hold", choices=LABEL_FORMATS)
    steps: int = setting(20000, "optimiser steps", low=1)
    batch_size: int = setting(8, "images per step and process", low=1)
    lr: float = setting(3e-4, "Adam learning rate", low=1e-12)
    weight_decay: float = setting(1e-5, "Adam weight decay", low=0.0)
    hard_pixels: float = setting(
        1.0, "fraction of each batch's labelled pixels, the hardest, that the loss averages (OHEM; 1: all)",
        low=0.01, high=1.0,
    )
    poly_power: float = setting(0.9, "power of the polynomial learning-rate decay", low=0.0)
    crop: tuple[int, int] = setting(
        (512, 512), "height and width of the training crops", check=_crop_size, parse=parse_size, metavar="HxW"
    )
    scale: tuple[float, float] = setting((0.5, 2.0), "random scale range", check=_scale_range, metavar=("LOW", "HIGH"))
    flip: bool = setting(True, "random horizontal flips")
    class_uniform: float = setting(
        0.0, "fraction of crops placed on a class drawn uniformly from those in the image (rare classes as often as road)",
        low=0.0, high=1.0,
    )
    input_size: tuple[int, ...] = setting(
        (), "network input size the weights are meant to run at: validation runs there and checkpoints record it "
        "(default: each image's own; not taken from --init-checkpoint)", check=_input_size, parse=parse_size, metavar="HxW",
        element=int,
    )
    half_pixel: bool = setting(
        False, "upsample the network's maps half-pixel aligned (align_corners=False), not corner-aligned as the "
        "release: boundaries land where they are wherever they are in the image; checkpoints record it "
        "(not taken from --init-checkpoint)",
    )
    init_checkpoint: str | None = setting(None, "fine-tune from a DenseASPP checkpoint (.pkl/.pt/.safetensors; any class count)")
    imagenet: str | None = setting(None, "start the backbone from torchvision ImageNet weights (.pth)")
    val_every: int = setting(1000, "steps between validations (0: none)", low=0)
    bn_batches: int = setting(20, "batches re-estimating BatchNorm statistics before validation and saving (0: off)", low=0)
    checkpoint_every: int = setting(200, "steps between saves of last.pt", low=1)
    time_limit: float = setting(
        0.0, "minutes after which the run validates, saves and stops (0: none); running it again continues it",
        low=0.0,
    )
    log_every: int = setting(10, "steps between log lines", low=1)
    workers: int = setting(2, "data loader processes", low=0)
    amp: bool = setting(True, "mixed precision on CUDA")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    seed: int = setting(0, "seed of the initial weights, the crops and the batches", low=0)
    resume: bool = setting(True, "continue OUTPUT/last.pt when it exists")

    def __post_init__(self) -> None:
        try:
            validate(self)
        except SettingError as error:
            raise DenseASPPError(f"training configuration: {error}") from None
        if not self.data:
            raise DenseASPPError("training configuration: data is required (a Cityscapes-layout folder or a bag)")


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """A YAML file of TrainConfig fields (optional), then command-line values that were given.

    Every value is checked against its declaration, whichever source it came from.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise DenseASPPError(f"cannot read training configuration {path}: {error}") from None
        if not isinstance(document, dict):
            raise DenseASPPError(f"{path}: expected a mapping of training options")
        known = parameters(TrainConfig)
        unknown = sorted(set(document) - set(known))
        if unknown:
            raise DenseASPPError(f"{path}: unknown training options {unknown}; known: {sorted(known)}")
        values.update(document)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return build(TrainConfig, values)
    except SettingError as error:
        raise DenseASPPError(f"training configuration: {error}") from None

"""Every knob of a training run, with the original recipe as defaults; from a YAML file and/or flags."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import DenseASPPError


@dataclass
class TrainConfig:
    data: str = ""  # Cityscapes-layout root, or a ROS 2 bag
    output: str = "runs/train"
    model: str = "MobileNetDenseASPP"
    labels: str = "cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    val_data: str | None = None  # another root or bag to validate on; default: data's val_split
    image_topic: str | None = None  # bags only
    label_topic: str | None = None
    label_format: str = "trainid"  # trainid or labelid
    steps: int = 20000
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-5
    poly_power: float = 0.9
    crop: tuple[int, int] = (512, 512)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    init_checkpoint: str | None = None  # fine-tune from a DenseASPP checkpoint (any class count)
    imagenet: str | None = None  # torchvision ImageNet backbone weights (.pth)
    val_every: int = 1000  # 0: no validation
    bn_batches: int = 20  # batches that re-estimate BatchNorm statistics before validation and saving; 0: off
    checkpoint_every: int = 200
    log_every: int = 10
    workers: int = 2
    amp: bool = True  # mixed precision on CUDA
    device: str = "auto"
    seed: int = 0
    resume: bool = True  # continue OUTPUT/last.pt when it exists

    def __post_init__(self) -> None:
        self.crop = tuple(int(v) for v in self.crop)
        self.scale = tuple(float(v) for v in self.scale)
        problems = []
        if not self.data:
            problems.append("data is required (a Cityscapes-layout folder or a bag)")
        if self.steps < 1 or self.batch_size < 1:
            problems.append("steps and batch_size must be positive")
        if self.lr <= 0:
            problems.append("lr must be positive")
        if len(self.crop) != 2 or min(self.crop) < 8:
            problems.append(f"crop must be [height, width] of at least 8 pixels, got {self.crop}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            problems.append(f"scale must be [low, high] with 0 < low <= high, got {self.scale}")
        if self.label_format not in ("trainid", "labelid"):
            problems.append(f"label_format must be trainid or labelid, got {self.label_format!r}")
        for name in ("checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if problems:
            raise DenseASPPError("training configuration: " + "; ".join(problems))


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """A YAML file of TrainConfig fields (optional), then command-line values that were given."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as error:
            raise DenseASPPError(f"cannot read training configuration {path}: {error}") from None
        if not isinstance(document, dict):
            raise DenseASPPError(f"{path}: expected a mapping of training options")
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise DenseASPPError(f"{path}: unknown training options {unknown}; known: {sorted(known)}")
        values.update(document)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)

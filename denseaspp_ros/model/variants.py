"""The published DenseASPP configurations and the weights released for them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import DenseASPPError
from .checkpoint import CLI_OPTIONS, OptionNames, identify_checkpoint, load_weights, read_checkpoint
from .denseaspp import DenseASPP
from .densenet import DenseNetConfig, DilatedDenseNet
from .mobilenet import DilatedMobileNetV2


@dataclass(frozen=True)
class Variant:
    """One network of the release: its backbone and the widths of the ASPP blocks."""

    name: str
    make_backbone: Callable[[], nn.Module]
    d_feature0: int
    d_feature1: int


def _densenet(growth_rate: int, num_init_features: int, block_config: tuple[int, int, int, int]) -> Callable[[], nn.Module]:
    return lambda: DilatedDenseNet(DenseNetConfig(growth_rate, num_init_features, block_config))


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("DenseASPP121", _densenet(32, 64, (6, 12, 24, 16)), 128, 64),
        Variant("DenseASPP161", _densenet(48, 96, (6, 12, 36, 24)), 512, 128),
        Variant("DenseASPP169", _densenet(32, 64, (6, 12, 32, 32)), 336, 168),
        Variant("DenseASPP201", _densenet(32, 64, (6, 12, 48, 32)), 480, 240),
        Variant("MobileNetDenseASPP", DilatedMobileNetV2, 128, 64),
    )
}
MODEL_NAMES = tuple(VARIANTS)


@dataclass(frozen=True)
class PublishedWeights:
    """A checkpoint of the original release: where it goes and what it was measured to do."""

    model: str
    filename: str
    size_mb: float
    dataset: str
    miou_single_scale: float
    miou_multi_scale: float


# Cityscapes val mIoU (19 classes, 1024x2048) as this project's issue tracker records them; a
# later revision of the release's README lists 79.9% / 80.6% for the same file. The MobileNetV2
# checkpoint (74.5% / 75.0%) was announced but never published, so it has no entry here.
PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {
    "DenseASPP161": PublishedWeights("DenseASPP161", "denseASPP161.pkl", 142.7, "cityscapes", 0.788, 0.798),
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise DenseASPPError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None


DEMO_WEIGHTS_NAME = "demo"
DEMO_WEIGHTS_MODEL = "MobileNetDenseASPP"
# MobileNetDenseASPP trained by `denseaspp train` on the synthetic street world (Cityscapes classes):
# the demo's weights. Not Cityscapes weights: on real images they mean little.
DEMO_WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "data" / "weights" / "synthetic_street_mobilenet_denseaspp.safetensors"


def resolve_weights(weights: str | Path) -> Path:
    """``demo`` names the packaged synthetic-world weights; any other value is a path."""
    if str(weights) == DEMO_WEIGHTS_NAME and not Path(weights).exists():
        if not DEMO_WEIGHTS_FILE.is_file():
            raise DenseASPPError(f"the demo weights are not installed ({DEMO_WEIGHTS_FILE} is missing)")
        return DEMO_WEIGHTS_FILE
    return Path(weights)


AUTO_MODEL = "auto"


def build_model(
    name: str, num_classes: int = 19, weights: str | Path | None = None, options: OptionNames = CLI_OPTIONS
) -> DenseASPP:
    """Build a variant in eval mode, loading ``weights`` (any supported checkpoint format, or ``demo``) if given.

    ``name`` ``auto`` takes the variant from the weights (header or tensor shapes), whose class
    count must then be ``num_classes``; ``options`` names the settings that errors advise on.
    """
    checkpoint = None
    if weights is not None:
        weights = resolve_weights(weights)
    if name == AUTO_MODEL:
        if weights is None:
            raise DenseASPPError(f"{options.model.format(AUTO_MODEL)} identifies the network from its weights: give a checkpoint")
        checkpoint = read_checkpoint(weights)
        name, file_classes = identify_checkpoint(checkpoint, weights)
        if file_classes != num_classes:
            raise DenseASPPError(
                f"{weights} is a {name} checkpoint with {file_classes} classes, but {num_classes} are expected: "
                f"use {options.num_classes.format(file_classes)}"
            )
    variant = get_variant(name)
    if not 1 <= num_classes <= 255:
        raise DenseASPPError(f"num_classes must be in 1..255 (uint8 masks), got {num_classes}")
    backbone = variant.make_backbone()
    model = DenseASPP(backbone, backbone.out_channels, num_classes, variant.d_feature0, variant.d_feature1)
    model.variant_name = name
    if weights is not None:
        load_weights(model, weights, checkpoint, options)
    return model.eval()


def find_published_weights(name: str) -> Path | None:
    """The release's checkpoint for ``name`` if the user put it where the README says.

    Looked for in ``$DENSEASPP_WEIGHTS_DIR`` and then ``./weights`` (the release's own convention).
    """
    published = PUBLISHED_WEIGHTS.get(name)
    if published is None:
        return None
    folders = [Path(os.environ["DENSEASPP_WEIGHTS_DIR"])] if "DENSEASPP_WEIGHTS_DIR" in os.environ else []
    for folder in [*folders, Path("weights")]:
        candidate = folder / published.filename
        if candidate.is_file():
            return candidate
    return None

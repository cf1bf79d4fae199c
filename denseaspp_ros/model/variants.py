"""The published DenseASPP configurations, the weights released for them, and fitting a weights
file to a network: which variant a file is for, strict loading with advice when it does not fit.

Sits above ``checkpoint`` (file I/O), which knows nothing of the networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import CheckpointError, DenseASPPError
from .checkpoint import Checkpoint, align_corners_of, from_original_keys, input_size_of, read_checkpoint, save_safetensors
from .denseaspp import DenseASPP
from .weights import resolve_weights
from .densenet import DenseNetConfig, DilatedDenseNet
from .mobilenet import DilatedMobileNetV2


@dataclass(frozen=True)
class Variant:
    """One network: its backbone, the widths of the ASPP blocks and of the decoder, if it has one.

    The release published the variants without a decoder; ``extends`` names the variant whose
    checkpoints initialise this one's backbone and ASPP when fine-tuning.
    """

    name: str
    make_backbone: Callable[[], nn.Module]
    d_feature0: int
    d_feature1: int
    decoder_widths: tuple[int, ...] | None = None
    extends: str | None = None

    @property
    def published(self) -> bool:
        return self.decoder_widths is None


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
        Variant("MobileNetDenseASPPDecoder", DilatedMobileNetV2, 128, 64, (64, 48, 32), extends="MobileNetDenseASPP"),
    )
}
MODEL_NAMES = tuple(VARIANTS)
PUBLISHED_MODEL_NAMES = tuple(name for name, variant in VARIANTS.items() if variant.published)


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise DenseASPPError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}") from None




@dataclass(frozen=True)
class OptionNames:
    """How the caller's user names the model and class-count settings, for advice in errors."""

    model: str = "--model {}"
    num_classes: str = "--labels with {} classes"
    weights: str = "--weights {}"
    allow_untrained: str = "--allow-untrained"


CLI_OPTIONS = OptionNames()
AUTO_MODEL = "auto"
_SHOWN_KEYS = 5


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
    model = _network(name, num_classes)
    if weights is not None:
        load_weights(model, weights, checkpoint, options)
    return model.eval()


def declared_input_size(weights: str | Path) -> tuple[int, int] | None:
    """The network input size a weights file (or a known name such as ``demo``) declares in its
    header, or None when it runs at each image's own size."""
    path = resolve_weights(weights)
    return input_size_of(read_checkpoint(path), path)


def _network(name: str, num_classes: int) -> DenseASPP:
    """The variant's architecture with its initial (random) weights."""
    variant = get_variant(name)
    if not 1 <= num_classes <= 255:
        raise DenseASPPError(f"num_classes must be in 1..255 (uint8 masks), got {num_classes}")
    backbone = variant.make_backbone()
    model = DenseASPP(
        backbone, backbone.out_channels, num_classes, variant.d_feature0, variant.d_feature1,
        decoder_widths=variant.decoder_widths,
    )
    model.variant_name = name
    return model


def identify_variant(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """The (variant, num_classes) whose tensors have exactly these names and shapes, if any.

    Accepts the project's key layout or the release's (``module.`` prefix, ``norm.1`` names).
    """
    state_dict = from_original_keys(state_dict)
    classifier = state_dict.get("classification.1.weight")
    if classifier is None or classifier.ndim != 4:
        return None
    num_classes = classifier.shape[0]
    found = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    for name in MODEL_NAMES:
        if _variant_shapes(name, num_classes) == found:
            return name, num_classes
    return None


@lru_cache(maxsize=None)
def _variant_shapes(name: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):  # shapes without allocating or initialising any weight
        model = _network(name, num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def identify_checkpoint(checkpoint: Checkpoint, path: str | Path) -> tuple[str, int]:
    """(variant, num_classes) of a checkpoint: from its header when it has one, else from its tensors."""
    claimed, classes = checkpoint.metadata.get("model"), checkpoint.metadata.get("num_classes")
    if isinstance(claimed, str) and isinstance(classes, int):
        return claimed, classes
    identified = identify_variant(checkpoint.state_dict)
    if identified is None:
        raise CheckpointError(f"{path} matches none of the known DenseASPP variants: its network cannot be identified")
    return identified


def load_weights(
    model: nn.Module, path: str | Path, checkpoint: Checkpoint | None = None, options: OptionNames = CLI_OPTIONS
) -> Checkpoint:
    """Load a weights file (or its already read ``checkpoint``) into ``model`` with strict key and shape matching.

    Raises ``CheckpointError`` naming the missing/unexpected keys and shape mismatches, and the
    variant the file seems to belong to, when it does not fit.
    """
    checkpoint = checkpoint or read_checkpoint(path)
    claimed_model = checkpoint.metadata.get("model")
    variant = getattr(model, "variant_name", None)
    if claimed_model and variant and claimed_model != variant:
        raise CheckpointError(f"{path} holds {claimed_model} weights, not {variant}: use {options.model.format(claimed_model)}")
    problems = _mismatches(model.state_dict(), checkpoint.state_dict)
    if problems:
        identified = identify_variant(checkpoint.state_dict)
        if identified is None:
            raise CheckpointError(
                f"{path} does not fit {_describe(model)} and matches none of the known variants: {problems}"
            )
        name, num_classes = identified
        advice = [options.model.format(name)] if name != variant else []
        if num_classes != getattr(model, "num_classes", num_classes) or not advice:
            advice.append(options.num_classes.format(num_classes))
        raise CheckpointError(
            f"{path} is a {name} checkpoint with {num_classes} classes, not {_describe(model)}: "
            f"use {' '.join(advice)}. Mismatches: {problems}"
        )
    model.load_state_dict(checkpoint.state_dict, strict=False)  # strictness checked above
    model.input_size = input_size_of(checkpoint, path)
    model.align_corners = align_corners_of(checkpoint, path)
    return checkpoint


def _describe(model: nn.Module) -> str:
    return f"{getattr(model, 'variant_name', type(model).__name__)} with {getattr(model, 'num_classes', '?')} classes"


def _mismatches(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    # The release predates BatchNorm's num_batches_tracked buffer; its absence is expected.
    missing = [k for k in expected if k not in found and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} (file {_shape(found[k])}, model {_shape(v)})"
        for k, v in expected.items()
        if k in found and found[k].shape != v.shape
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:_SHOWN_KEYS]) + (", ..." if len(items) > _SHOWN_KEYS else "")
            parts.append(f"{len(items)} {label} ({shown})")
    return "; ".join(parts)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


def convert_checkpoint(
    source: str | Path, target: str | Path, model_name: str, num_classes: int = 19, half: bool = False,
    input_size: tuple[int, int] | None = None,
) -> tuple[int, int] | None:
    """Turn any supported checkpoint (typically the release's ``.pkl``) into a verified ``.safetensors``;
    returns the network input size the file declares.

    ``half`` stores float16 (half the size; loading casts back to the model's float32);
    ``input_size`` declares the size the weights run at (default: what the source declares).
    """
    model = build_model(model_name, num_classes, weights=source)
    if input_size is not None:
        model.input_size = tuple(input_size)
    save_safetensors(model.half() if half else model, target, source=Path(source).name)
    return model.input_size


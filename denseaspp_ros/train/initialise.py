"""Where training starts: random weights, a DenseASPP checkpoint (fine-tuning), or ImageNet backbones.

Every tensor that is not taken from the file is named in the report, so a user sees exactly what
starts fresh (the classifier after a class-count change; the decoder of a variant that extends
a published one; transition4 and the narrower norm5,
which the original network added to torchvision's DenseNet; MobileNetV2's extra expansion conv).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..model import VARIANTS, identify_variant, read_checkpoint

_CLASSIFIER = "classification.1."
# torchvision MobileNetV2 -> this project's dilated MobileNetV2 (which always has the expansion conv).
_MOBILENET_LAYERS = [
    (re.compile(r"^features\.0\.(\d)\.(.*)$"), r"features.features.0.\1.\2"),
    # Block 1 (expansion 1): torchvision has no expansion conv, so its layers shift by one stage.
    (re.compile(r"^features\.1\.conv\.0\.0\.(.*)$"), r"features.features.1.conv.3.\1"),
    (re.compile(r"^features\.1\.conv\.0\.1\.(.*)$"), r"features.features.1.conv.4.\1"),
    (re.compile(r"^features\.1\.conv\.1\.(.*)$"), r"features.features.1.conv.6.\1"),
    (re.compile(r"^features\.1\.conv\.2\.(.*)$"), r"features.features.1.conv.7.\1"),
    (re.compile(r"^features\.(\d+)\.conv\.0\.0\.(.*)$"), r"features.features.\1.conv.0.\2"),
    (re.compile(r"^features\.(\d+)\.conv\.0\.1\.(.*)$"), r"features.features.\1.conv.1.\2"),
    (re.compile(r"^features\.(\d+)\.conv\.1\.0\.(.*)$"), r"features.features.\1.conv.3.\2"),
    (re.compile(r"^features\.(\d+)\.conv\.1\.1\.(.*)$"), r"features.features.\1.conv.4.\2"),
    (re.compile(r"^features\.(\d+)\.conv\.2\.(.*)$"), r"features.features.\1.conv.6.\2"),
    (re.compile(r"^features\.(\d+)\.conv\.3\.(.*)$"), r"features.features.\1.conv.7.\2"),
]


@dataclass
class InitReport:
    source: str
    loaded: int = 0
    fresh: list[str] = field(default_factory=list)  # model tensors not taken from the file
    skipped: list[str] = field(default_factory=list)  # file tensors with no place in the model

    def summary(self) -> str:
        def names(items: list[str]) -> str:
            groups = sorted({re.sub(r"\.(weight|bias|running_mean|running_var|num_batches_tracked)$", "", n) for n in items})
            return ", ".join(groups[:8]) + (f", ... ({len(groups)} layers)" if len(groups) > 8 else "")

        text = f"initialised from {self.source}: {self.loaded} tensors loaded"
        if self.fresh:
            text += f"; starting fresh: {names(self.fresh)}"
        if self.skipped:
            text += f"; not used from the file: {names(self.skipped)}"
        return text


def initialise(model: nn.Module, checkpoint: str | Path | None = None, imagenet: str | Path | None = None) -> InitReport:
    """Load ``checkpoint`` (a DenseASPP file of this variant or of the one it extends, any class
    count) or ``imagenet``
    (torchvision DenseNet/MobileNetV2 weights) into ``model``; with neither, keep its random init."""
    if checkpoint is not None and imagenet is not None:
        raise CheckpointError("start from a checkpoint or from ImageNet weights, not both")
    if checkpoint is not None:
        return _from_checkpoint(model, Path(checkpoint))
    if imagenet is not None:
        return _from_imagenet(model, Path(imagenet))
    return InitReport("random weights (the release's initialisation)", fresh=[])


def _from_checkpoint(model: nn.Module, path: Path) -> InitReport:
    state = read_checkpoint(path).state_dict
    identified = identify_variant(state)
    variant = getattr(model, "variant_name", type(model).__name__)
    if identified is None:
        raise CheckpointError(f"{path} is not a DenseASPP checkpoint of any known variant")
    name, classes = identified
    if name != variant and (variant not in VARIANTS or name != VARIANTS[variant].extends):
        raise CheckpointError(f"{path} is a {name} checkpoint, not {variant}: use --model {name}")
    if classes == model.num_classes and name == variant:
        return _load_matching(model, state, f"{path} ({name}, {classes} classes)")
    # A new classifier, bias included: other classes, or other inputs (a decoder where the file has none).
    classifier = [k for k in state if k.startswith(_CLASSIFIER)]
    report = _load_matching(model, {k: v for k, v in state.items() if k not in classifier}, f"{path} ({name}, {classes} classes)")
    report.skipped += classifier
    return report


def _from_imagenet(model: nn.Module, path: Path) -> InitReport:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read ImageNet weights {path}: {error}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors (torchvision's .pth format)")
    variant = getattr(model, "variant_name", "")
    mapped, unmapped = {}, []
    for key, value in state.items():
        target = _imagenet_name(key, mobilenet=variant.startswith("MobileNet"))
        if target is None:
            unmapped.append(key)  # e.g. the ImageNet classifier, MobileNetV2's final 1280-channel conv
        else:
            mapped[target] = value
    if not any(key in model.state_dict() for key in mapped):
        raise CheckpointError(f"{path} has no tensor of a torchvision {variant} backbone: wrong architecture?")
    report = _load_matching(model, mapped, f"ImageNet weights {path}")
    report.skipped += unmapped
    return report


def _imagenet_name(key: str, mobilenet: bool) -> str | None:
    """This project's name for a torchvision backbone tensor, None for tensors it has no place for."""
    if not mobilenet:
        # torchvision's DenseNet and the backbone here share layer names (features.denseblockN...).
        return key if key.startswith("features.") else None
    for pattern, replacement in _MOBILENET_LAYERS:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return None


def _load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> InitReport:
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    report = InitReport(source, loaded=len(usable))
    report.fresh = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    report.skipped = [k for k in state if k not in usable]
    model.load_state_dict(usable, strict=False)
    return report

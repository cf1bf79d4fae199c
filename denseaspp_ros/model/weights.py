"""The weights this package knows by name, each described once (in the spirit of torchvision's
weights enums): which network, which label set, where the file lives, and what it measured."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DenseASPPError

PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "weights"


@dataclass(frozen=True)
class Normalization:
    """What a network expects of its input: RGB / 255, minus ``mean``, over ``std``, per channel."""

    mean_rgb: tuple[float, float, float]
    std_rgb: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.mean_rgb) != 3 or len(self.std_rgb) != 3 or min(self.std_rgb) <= 0:
            raise DenseASPPError(f"normalization needs 3 means and 3 positive deviations, got {self}")


# The release's (Cityscapes statistics): what its checkpoint was trained with, and what
# `denseaspp train` trains with, so every checkpoint this package writes expects it too.
RELEASE_NORMALIZATION = Normalization((0.290101, 0.328081, 0.286964), (0.182954, 0.186566, 0.184475))


@dataclass(frozen=True)
class Weights:
    """Known weights: ``name`` is what users write for them (``--weights demo``)."""

    name: str
    model: str
    labels: str  # the label set the classifier was trained for
    filename: str
    packaged: bool  # shipped inside the package; else the user puts the file under weights/
    description: str
    metrics: Mapping[str, float]  # what the file measured (see ``record`` for the packaged ones' full record)
    normalization: Normalization = RELEASE_NORMALIZATION

    def locate(self) -> Path | None:
        """The file, if present: in the package, or under ``$DENSEASPP_WEIGHTS_DIR`` then ``./weights``
        (the release's own convention)."""
        if self.packaged:
            folders = [PACKAGED_WEIGHTS_DIR]
        else:
            folders = [Path(os.environ["DENSEASPP_WEIGHTS_DIR"])] if "DENSEASPP_WEIGHTS_DIR" in os.environ else []
            folders.append(Path("weights"))
        return next((folder / self.filename for folder in folders if (folder / self.filename).is_file()), None)

    @property
    def record_path(self) -> Path:
        """Where a packaged file's record lives: beside it, same name, .json."""
        return PACKAGED_WEIGHTS_DIR / Path(self.filename).with_suffix(".json")

    def record(self) -> dict[str, Any]:
        """The training and evaluation record kept beside a packaged file (data seeds, steps, metrics)."""
        return json.loads(self.record_path.read_text()) if self.packaged and self.record_path.is_file() else {}


WEIGHTS: dict[str, Weights] = {
    w.name: w
    for w in (
        # Cityscapes val mIoU (19 classes, 1024x2048) as this project's issue tracker records them; a
        # later revision of the release's README lists 79.9% / 80.6% for the same file. The
        # MobileNetV2 checkpoint (74.5% / 75.0%) was announced but never published.
        Weights(
            "denseASPP161", "DenseASPP161", "cityscapes", "denseASPP161.pkl", packaged=False,
            description="the release's DenseNet161 checkpoint (142.7 MB), trained on Cityscapes",
            metrics={"miou_single_scale": 0.788, "miou_multi_scale": 0.798},
        ),
        # Trained by `denseaspp train` on the synthetic street world (Cityscapes classes): the demo's
        # weights. Not Cityscapes weights: on real images they mean little.
        Weights(
            "demo", "MobileNetDenseASPPDecoder", "cityscapes", "synthetic_street_mobilenet_denseaspp.safetensors", packaged=True,
            description="MobileNetDenseASPPDecoder trained on the synthetic street world (float16, 5.2 MB; runs at 384x768)",
            metrics={"miou_held_out_synthetic": 0.861},
        ),
    )
}
DEMO_WEIGHTS = WEIGHTS["demo"]


@dataclass(frozen=True)
class UncertaintyBand:
    """How unsure weights were on their own validation frames (1st and 99th percentile per frame of
    ``inference.Uncertainty``'s figures), stored with them like their input size: the camera health
    monitor calls a frame the network is out of its depth on one far above it."""

    low_confidence_share: tuple[float, float]
    mean_entropy: tuple[float, float]
    low_confidence_level: float  # the top probability below which a pixel counted as a guess
    measured_on: str  # which frames, at which network input size

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> UncertaintyBand:
        return cls(tuple(record["low_confidence_share"]), tuple(record["mean_entropy"]),
                   float(record["low_confidence_level"]), str(record["measured_on"]))


def uncertainty_band_of(weights: str | Path | None) -> UncertaintyBand | None:
    """The band recorded with ``weights`` (a known name, or the file of one), None when none was."""
    for known in WEIGHTS.values():
        located = known.locate() if weights is not None and str(weights) != known.name else None
        if str(weights) == known.name or (located is not None and located.resolve() == Path(weights).resolve()):
            band = known.record().get("uncertainty_band")
            return None if band is None else UncertaintyBand.from_record(band)
    return None


def resolve_weights(weights: str | Path) -> Path:
    """A known name (``demo``) is its packaged file; any other value is a path."""
    known = WEIGHTS.get(str(weights))
    if known is not None and known.packaged and not Path(weights).exists():
        path = known.locate()
        if path is None:
            raise DenseASPPError(f"the {known.name} weights are not installed ({PACKAGED_WEIGHTS_DIR / known.filename} is missing)")
        return path
    return Path(weights)


def normalization_of(weights: str | Path | None) -> Normalization:
    """The input normalisation ``weights`` (a known name or a file) expect: their registry entry's
    when known, else the release's (the one every checkpoint this package trains expects)."""
    if str(weights) in WEIGHTS:
        return WEIGHTS[str(weights)].normalization
    if weights is not None:
        for known in WEIGHTS.values():
            located = known.locate()
            if located is not None and located.resolve() == Path(weights).resolve():
                return known.normalization
    return RELEASE_NORMALIZATION


def find_published_weights(model: str) -> Path | None:
    """The release's checkpoint for ``model`` if the user put it where the README says."""
    candidates = (w.locate() for w in WEIGHTS.values() if w.model == model and not w.packaged)
    return next((path for path in candidates if path is not None), None)

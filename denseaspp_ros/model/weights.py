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
class Weights:
    """Known weights: ``name`` is what users write for them (``--weights demo``)."""

    name: str
    model: str
    labels: str  # the label set the classifier was trained for
    filename: str
    packaged: bool  # shipped inside the package; else the user puts the file under weights/
    description: str
    metrics: Mapping[str, float]  # what the file measured (see ``record`` for the packaged ones' full record)

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
            "demo", "MobileNetDenseASPP", "cityscapes", "synthetic_street_mobilenet_denseaspp.safetensors", packaged=True,
            description="MobileNetDenseASPP trained on the synthetic street world (float16, 5.1 MB)",
            metrics={"miou_held_out_synthetic": 0.535},
        ),
    )
}
DEMO_WEIGHTS = WEIGHTS["demo"]


def resolve_weights(weights: str | Path) -> Path:
    """A known name (``demo``) is its packaged file; any other value is a path."""
    known = WEIGHTS.get(str(weights))
    if known is not None and known.packaged and not Path(weights).exists():
        path = known.locate()
        if path is None:
            raise DenseASPPError(f"the {known.name} weights are not installed ({PACKAGED_WEIGHTS_DIR / known.filename} is missing)")
        return path
    return Path(weights)


def find_published_weights(model: str) -> Path | None:
    """The release's checkpoint for ``model`` if the user put it where the README says."""
    candidates = (w.locate() for w in WEIGHTS.values() if w.model == model and not w.packaged)
    return next((path for path in candidates if path is not None), None)

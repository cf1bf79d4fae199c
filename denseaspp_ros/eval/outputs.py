"""What an evaluation keeps of each frame besides its score: a result bag and/or labelId PNGs (no ROS imports).

``PredictionWriter`` is the ``on_prediction`` of ``evaluate``. A result bag is synced after every
frame, and a frame's PNG is written after its bag messages: a killed run loses no finished frame,
and every saved prediction has its frame in the bag.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bags import BagWriter
from ..costmap import CameraModel, CameraPose, CostmapSettings, SemanticCostmap, load_cost_table
from ..imageio import write_png
from ..labels import LabelSet
from ..frames import Frame

CAMERA = "camera"  # the frame id and costmap camera of every result-bag message


def camera_costmap(model: CameraModel, pose: CameraPose, label_set: LabelSet) -> SemanticCostmap:
    """A costmap of the one camera the frames come from, with the default cost table and grid."""
    costmap = SemanticCostmap(load_cost_table(None, label_set), CostmapSettings())
    costmap.set_camera(CAMERA, model, pose)
    return costmap


class PredictionWriter:
    """Writes each evaluated frame into ``bag`` (image, mask, colour mask, ground truth, costmap when
    there is one) and its labelIds under ``predictions``, named as cityscapesscripts expects."""

    def __init__(
        self,
        label_set: LabelSet,
        bag: BagWriter | None = None,
        predictions: Path | None = None,
        costmap: SemanticCostmap | None = None,
        cityscapes_names: bool = False,
    ) -> None:
        self.label_set = label_set
        self.bag = bag
        self.predictions = predictions
        self.costmap = costmap
        self.cityscapes_names = cityscapes_names

    def __call__(self, sample: Frame, prediction: np.ndarray) -> None:
        if self.bag is not None:
            self._write_bag(sample, prediction)
        if self.predictions is not None:
            target = self.prediction_path(sample)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_png(target, self.label_set.to_label_ids(prediction))

    def prediction_path(self, sample: Frame) -> Path:
        """Cityscapes frames keep their name (``<city>_<seq>_<frame>_pred_labelIds.png``), bag frames their stamp."""
        source = Path(sample.name)
        name = source.name.replace("_leftImg8bit.png", "") if self.cityscapes_names else f"frame_{sample.name}"
        return self.predictions / source.parent / f"{name}_pred_labelIds.png"

    def _write_bag(self, sample: Frame, prediction: np.ndarray) -> None:
        bag, stamp = self.bag, sample.stamp_ns
        image = sample.rgb()
        bag.write_image("/eval/image", stamp, CAMERA, image, "rgb8")
        bag.write_image("/eval/mask", stamp, CAMERA, prediction, "mono8")
        bag.write_image("/eval/mask_color", stamp, CAMERA, self.label_set.colorize(prediction), "rgb8")
        bag.write_image("/eval/ground_truth", stamp, CAMERA, sample.labels, "mono8")
        if self.costmap is not None:
            self.costmap.update(CAMERA, prediction, stamp / 1e9)
            bag.write_grid("/eval/costmap", stamp, self.costmap.grid, self.costmap.snapshot().costs)
        bag.sync()

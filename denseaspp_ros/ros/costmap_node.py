"""``semantic_costmap_node``: class masks of any segmenter in, one navigation costmap out.

The same projection and fusion as inside segmentation_node, fed from mono8 mask topics (e.g.
``/segmentation_node/front/mask``) and their cameras' CameraInfo, so the costmap can run beside
another segmenter or on another machine. A mask costs a few milliseconds, so it is projected on
the executor thread as it arrives and the grid is published after each one.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ..image_messages import class_mask_to_array
from ..labels import IGNORE_INDEX, get_label_set
from ..serving.stamps import StampRejected
from .costmap_output import CostmapOutput
from .names import COSTMAP_NODE as NODE_NAME, segmentation_mask_topic
from .runner import CameraLifecycleNode, run_lifecycle_node
from .settings import COSTMAP_PARAMETERS, calibration_parameters, read_calibration, read_costmap_output_settings

PARAMETERS = {
    "cameras": (["front"], "camera names; each gets <name>.mask_topic etc. (read once at start-up)", {}),
    "labels": ("cityscapes", "class set of the masks: cityscapes or a label set YAML file", {}),
    "autostart": (True, "configure and activate on start-up (no lifecycle manager needed)", {}),
    **COSTMAP_PARAMETERS,
}


def camera_parameters(camera: str) -> dict:
    return {
        f"{camera}.mask_topic": (
            segmentation_mask_topic(camera),
            "sensor_msgs/Image mono8 class ids (trainIds of the label set); relative names resolve in the node's namespace",
            {},
        ),
        f"{camera}.camera_info_topic": ("", "sensor_msgs/CameraInfo of the camera; empty = use intrinsics", {}),
        **calibration_parameters(camera),
    }


class SemanticCostmapNode(CameraLifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, PARAMETERS, camera_parameters, **kwargs)
        self.output: CostmapOutput | None = None
        self.num_classes = 0
        self.problems: Counter[tuple[str, str]] = Counter()  # (camera, why) -> masks refused

    def is_configured(self) -> bool:
        return self.output is not None

    def build(self) -> None:
        settings = read_costmap_output_settings(self)
        calibrations = {camera: read_calibration(self, camera) for camera in self.camera_names}
        label_set = get_label_set(self.get_parameter("labels").value)
        self.output = CostmapOutput(self, settings, label_set, calibrations)
        self.num_classes = label_set.num_classes
        grid = settings.fusion.grid
        self.get_logger().info(
            f"configured: {grid.width}x{grid.height} cells of {grid.resolution} m in {grid.frame_id} "
            f"for cameras {', '.join(self.camera_names)}"
        )

    def release(self) -> None:
        if self.output is not None:
            self.output.destroy()
            self.output = None

    def subscribe_inputs(self) -> None:
        # Best effort takes masks from reliable and best-effort publishers alike; depth 1: the newest.
        for camera in self.camera_names:
            mask_topic = self.get_parameter(f"{camera}.mask_topic").value
            self.listen(Image, mask_topic, lambda msg, c=camera: self._on_mask(c, msg), qos_profile_sensor_data)
            info_topic = self.get_parameter(f"{camera}.camera_info_topic").value
            if info_topic:
                self.listen_to_camera_info(camera, info_topic, qos_profile_sensor_data)

    def start(self) -> None:
        self.output.activate()

    def stop(self) -> None:
        if self.output is not None:
            self.output.deactivate()

    def _on_mask(self, camera: str, msg: Image) -> None:
        try:
            train_ids = class_mask_to_array(msg)
            self._check_classes(camera, train_ids)
            if self.output.update(camera, train_ids, msg.header, self.camera_info.get(camera)):
                self.output.publish()
        except StampRejected as error:
            self._report(camera, f"stamp_{error.kind}", f"dropped a mask: {error}")
        except Exception as error:  # a bad message must not end the node, nor cost the other cameras
            self._report(camera, "bad_mask", f"dropped a mask: {error}")

    def _check_classes(self, camera: str, train_ids: np.ndarray) -> None:
        """Ids outside the label set (a segmenter with other classes?) vote for nothing: say so."""
        unknown = (train_ids >= self.num_classes) & (train_ids != IGNORE_INDEX)
        if unknown.any():
            ids = sorted(int(i) for i in np.unique(train_ids[unknown]))
            self._report(
                camera, "unknown_class",
                f"class ids {ids[:10]} outside the label set's 0..{self.num_classes - 1} in {int(unknown.sum())} pixels: "
                "they are left unknown (is labels the segmenter's label set?)",
            )

    def _report(self, camera: str, why: str, problem: str) -> None:
        """Count the problem and log it, throttled per kind and cause."""
        self.problems[(camera, why)] += 1
        self.throttled.warn((camera, why, problem[:30]), f"{camera}: {problem} ({self.problems[(camera, why)]} so far)")


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(SemanticCostmapNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

"""``semantic_costmap_node``: class masks of any segmenter in, one navigation costmap out.

The same projection and fusion as inside segmentation_node, fed from mono8 mask topics (e.g.
``/segmentation_node/front/mask``) and their cameras' CameraInfo, so the costmap can run beside
another segmenter or on another machine. A mask costs a few milliseconds, so it is projected on
the executor thread as it arrives and the grid is published after each one.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..image_messages import class_mask_to_array
from ..labels import IGNORE_INDEX, get_label_set
from ..serving.stamps import StampRejected
from .costmap_output import CostmapOutput
from .runner import KeyedThrottle, run_lifecycle_node, transition_failure, watch_parameters
from .settings import (
    COSTMAP_PARAMETERS,
    calibration_parameters,
    camera_names,
    declare,
    read_calibration,
    read_costmap_output_settings,
)

NODE_NAME = "semantic_costmap_node"
_LOG_THROTTLE_S = 5.0

PARAMETERS = {
    "cameras": (["front"], "camera names; each gets <name>.mask_topic etc. (read once at start-up)", {}),
    "labels": ("cityscapes", "class set of the masks: cityscapes or a label set YAML file", {}),
    "autostart": (True, "configure and activate on start-up (no lifecycle manager needed)", {}),
    **COSTMAP_PARAMETERS,
}


def camera_parameters(camera: str) -> dict:
    return {
        f"{camera}.mask_topic": (
            f"segmentation_node/{camera}/mask",
            "sensor_msgs/Image mono8 class ids (trainIds of the label set); relative names resolve in the node's namespace",
            {},
        ),
        f"{camera}.camera_info_topic": ("", "sensor_msgs/CameraInfo of the camera; empty = use intrinsics", {}),
        **calibration_parameters(camera),
    }


class SemanticCostmapNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare(self, PARAMETERS)
        self.camera_names = camera_names(self)
        ours = set(PARAMETERS)
        for camera in self.camera_names:
            declare(self, camera_parameters(camera))
            ours.update(camera_parameters(camera))
        self.output: CostmapOutput | None = None
        self.camera_info: dict[str, CameraInfo | None] = {}
        self.num_classes = 0
        self.problems: Counter[tuple[str, str]] = Counter()  # (camera, why) -> masks refused
        self._inputs: list = []
        self._warnings = KeyedThrottle(self, _LOG_THROTTLE_S)
        watch_parameters(self, ours, lambda: self.output is not None)

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            settings = read_costmap_output_settings(self)
            calibrations = {camera: read_calibration(self, camera) for camera in self.camera_names}
            label_set = get_label_set(self.get_parameter("labels").value)
            self.output = CostmapOutput(self, settings, label_set, calibrations)
        except Exception as error:  # whatever it is, the reason goes to the log, and the node stays up
            self.close()
            return transition_failure(self, "configure", error)
        self.num_classes = label_set.num_classes
        grid = settings.fusion.grid
        self.get_logger().info(
            f"configured: {grid.width}x{grid.height} cells of {grid.resolution} m in {grid.frame_id} "
            f"for cameras {', '.join(self.camera_names)}"
        )
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # the lifecycle publishers first
        try:
            for camera in self.camera_names:
                self.camera_info[camera] = None
                mask_topic = self.get_parameter(f"{camera}.mask_topic").value
                # Best effort takes masks from reliable and best-effort publishers alike; depth 1: the newest.
                self._inputs.append(
                    self.create_subscription(
                        Image, mask_topic, lambda msg, c=camera: self._on_mask(c, msg), qos_profile_sensor_data
                    )
                )
                info_topic = self.get_parameter(f"{camera}.camera_info_topic").value
                if info_topic:
                    self._inputs.append(
                        self.create_subscription(
                            CameraInfo, info_topic, lambda msg, c=camera: self.camera_info.__setitem__(c, msg),
                            qos_profile_sensor_data,
                        )
                    )
        except Exception as error:  # e.g. an invalid topic name: said, and the node stays inactive
            self._unsubscribe()
            super().on_deactivate(state)
            return transition_failure(self, "activate", error)
        self.output.activate()
        self.get_logger().info("active")
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._unsubscribe()
        self.output.deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return super().on_cleanup(state)

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.close()
        return super().on_shutdown(state)

    def close(self) -> None:
        self._unsubscribe()
        if self.output is not None:
            self.output.destroy()
            self.output = None

    def _unsubscribe(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs.clear()

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
        self._warnings.warn((camera, why, problem[:30]), f"{camera}: {problem} ({self.problems[(camera, why)]} so far)")


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(SemanticCostmapNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

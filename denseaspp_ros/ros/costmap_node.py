"""``semantic_costmap_node``: class masks of any segmenter in, one navigation costmap out.

The same projection and fusion as inside segmentation_node, fed from mono8 mask topics (e.g.
``/segmentation_node/front/mask``) and their cameras' CameraInfo, so the costmap can run beside
another segmenter or on another machine. A mask costs a few milliseconds, so it is projected on
the executor thread as it arrives and the grid is published after each one.
"""

from __future__ import annotations

import time

from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ..errors import DenseASPPError
from ..labels import get_label_set
from .conversions import class_mask_to_array
from .costmap import CostmapOutput
from .runner import run_lifecycle_node
from .settings import (
    COSTMAP_PARAMETERS,
    SettingsError,
    calibration_parameters,
    camera_names,
    declare,
    read_calibration,
    read_costmap_config,
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
            f"/segmentation_node/{camera}/mask", "sensor_msgs/Image mono8 class ids (trainIds of the label set)", {}
        ),
        f"{camera}.camera_info_topic": ("", "sensor_msgs/CameraInfo of the camera; empty = use intrinsics", {}),
        **calibration_parameters(camera),
    }


class SemanticCostmapNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare(self, PARAMETERS)
        self.camera_names = camera_names(self)
        for camera in self.camera_names:
            declare(self, camera_parameters(camera))
        self.output: CostmapOutput | None = None
        self.camera_info: dict[str, CameraInfo | None] = {}
        self._subscriptions: list = []
        self._warned: dict[str, float] = {}  # message -> when it was last logged

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            config = read_costmap_config(self)
            calibrations = {camera: read_calibration(self, camera) for camera in self.camera_names}
            label_set = get_label_set(self.get_parameter("labels").value)
            self.output = CostmapOutput(self, config, label_set, calibrations)
        except (DenseASPPError, SettingsError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        grid = config.settings.grid
        self.get_logger().info(
            f"configured: {grid.width}x{grid.height} cells of {grid.resolution} m in {grid.frame_id} "
            f"for cameras {', '.join(self.camera_names)}"
        )
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        for camera in self.camera_names:
            self.camera_info[camera] = None
            mask_topic = self.get_parameter(f"{camera}.mask_topic").value
            # Best effort takes masks from reliable and best-effort publishers alike; depth 1: the newest.
            self._subscriptions.append(
                self.create_subscription(
                    Image, mask_topic, lambda msg, c=camera: self._on_mask(c, msg), qos_profile_sensor_data
                )
            )
            info_topic = self.get_parameter(f"{camera}.camera_info_topic").value
            if info_topic:
                self._subscriptions.append(
                    self.create_subscription(
                        CameraInfo, info_topic, lambda msg, c=camera: self.camera_info.__setitem__(c, msg),
                        qos_profile_sensor_data,
                    )
                )
        self.get_logger().info("active")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._unsubscribe()
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
        for subscription in self._subscriptions:
            self.destroy_subscription(subscription)
        self._subscriptions.clear()

    def _on_mask(self, camera: str, msg: Image) -> None:
        try:
            train_ids = class_mask_to_array(msg)
            if self.output.update(camera, train_ids, msg.header, self.camera_info.get(camera)):
                self.output.publish()
        except Exception as error:  # a bad message must not end the node, nor cost the other cameras
            self._warn(f"{camera}: dropped a mask: {error}")

    def _warn(self, message: str) -> None:
        """Each distinct problem at most once per throttle period (rclpy throttles per call site,
        which would hide a second kind of bad input behind the first)."""
        now = time.monotonic()
        if now - self._warned.get(message, -_LOG_THROTTLE_S) >= _LOG_THROTTLE_S:
            self._warned[message] = now
            self.get_logger().warning(message)


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(SemanticCostmapNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

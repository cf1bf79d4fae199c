"""``semantic_costmap_node``: class masks of any segmenter in, one navigation costmap out.

The same projection and fusion as inside segmentation_node, fed from mono8 mask topics (e.g.
``/segmentation_node/front/mask``) and their cameras' CameraInfo, so the costmap can run beside
another segmenter or on another machine. A mask costs a few milliseconds, so it is projected on
the executor thread as it arrives and the grid is published after each one.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from ..frames import stamp_ns
from ..image_messages import class_mask_to_array
from ..labels import IGNORE_INDEX, get_label_set
from ..serving.health import Health, Level, mask_health
from ..serving.settings import CostmapCameraSettings, CostmapNodeSettings
from ..serving.stamps import FrameRefused, StampRejected
from ..serving.stats import CameraStats
from .costmap_output import CostmapOutput
from .names import COSTMAP_NODE as NODE_NAME
from .runner import CameraLifecycleNode, run_lifecycle_node
from .settings import read, read_cameras


class SemanticCostmapNode(CameraLifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, CostmapNodeSettings, CostmapCameraSettings, **kwargs)
        self.output: CostmapOutput | None = None
        self.settings: CostmapNodeSettings | None = None
        self.cameras: dict[str, CostmapCameraSettings] = {}
        self.num_classes = 0
        self.stats: dict[str, CameraStats] = {}  # masks received, folded in (published) and refused (errors by cause)

    def is_configured(self) -> bool:
        return self.output is not None

    def build(self) -> None:
        settings = read(self, CostmapNodeSettings)
        self.cameras = {camera.name: camera for camera in read_cameras(self, CostmapCameraSettings, self.camera_names)}
        label_set = get_label_set(settings.labels)
        calibrations = {name: camera.calibration for name, camera in self.cameras.items()}
        self.output = CostmapOutput(self, settings.costmap, label_set, calibrations)
        self.settings, self.num_classes = settings, label_set.num_classes
        self.stats = {name: CameraStats() for name in self.cameras}
        self.start_diagnostics(settings.diagnostics.period, self._diagnostics)
        grid = settings.costmap.fusion.grid
        self.get_logger().info(
            f"configured: {grid.width}x{grid.height} cells of {grid.resolution} m in {grid.frame_id} "
            f"for cameras {', '.join(self.camera_names)}"
        )

    def release(self) -> None:
        self.stop_diagnostics()
        if self.output is not None:
            self.output.destroy()
            self.output = None

    def subscribe_inputs(self) -> None:
        self.output.listen_to_odometry(self)
        # Best effort takes masks from reliable and best-effort publishers alike; depth 1: the newest.
        for name, camera in self.cameras.items():
            self.listen(Image, camera.mask_topic, lambda msg, c=name: self._on_mask(c, msg), qos_profile_sensor_data)
            if camera.camera_info_topic:
                self.listen_to_camera_info(name, camera.camera_info_topic, qos_profile_sensor_data)

    def start(self) -> None:
        self.output.activate()

    def stop(self) -> None:
        if self.output is not None:
            self.output.deactivate()

    def _on_mask(self, camera: str, msg: Image) -> None:
        self.stats[camera].on_received()
        try:
            train_ids = class_mask_to_array(msg)
            self._check_classes(camera, train_ids)
            if self.output.update(camera, train_ids, stamp_ns(msg.header), self.camera_info.get(camera), frame_id=msg.header.frame_id):
                self.stats[camera].on_published(None, 0.0)
                self.output.publish()
        except StampRejected as error:
            self._report(camera, f"stamp_{error.kind}", f"dropped a mask: {error}")
        except FrameRefused as error:
            self._report(camera, error.kind, f"dropped a mask: {error}")
        except Exception as error:  # a bad message must not end the node, nor cost the other cameras
            self._report(camera, "bad_mask", f"dropped a mask: {error}")

    def _diagnostics(self) -> list[DiagnosticStatus]:
        """The masks refused so far, per camera and cause; a line per camera judged by the share of
        its masks refused; with odometry, its state."""
        active = self.output is not None and self.output.active
        limits = self.settings.diagnostics.limits
        counts = {camera: stats.error_counts() for camera, stats in self.stats.items()}
        values = {f"refused.{camera}.{why}": count for camera in sorted(counts) for why, count in sorted(counts[camera].items())}
        state = Health(Level.OK, "active" if active else "inactive")
        if active and self.waiting_for_clock():
            state = Health(Level.WARN, "waiting for /clock (use_sim_time): no costmap until it comes")
        statuses = [self.diagnostic_status("costmap", state, values)]
        for camera, stats in self.stats.items():
            snapshot = stats.snapshot()
            figures = {"mask_topic": self.cameras[camera].mask_topic, "received": snapshot["received"],
                       "used": snapshot["published"], "refused": snapshot["errors"]}
            health = mask_health(snapshot, counts[camera], limits, active=active)
            statuses.append(self.diagnostic_status(f"camera {camera}", health, figures))
        if self.output is not None and self.settings.costmap.odometry_topic:
            statuses.append(self.output.odometry_status(limits, active=active))
        return statuses

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
        self.stats[camera].on_error(why)
        so_far = self.stats[camera].error_counts()[why]
        self.throttled.warn((camera, why, problem[:30]), f"{camera}: {problem} ({so_far} so far)")


def main(args: list[str] | None = None) -> None:
    run_lifecycle_node(SemanticCostmapNode, NODE_NAME, args)


if __name__ == "__main__":
    main()

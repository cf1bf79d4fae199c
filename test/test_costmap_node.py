"""The costmap through ROS: semantic_costmap_node and segmentation_node's ~/costmap over real DDS.

The standalone node gets camera_info and a mask of test/street_scene.py's car scene and must
publish the grid that scene implies; segmentation_node (untrained, with a label set whose every
class has a cost, so any mask marks the grid) must publish a grid stamped like its input image.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from denseaspp_ros.labels import CITYSCAPES
from node_harness import (
    LATCHED, DiagnosticsLog, NodeProcess, RosClient, image_msg, pattern_image, status, values, wait_until_ready, write_params,
)
from street_scene import CAMERA, CAR_BOX, FRONT, GRID, render

try:  # the TF path is tested where tf2_ros is installed (any ROS 2 install; there is no PyPI wheel)
    import tf2_ros
except ImportError:
    tf2_ros = None

STANDALONE = "costmap_test_standalone"
MASK_TOPIC = "/costmap_test/front/mask"
INFO_TOPIC = "/costmap_test/front/camera_info"
POSE = [FRONT.x, FRONT.y, FRONT.z, FRONT.roll, FRONT.pitch, FRONT.yaw]
CAR = CITYSCAPES.class_names.index("car")


def grid_parameters() -> dict:
    return {
        "costmap": {
            "resolution": GRID.resolution,
            "length_x": GRID.length_x,
            "length_y": GRID.length_y,
            "origin_x": GRID.origin_x,
            "origin_y": GRID.origin_y,
            "publish_color": True,
            "publish_obstacles": True,
        }
    }


def camera_info(stamp, k=None, width: int = CAMERA.width, height: int = CAMERA.height) -> CameraInfo:
    info = CameraInfo(header=Header(stamp=stamp, frame_id="front_optical"), width=width, height=height)
    info.k = list(CAMERA.K.ravel()) if k is None else k
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    return info


def mask_msg(stamp, mask: np.ndarray, encoding: str = "mono8") -> Image:
    return image_msg(Header(stamp=stamp, frame_id="front_optical"), mask, encoding)


def cells_of(grid: OccupancyGrid) -> np.ndarray:
    return np.array(grid.data, np.int8).reshape(grid.info.height, grid.info.width)


class Standalone:
    def __init__(self, client: RosClient, process: NodeProcess) -> None:
        self.client, self.process = client, process
        node = client.node
        self.masks = node.create_publisher(Image, MASK_TOPIC, 10)
        self.infos = node.create_publisher(CameraInfo, INFO_TOPIC, qos_profile_sensor_data)
        self.grids = client.collect(OccupancyGrid, f"/{STANDALONE}/costmap", LATCHED)
        self.colors = client.collect(Image, f"/{STANDALONE}/costmap_color")
        self.clouds = client.collect(PointCloud2, f"/{STANDALONE}/costmap_obstacles")
        ready = client.spin_until(
            lambda: not process.alive()
            or (self.masks.get_subscription_count() > 0 and self.infos.get_subscription_count() > 0),
            60.0,
        )
        assert process.alive() and ready, f"the node did not subscribe; log:\n{process.log()}"

    def send(self, mask: np.ndarray, info: CameraInfo | None = None, encoding: str = "mono8") -> Header:
        """Publish camera_info (when given) and then the mask, stamped now; returns the mask's header."""
        stamp = self.client.now_stamp()
        if info is not None:
            info.header.stamp = stamp
            self.infos.publish(info)
            self.client.spin_for(0.1)
        message = mask_msg(stamp, mask, encoding)
        self.masks.publish(message)
        return message.header

    def grid_for(self, mask: np.ndarray, info: CameraInfo, timeout: float = 15.0) -> tuple[Header, OccupancyGrid]:
        """Send camera_info + mask until a grid stamped like one of the masks comes back (rides out discovery)."""
        sent: list[Header] = []

        def received() -> OccupancyGrid | None:
            stamps = {(h.stamp.sec, h.stamp.nanosec): h for h in sent}
            return next((g for g in reversed(self.grids) if (g.header.stamp.sec, g.header.stamp.nanosec) in stamps), None)

        found = self.client.publish_until(lambda: sent.append(self.send(mask, info)), lambda: received() is not None, timeout, 0.5)
        assert found, f"no costmap stamped like the masks within {timeout} s; node log:\n{self.process.log()}"
        grid = received()
        return next(h for h in sent if h.stamp == grid.header.stamp), grid


@pytest.fixture(scope="module")
def standalone(client, tmp_path_factory):
    directory = tmp_path_factory.mktemp(STANDALONE)
    parameters = {
        "cameras": ["front"],
        "front": {"mask_topic": MASK_TOPIC, "camera_info_topic": INFO_TOPIC, "pose": POSE},
        **grid_parameters(),
    }
    params = directory / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    process = NodeProcess(STANDALONE, params, directory / "node.log", program="semantic_costmap_node")
    try:
        yield Standalone(client, process)
    finally:
        process.assert_clean_exit()


def test_standalone_node_publishes_the_grid_the_scene_implies(standalone):
    header, grid = standalone.grid_for(render(CAMERA, FRONT, car=CAR_BOX), camera_info(None))
    assert grid.header.frame_id == "base_link"
    assert grid.header.stamp == header.stamp  # the newest contributing image's stamp
    info = grid.info
    assert (info.width, info.height) == (GRID.width, GRID.height)
    assert info.resolution == pytest.approx(GRID.resolution)
    assert (info.origin.position.x, info.origin.position.y) == (GRID.origin_x, GRID.origin_y)
    assert info.origin.orientation.w == 1.0
    cells = cells_of(grid)
    rows, cols = np.nonzero(cells == 100)
    x = GRID.origin_x + (cols + 0.5) * GRID.resolution
    assert len(x) >= 15 and np.abs(x - CAR_BOX[0]).max() <= 0.25  # the car's contact line
    row, col = divmod(int(GRID.cell_index(np.array([6.0]), np.array([0.0]))[0]), GRID.width)
    assert cells[row, col] == 0  # the road in front of it
    assert set(np.unique(cells)) <= {-1, 0, 100}

    cloud = next(c for c in standalone.clouds if c.header.stamp == header.stamp) if standalone.client.spin_until(
        lambda: any(c.header.stamp == header.stamp for c in standalone.clouds), 5.0
    ) else None
    assert cloud is not None and cloud.width == len(x)
    points = np.frombuffer(bytes(cloud.data), np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("class_id", "<u4")]))
    assert np.abs(points["x"] - CAR_BOX[0]).max() <= 0.25 and (points["class_id"] == CAR).all()
    assert standalone.client.spin_until(lambda: any(c.header.stamp == header.stamp for c in standalone.colors), 5.0)
    color = next(c for c in standalone.colors if c.header.stamp == header.stamp)
    assert (color.encoding, color.width, color.height) == ("rgb8", GRID.height, GRID.width)


def test_a_late_subscriber_gets_the_last_grid(standalone):
    header, _ = standalone.grid_for(render(CAMERA, FRONT), camera_info(None))
    late: list[OccupancyGrid] = []
    subscription = standalone.client.node.create_subscription(OccupancyGrid, f"/{STANDALONE}/costmap", late.append, LATCHED)
    try:
        assert standalone.client.spin_until(lambda: bool(late), 10.0)
        assert late[-1].header.stamp == header.stamp
    finally:
        standalone.client.node.destroy_subscription(subscription)


def test_a_half_size_mask_is_projected_with_scaled_intrinsics(standalone):
    small = CAMERA.scaled_to(CAMERA.width // 2, CAMERA.height // 2)
    _, grid = standalone.grid_for(render(small, FRONT, car=CAR_BOX), camera_info(None))  # camera_info stays full size
    cols = np.nonzero(cells_of(grid) == 100)[1]
    x = GRID.origin_x + (cols + 0.5) * GRID.resolution
    assert len(x) >= 8 and np.abs(x - CAR_BOX[0]).max() <= 0.4


def test_masks_of_another_aspect_ratio_or_from_the_future_are_refused_and_the_camera_is_an_error(standalone):
    """A mask squashed to half its height would project through anisotropically scaled intrinsics:
    it is kept out of the grid, counted, and the camera's line of /diagnostics turns ERROR when all
    its masks are refused, as it does for masks stamped ahead of the clock."""
    diagnostics = DiagnosticsLog(standalone.client)
    squashed = cv2.resize(render(CAMERA, FRONT, car=CAR_BOX), (CAMERA.width, CAMERA.height // 2), interpolation=cv2.INTER_NEAREST)
    sent = []

    def camera_line(words: str):
        found = diagnostics.wait(STANDALONE, lambda a: words in getattr(status(a, STANDALONE, "camera front"), "message", ""), 6.0)
        return None if found is None else status(found, STANDALONE, "camera front")

    for _ in range(12):  # over 5 s of squashed masks: all the last window's masks are refused
        sent.append(standalone.send(squashed, camera_info(None)))
        standalone.client.spin_for(0.5)
    assert "at one scale" in standalone.process.log(), standalone.process.log()
    line = camera_line("masks in the last 5 s refused (so far: aspect")
    assert line is not None and line.level == b"\x02" and line.message.startswith("all "), diagnostics.of(STANDALONE)[-1:]
    assert not any(grid.header.stamp == header.stamp for grid in standalone.grids for header in sent)
    refused = status(diagnostics.of(STANDALONE)[-1][1], STANDALONE, "costmap")
    assert int(values(refused)["refused.front.aspect"]) >= 1, refused

    _, grid = standalone.grid_for(render(CAMERA, FRONT, car=CAR_BOX), camera_info(None))  # the right shape comes back
    assert (cells_of(grid) == 100).any()

    def ahead() -> None:
        stamp = standalone.client.now_stamp()
        stamp.sec += 30
        standalone.masks.publish(mask_msg(stamp, render(CAMERA, FRONT, car=CAR_BOX)))

    for _ in range(12):  # over 5 s of masks from the future: all the last window's masks are refused
        ahead()
        standalone.client.spin_for(0.5)
    line = camera_line("stamp_future")
    assert line is not None and line.level == b"\x02" and line.message.startswith("all "), diagnostics.of(STANDALONE)[-1:]


def test_bad_input_is_reported_and_the_node_carries_on(standalone):
    def reported(publish, text: str) -> None:
        assert standalone.client.publish_until(publish, lambda: text in standalone.process.log(), 10.0, period=0.3), (
            f"never logged {text!r}; log:\n{standalone.process.log()}"
        )
        assert standalone.process.alive()

    # K all zeros (an uncalibrated driver): the camera stops contributing, with the reason.
    reported(lambda: standalone.send(render(CAMERA, FRONT), camera_info(None, k=[0.0] * 9)), "focal lengths must be positive")
    # A colour image where a class mask belongs.
    reported(
        lambda: standalone.send(np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8), encoding="rgb8"),
        "class mask must be mono8",
    )

    def short_mask() -> None:
        broken = mask_msg(standalone.client.now_stamp(), render(CAMERA, FRONT))
        broken.data = bytes(broken.data)[:1000]
        standalone.masks.publish(broken)

    reported(short_mask, "expected step x height")
    # A good camera_info brings the camera back.
    _, grid = standalone.grid_for(render(CAMERA, FRONT, car=CAR_BOX), camera_info(None))
    assert (cells_of(grid) == 100).any()
    assert "contributes to the costmap again" in standalone.process.log()


def test_a_camera_looking_at_the_sky_is_reported_once(client, tmp_path):
    name = "costmap_test_sky"
    parameters = {
        "cameras": ["up"],
        "up": {"mask_topic": "/costmap_test/up/mask", "intrinsics": [400.0, 400.0, 319.5, 159.5], "pose": [0.0, 0.0, 1.5, 0.0, -0.6, 0.0]},
    }
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    try:
        publisher = client.node.create_publisher(Image, "/costmap_test/up/mask", 10)
        assert client.spin_until(lambda: publisher.get_subscription_count() > 0 or not process.alive(), 60.0)
        assert process.alive(), process.log()
        for _ in range(3):
            publisher.publish(mask_msg(client.now_stamp(), render(CAMERA, FRONT)))
            client.spin_for(0.3)
        assert process.alive()
        assert process.log().count("sees no ground cell") == 1
    finally:
        process.assert_clean_exit()


def test_bad_parameters_fail_configure_with_the_reason_and_autostart_exits_non_zero(client, tmp_path):
    name = "costmap_test_bad"
    table = tmp_path / "costs.yaml"
    table.write_text("label_set: cityscapes\nclasses:\n  roadd: 0\n")
    for parameters, reason in (
        ({"cameras": ["front"], "costmap": {"classes_file": str(table)}}, "unknown class name(s) ['roadd']"),
        ({"cameras": ["front"], "front": {"pose": [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0]}}, "front.pose must be finite"),
        ({"cameras": ["front"], "costmap": {"rule": "loudest"}}, "costmap.rule must be one of max, majority"),
    ):
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
        process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
        log = process.assert_failed_exit()
        assert reason in log and "configure failed" in log and "configure failed with autostart" in log, log


# --- inside segmentation_node ------------------------------------------------------------------------


def test_segmentation_node_publishes_the_costmap_of_its_masks(client, tmp_path):
    """Straight from the in-memory masks: the grid carries the image's stamp and marks cells."""
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        "name: everything_costs\nclasses:\n"
        "  - {name: free, color: [0, 255, 0]}\n  - {name: rough, color: [255, 255, 0]}\n  - {name: block, color: [255, 0, 0]}\n"
    )
    table = tmp_path / "costs.yaml"
    table.write_text("label_set: everything_costs\nclasses:\n  free: 0\n  rough: 50\n  block: 100\n")
    name = "costmap_test_seg"
    camera = {"image_topic": "/costmap_test/seg/image", "pose": POSE, "intrinsics": [100.0, 100.0, 63.5, 31.5],
              "image_width": 128, "image_height": 64}
    params = write_params(
        tmp_path / "params.yaml", {"front": camera},
        # decay_time above the latency of a loaded CI machine: older frames are refused on arrival
        **{"model.labels": str(labels), "costmap.classes_file": str(table), "publish.mask_color": False,
           "costmap.decay_time": 10.0},
    )
    process = NodeProcess(name, params, tmp_path / "node.log")
    try:
        wait_until_ready(client, process, [camera["image_topic"]])
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        publisher = client.node.create_publisher(Image, camera["image_topic"], qos_profile_sensor_data)
        sent: list[Header] = []

        def send() -> None:
            stamped = Header(stamp=client.now_stamp(), frame_id="front_optical")
            sent.append(stamped)
            publisher.publish(image_msg(stamped, pattern_image(64, 128)))

        def known(grid) -> int:
            return int((cells_of(grid) >= 0).sum())

        assert client.publish_until(send, lambda: any(known(g) > 100 for g in grids), 30.0, period=0.5), process.log()
        grid = next(g for g in grids if known(g) > 100)
        assert grid.header.frame_id == "base_link"
        assert any(grid.header.stamp == h.stamp for h in sent)
        cells = cells_of(grid)
        assert (cells.shape == (30 * 10, 40 * 10)) and (cells >= 0).sum() > 100  # every class costs: seen = known
        assert set(np.unique(cells)) <= {-1, 0, 50, 100}
    finally:
        process.assert_clean_exit()


# --- odometry: a grid anchored in odom ------------------------------------------------------------


def test_with_odometry_a_parked_car_stays_in_its_odom_cells_and_frames_without_a_pose_are_refused(client, tmp_path):
    """The standalone node over DDS with costmap.odometry_topic: the grid is published in odom, its
    window follows the vehicle, a parked car seen from 0 m and from 4 m further lands in the same
    odom cells, and a mask stamped after the last odometry (beyond the tolerance) is refused.
    /diagnostics warn before the first pose and when a frame had none, with the reason."""
    from nav_msgs.msg import Odometry

    name = "costmap_test_odometry"
    mask_topic, odometry_topic = "/costmap_odometry_test/front/mask", "/costmap_odometry_test/odom"
    parameters = {
        "cameras": ["front"], "front": {"mask_topic": mask_topic, "pose": POSE, "intrinsics": [float(v) for v in CAMERA.K[[0, 1, 0, 1], [0, 1, 2, 2]]],
                                        "image_width": CAMERA.width, "image_height": CAMERA.height},
        **grid_parameters(),
    }
    # One frame from each place: the last observation shows (evidence would wait for a second frame).
    parameters["costmap"].update(odometry_topic=odometry_topic, transform_tolerance=0.05, memory="latest")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}))
    diagnostics = DiagnosticsLog(client)
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    try:
        masks = client.node.create_publisher(Image, mask_topic, 10)
        odometry = client.node.create_publisher(Odometry, odometry_topic, 10)

        def odometry_status(words: str):
            array = diagnostics.wait(name, lambda a: words in getattr(status(a, name, "odometry"), "message", ""), 6.0)
            assert array is not None, f"no odometry diagnostics saying {words!r}: {[a.status for _, a in diagnostics.of(name)][-1:]}"
            return status(array, name, "odometry")

        assert odometry_status("no odometry on").level == b"\x01"  # WARN before any pose
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        assert client.spin_until(
            lambda: not process.alive() or (masks.get_subscription_count() > 0 and odometry.get_subscription_count() > 0), 60.0
        ), process.log()

        def drive_to(x: float) -> OccupancyGrid:
            """The parked car (12 m ahead of x = 0) seen from x, until a grid of it comes back (discovery
            may lose the first messages)."""
            for _ in range(10):
                grid = send_from(x)
                if grid is not None:
                    return grid
            raise AssertionError(f"no grid came back; node log:\n{process.log()}")

        def send_from(x: float) -> OccupancyGrid | None:
            """Odometry around the mask's stamp (x at the stamp itself), then the mask."""
            stamp = client.now_stamp()
            car = (CAR_BOX[0] - x, CAR_BOX[1] - x, CAR_BOX[2], CAR_BOX[3])
            for offset in (-0.05, 0.05):
                message = Odometry()
                message.header.frame_id, message.child_frame_id = "odom", "base_link"
                message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                    stamp.sec * 1_000_000_000 + stamp.nanosec + round(offset * 1e9), 1_000_000_000)
                message.pose.pose.position.x = x + offset  # 1 m/s: the pose at the mask's stamp is x
                message.pose.pose.orientation.w = 1.0
                odometry.publish(message)
            client.spin_for(0.2)
            masks.publish(mask_msg(stamp, render(CAMERA, FRONT, car)))
            if client.spin_until(lambda: bool(grids) and grids[-1].header.stamp == stamp, 5.0):
                return grids[-1]
            return None

        def car_cells(grid: OccupancyGrid) -> set[tuple[int, int]]:
            rows, columns = np.nonzero(cells_of(grid) == 100)
            resolution = grid.info.resolution
            return {(round(grid.info.origin.position.x / resolution) + c, round(grid.info.origin.position.y / resolution) + r)
                    for r, c in zip(rows.tolist(), columns.tolist())}

        first = drive_to(0.0)
        assert first.header.frame_id == "odom"
        parked = car_cells(first)
        assert parked, "the car's contact is not in the grid"
        second = drive_to(4.0)
        assert second.info.origin.position.x == pytest.approx(first.info.origin.position.x + 4.0)  # the window followed
        again = car_cells(second)
        moved = [cell for cell in parked if not any((cell[0] + dx, cell[1] + dy) in again for dx in (-1, 0, 1) for dy in (-1, 0, 1))]
        assert not moved, f"seen from 4 m closer, these odom cells of the car moved by more than a cell: {moved}"

        stale = client.now_stamp()
        stale.nanosec += 300_000_000  # 0.3 s ahead: within max_stamp_skew, far past the last odometry
        if stale.nanosec >= 1_000_000_000:
            stale.sec, stale.nanosec = stale.sec + 1, stale.nanosec - 1_000_000_000
        masks.publish(mask_msg(stale, render(CAMERA, FRONT)))
        assert client.spin_until(lambda: "no vehicle pose at its stamp" in process.log(), 10.0), process.log()
        assert not any(grid.header.stamp == stale for grid in grids)
        late = odometry_status("had no vehicle pose at their stamp (odometry is")
        assert late.level == b"\x01" and values(late)["frame_id"] == "odom", late
        refused = status(diagnostics.of(name)[-1][1], name, "costmap")
        assert values(refused)["refused.front.stamp_odometry"] == "1", refused

        # Odometry that lies is refused, counted by kind and reported on the odometry line, never folded in.
        def lying(frame_id: str = "odom", orientation=(0.0, 0.0, 0.0, 1.0), x: float = 0.0, ahead_s: float = 0.0) -> None:
            message = Odometry()
            stamp = client.now_stamp()
            message.header.frame_id = frame_id
            message.header.stamp.sec, message.header.stamp.nanosec = divmod(
                stamp.sec * 1_000_000_000 + stamp.nanosec + round(ahead_s * 1e9), 1_000_000_000)
            message.pose.pose.position.x = x
            (message.pose.pose.orientation.x, message.pose.pose.orientation.y, message.pose.pose.orientation.z,
             message.pose.pose.orientation.w) = orientation
            odometry.publish(message)

        lying(orientation=(0.0, 0.0, 0.0, 0.0))
        lying(orientation=(float("nan"), 0.0, 0.0, 1.0))
        lying(x=float("inf"))
        lying(frame_id="map", x=10.0)  # another frame on the same topic: never interpolated with odom
        lying(ahead_s=30.0)
        counted = odometry_status("odometry messages on /costmap_odometry_test/odom refused")
        assert counted.level == b"\x01", counted
        assert client.spin_until(lambda: "odometry refused: odometry stamped" in process.log(), 5.0), process.log()
        kinds = ("messages_refused.invalid", "messages_refused.frame", "messages_refused.future")
        array = diagnostics.wait(name, lambda a: status(a, name, "odometry") is not None and kinds[2] in values(status(a, name, "odometry")), 6.0)
        assert array is not None, diagnostics.of(name)[-1][1]
        final = status(array, name, "odometry")
        assert {key: values(final).get(key) for key in kinds} == {
            "messages_refused.invalid": "3", "messages_refused.frame": "1", "messages_refused.future": "1"}, final
        assert "in frame 'map', not 'odom'" in process.log() and "is not a rotation" in process.log()
    finally:
        process.assert_clean_exit()


# --- TF: camera and vehicle poses where tf2_ros is installed --------------------------------------


def _tf_parameters(mask_topic: str) -> dict:
    """A front camera without a pose (the default: TF gives it) and a grid anchored in odom through TF."""
    parameters = {
        "cameras": ["front"],
        "front": {"mask_topic": mask_topic, "intrinsics": [float(v) for v in CAMERA.K[[0, 1, 0, 1], [0, 1, 2, 2]]],
                  "image_width": CAMERA.width, "image_height": CAMERA.height},
        **grid_parameters(),
    }
    parameters["costmap"].update(global_frame="odom", memory="latest")
    return parameters


def test_without_tf2_ros_a_vehicle_pose_from_tf_is_refused_at_configure_with_the_reason(client, tmp_path):
    from denseaspp_ros.ros.transforms import tf_available

    if tf_available():
        pytest.skip("tf2_ros is installed: the TF path itself is tested instead")
    name = "costmap_test_no_tf"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": _tf_parameters("/costmap_no_tf_test/front/mask")}}))
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    log = process.assert_failed_exit()
    assert "configure failed: costmap.global_frame 'odom' takes the vehicle's pose from TF, but tf2_ros is not installed" in log


@pytest.mark.skipif(tf2_ros is None, reason="tf2_ros is not installable from PyPI: the TF path runs on a ROS 2 install")
def test_camera_and_vehicle_poses_from_tf_anchor_the_grid_in_odom(client, tmp_path):
    """segmentation's masks in the camera's optical frame, C.pose empty, costmap.global_frame odom:
    the camera's pose comes from /tf_static, the vehicle's from /tf at the mask's stamp, and the
    parked car lands in the same odom cells seen from 0 m and from 4 m further."""
    from geometry_msgs.msg import TransformStamped
    from street_scene import quaternion_of

    name, mask_topic = "costmap_test_tf", "/costmap_tf_test/front/mask"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": _tf_parameters(mask_topic)}}))
    process = NodeProcess(name, params, tmp_path / "node.log", program="semantic_costmap_node")
    static, moving = tf2_ros.StaticTransformBroadcaster(client.node), tf2_ros.TransformBroadcaster(client.node)

    def transform(stamp, parent: str, child: str, xyz, quaternion) -> TransformStamped:
        message = TransformStamped()
        message.header.stamp, message.header.frame_id, message.child_frame_id = stamp, parent, child
        (message.transform.translation.x, message.transform.translation.y, message.transform.translation.z) = xyz
        (message.transform.rotation.x, message.transform.rotation.y, message.transform.rotation.z,
         message.transform.rotation.w) = quaternion
        return message

    static.sendTransform(transform(client.now_stamp(), "base_link", "front_optical", FRONT.position,
                                   quaternion_of(FRONT.optical_to_vehicle())))
    try:
        masks = client.node.create_publisher(Image, mask_topic, 10)
        grids = client.collect(OccupancyGrid, f"/{name}/costmap", LATCHED)
        assert client.spin_until(lambda: not process.alive() or masks.get_subscription_count() > 0, 60.0), process.log()

        def seen_from(x: float) -> set[tuple[int, int]]:
            for _ in range(10):  # discovery may lose the first messages
                stamp = client.now_stamp()
                moving.sendTransform(transform(stamp, "odom", "base_link", (x, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)))
                client.spin_for(0.2)
                car = (CAR_BOX[0] - x, CAR_BOX[1] - x, CAR_BOX[2], CAR_BOX[3])
                header = mask_msg(stamp, render(CAMERA, FRONT, car))
                header.header.frame_id = "front_optical"
                masks.publish(header)
                if client.spin_until(lambda: bool(grids) and grids[-1].header.stamp == stamp, 3.0):
                    grid = grids[-1]
                    assert grid.header.frame_id == "odom"
                    rows, columns = np.nonzero(cells_of(grid) == 100)
                    resolution = grid.info.resolution
                    return {(round(grid.info.origin.position.x / resolution) + c, round(grid.info.origin.position.y / resolution) + r)
                            for r, c in zip(rows.tolist(), columns.tolist())}
            raise AssertionError(f"no grid came back; node log:\n{process.log()}")

        parked = seen_from(0.0)
        assert parked, "the car's contact is not in the grid"
        again = seen_from(4.0)
        moved = [cell for cell in parked if not any((cell[0] + dx, cell[1] + dy) in again for dx in (-1, 0, 1) for dy in (-1, 0, 1))]
        assert not moved, f"seen from 4 m closer, these odom cells of the car moved by more than a cell: {moved}"
    finally:
        process.assert_clean_exit()

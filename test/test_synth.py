"""The synthetic street world: labels agree with geometry, drives are reproducible, outputs read back."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from denseaspp_ros.bags import BagError, MatchStats, grid_classes, open_bag, read_labelled_frames
from denseaspp_ros.costmap import CameraModel, CameraPose, GridSpec, Pose2D
from denseaspp_ros.eval.map_accuracy import truth_window
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.synth import Renderer, Scene, generate_scene
from denseaspp_ros.synth.drive import DEFAULT_MOUNT, DriveConfig, drive
from denseaspp_ros.synth.faults import STAMP_OFFSET_NS, Fault, parse_faults
from denseaspp_ros.errors import DenseASPPError
from denseaspp_ros.frames import stamp_ns
from denseaspp_ros.synth.outputs import (
    FAULTS_TOPIC,
    CAMERA_INFO_TOPIC, GRID_TOPIC, IMAGE_TOPIC, LABEL_TOPIC, MAP_TOPIC, ODOMETRY_TOPIC, read_camera, write_drive,
)
from denseaspp_ros.synth.scene import LANE_CENTRE, ROAD_HALF_WIDTH
from denseaspp_ros.train import CityscapesDataset

CLASS = {name: index for index, name in enumerate(CITYSCAPES.class_names)}
CAMERA = CameraModel.from_intrinsics([400.0, 400.0, 255.5, 127.5], 512, 256)
MOUNT = CameraPose(1.5, 0.0, 1.3, 0.0, 0.08, 0.0)


def pixel_of(renderer: Renderer, world_point: np.ndarray, ego_x: float = 0.0) -> tuple[int, int]:
    """(row, column) where the camera model puts a world point."""
    camera_position = renderer.vehicle_position(ego_x) + renderer.mount.position
    optical = (world_point - camera_position) @ renderer.rotation
    u, v = CAMERA.project(optical[None])[0]
    return int(round(v)), int(round(u))


def empty_street() -> Scene:
    return Scene(seed=0, length=100.0, sidewalk_width=(3.0, 3.0), terrain_width=(2.0, 2.0))


def test_a_box_appears_where_the_camera_model_says():
    scene = empty_street()
    car = (14.0, -LANE_CENTRE - 0.9, 0.0, 18.5, -LANE_CENTRE + 0.9, 1.5)  # 14 m ahead, in the ego lane
    scene.boxes.add(car, "car", (0.5, 0.1, 0.1))
    renderer = Renderer(CAMERA, MOUNT, noise=0.0)
    frame = renderer.render(scene, 0.0)
    row, column = pixel_of(renderer, np.array([14.0, -LANE_CENTRE, 0.75]))  # the centre of its rear face
    assert frame.train_ids[row, column] == CLASS["car"]
    assert frame.depth[row, column] == pytest.approx(14.0 - MOUNT.x, rel=1e-3)  # optical depth of the face
    left_edge_row, left_edge_col = pixel_of(renderer, np.array([14.0, -LANE_CENTRE + 0.9, 0.75]))
    # Its left side (+y) is on the image's left: car to the right of that edge, road to the left.
    assert frame.train_ids[left_edge_row, left_edge_col + 3] == CLASS["car"]
    assert frame.train_ids[left_edge_row, left_edge_col - 3] != CLASS["car"]
    top_row, top_col = pixel_of(renderer, np.array([14.0, -LANE_CENTRE, 1.5]))
    assert frame.train_ids[top_row + 2, top_col] == CLASS["car"] and frame.train_ids[top_row - 2, top_col] != CLASS["car"]


def test_a_fence_shows_boards_a_wall_does_not_and_a_traffic_light_shows_its_three_lenses():
    """What tells these classes apart besides colour: otherwise a fence is a wall's box, and a light a dark box."""
    scene = empty_street()
    same_colour = (0.55, 0.55, 0.58)
    scene.boxes.add((12.0, -LANE_CENTRE - 3.0, 0.0, 12.12, -LANE_CENTRE - 0.2, 1.5), "fence", same_colour)
    scene.boxes.add((12.0, -LANE_CENTRE + 0.2, 0.0, 12.12, -LANE_CENTRE + 3.0, 1.5), "wall", same_colour)
    scene.boxes.add((10.0, -LANE_CENTRE - 0.2, 2.5, 10.4, -LANE_CENTRE + 0.2, 3.5), "traffic light", (0.1, 0.1, 0.1))
    frame = Renderer(CAMERA, MOUNT, noise=0.0).render(scene, 0.0)
    row = pixel_of(Renderer(CAMERA, MOUNT), np.array([12.0, -LANE_CENTRE, 0.75]))[0]
    fence = frame.rgb[row][frame.train_ids[row] == CLASS["fence"]].astype(float).mean(1)
    wall = frame.rgb[row][frame.train_ids[row] == CLASS["wall"]].astype(float).mean(1)
    assert len(fence) > 40 and len(wall) > 40
    assert fence.min() < 0.6 * wall.min()  # the gaps between the boards
    assert wall.min() > 0.75 * wall.max()  # plain: its texture varies by +-15%
    light = frame.rgb[frame.train_ids == CLASS["traffic light"]].astype(int)
    red, amber, green = (light[:, 0] > 200) & (light[:, 1] < 60), (light[:, 0] > 200) & (light[:, 1] > 130), light[:, 1] > 180
    assert red.sum() > 5 and amber.sum() > 5 and green.sum() > 5
    assert (light.max(1) < 60).mean() > 0.5  # a dark housing around them


@pytest.mark.parametrize("distance", [5.0, 10.0, 25.0])
def test_ground_pixels_carry_the_class_and_depth_of_where_they_land(distance):
    scene = empty_street()
    renderer = Renderer(CAMERA, MOUNT, noise=0.0)
    frame = renderer.render(scene, 0.0)
    ego_y = -LANE_CENTRE
    for lateral, expected in ((0.0, "road"), (ROAD_HALF_WIDTH + 1.5 + LANE_CENTRE, "sidewalk")):
        point = np.array([MOUNT.x + distance, ego_y + lateral, 0.0])
        row, column = pixel_of(renderer, point)
        if 0 <= row < CAMERA.height and 0 <= column < CAMERA.width:
            assert frame.train_ids[row, column] == CLASS[expected], (distance, lateral)
    row, column = pixel_of(renderer, np.array([MOUNT.x + distance, ego_y, 0.0]))
    # Depth along the optical axis of the ground point straight ahead.
    optical_z = (np.array([distance, 0.0, -MOUNT.z]) @ renderer.rotation)[2]
    assert frame.depth[row, column] == pytest.approx(optical_z, rel=0.03)
    assert (frame.train_ids[0] == CLASS["sky"]).all()  # the top row looks above the horizon


def test_ground_truth_grid_matches_the_placement():
    scene = empty_street()
    scene.boxes.add((12.0, -LANE_CENTRE - 1.0, 0.0, 16.0, -LANE_CENTRE + 1.0, 1.5), "car", (0.5, 0.1, 0.1))
    scene.cylinders.add((10.0, -(ROAD_HALF_WIDTH + 1.0), 0.3, 0.0, 1.8), "person", (0.2, 0.2, 0.2))
    scene.boxes.add((20.0, -7.0, 2.0, 20.1, -6.0, 3.0), "traffic sign", (0.8, 0.8, 0.1))  # in the air: no footprint
    renderer = Renderer(CAMERA, MOUNT)
    grid = GridSpec()
    classes = renderer.ground_truth_grid(scene, 0.0, grid)
    assert classes.shape == (grid.height, grid.width)

    def at(x_world: float, y_world: float) -> int:
        vehicle = renderer.vehicle_position(0.0)
        index = int(grid.cell_index(np.array([x_world - vehicle[0]]), np.array([y_world - vehicle[1]]))[0])
        return int(classes.ravel()[index])

    assert at(14.0, -LANE_CENTRE) == CLASS["car"]
    assert at(10.0, -(ROAD_HALF_WIDTH + 1.0)) == CLASS["person"]
    assert at(20.05, -6.5) == CLASS["sidewalk"]
    assert at(5.0, -LANE_CENTRE) == CLASS["road"]
    assert at(5.0, ROAD_HALF_WIDTH + 4.0) == CLASS["terrain"]


def test_a_drive_is_reproducible_from_its_seed():
    config = DriveConfig(frames=3, seed=7, size=(64, 128))
    first, second = list(drive(config)), list(drive(config))
    for a, b in zip(first, second):
        assert a.stamp_ns == b.stamp_ns
        np.testing.assert_array_equal(a.frame.rgb, b.frame.rgb)
        np.testing.assert_array_equal(a.frame.train_ids, b.frame.train_ids)
    other = next(drive(DriveConfig(frames=1, seed=8, size=(64, 128))))
    assert not np.array_equal(other.frame.train_ids, first[0].frame.train_ids)
    assert first[1].stamp_ns - first[0].stamp_ns == 100_000_000  # 10 Hz


def test_scenes_hold_every_kind_of_object():
    scene = generate_scene(3, 200.0)
    present = set(scene.boxes.classes) | set(scene.cylinders.classes) | set(scene.spheres.classes)
    for name in ("building", "pole", "vegetation", "person", "car", "traffic sign", "rider", "bicycle"):
        assert CLASS[name] in present, name


def test_the_default_camera_is_the_nodes_default_front_camera():
    import yaml
    from pathlib import Path

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "params.yaml").read_text())
    front = params["/**"]["ros__parameters"]["front"]
    assert front["pose"] == [DEFAULT_MOUNT.x, DEFAULT_MOUNT.y, DEFAULT_MOUNT.z, DEFAULT_MOUNT.roll, DEFAULT_MOUNT.pitch, DEFAULT_MOUNT.yaw]
    camera = DriveConfig(size=(front["image_height"], front["image_width"])).camera()
    np.testing.assert_allclose([camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]], front["intrinsics"])


def test_cityscapes_layout_output_is_read_by_the_dataset_loader(tmp_path):
    config = DriveConfig(frames=3, seed=2, size=(64, 128))
    write_drive(config, tmp_path, "val", progress=False)
    dataset = CityscapesDataset(tmp_path, "val", CITYSCAPES)
    assert len(dataset) == 3
    frames = list(drive(config))
    image, label = dataset[1]
    np.testing.assert_array_equal(image, frames[1].frame.rgb)
    np.testing.assert_array_equal(label, frames[1].frame.train_ids)
    camera, pose = read_camera(tmp_path / "camera.yaml")
    np.testing.assert_allclose(camera.K, config.camera().K)
    assert (camera.width, camera.height, pose) == (128, 64, config.mount)
    with pytest.raises(DenseASPPError, match="not a camera description"):
        read_camera(tmp_path / "gtFine")
    assert len(list((tmp_path / "gtFine" / "val").rglob("*_gtFine_labelIds.png"))) == 3
    assert len(list((tmp_path / "bev" / "val").rglob("*_bev_labelTrainIds.png"))) == 3


@pytest.mark.parametrize("storage, compressed", [("mcap", False), ("sqlite3", True)])
def test_bag_output_reads_back(tmp_path, storage, compressed):
    config = DriveConfig(frames=4, seed=3, size=(64, 128))
    bag = tmp_path / "drive"
    write_drive(config, None, bag=bag, compressed=compressed, storage=storage, progress=False)
    stats = MatchStats()
    image_topic = IMAGE_TOPIC + ("/compressed" if compressed else "")
    frames = list(read_labelled_frames(bag, image_topic, LABEL_TOPIC, stats=stats))
    assert stats.matched == 4 and stats.unmatched_images == stats.unmatched_labels == stats.corrupt == 0
    expected = list(drive(config))
    for got, want in zip(frames, expected):
        assert got.stamp_ns == want.stamp_ns
        np.testing.assert_array_equal(got.labels, want.frame.train_ids)
        image = got.rgb()
        if compressed:
            assert np.abs(image.astype(int) - want.frame.rgb).mean() < 4  # JPEG
        else:
            np.testing.assert_array_equal(image, want.frame.rgb)
    reader = open_bag(bag)
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics[CAMERA_INFO_TOPIC] == "sensor_msgs/msg/CameraInfo"
        assert topics[GRID_TOPIC] == "nav_msgs/msg/OccupancyGrid"
        grid_connection = next(c for c in reader.connections if c.topic == GRID_TOPIC)
        _, _, raw = next(reader.messages(connections=[grid_connection]))
        grid = reader.deserialize(raw, grid_connection.msgtype)
        cells = np.asarray(grid.data).reshape(grid.info.height, grid.info.width)
        np.testing.assert_array_equal(cells, expected[0].ground_truth.astype(np.int8))
        np.testing.assert_array_equal(grid_classes(grid.data).reshape(cells.shape), expected[0].ground_truth)
        odometry = next(c for c in reader.connections if c.topic == ODOMETRY_TOPIC)
        poses = [reader.deserialize(raw, odometry.msgtype) for _, _, raw in reader.messages(connections=[odometry])]
        assert [stamp_ns(p.header) for p in poses] == [item.stamp_ns for item in expected]  # one per frame, at its stamp
        assert [p.pose.pose.position.x for p in poses] == pytest.approx([item.ego_x for item in expected])
        assert [item.ego_x for item in expected] == pytest.approx([0.0, 0.8, 1.6, 2.4])  # 8 m/s at 10 Hz
        assert (poses[0].header.frame_id, poses[0].child_frame_id) == ("odom", "base_link")
        assert poses[0].twist.twist.linear.x == config.speed and poses[0].pose.pose.orientation.w == 1.0
        # The whole drive's true map in odom, once: the vehicle-centric truth of each frame is a window of it.
        (_, _, raw), = reader.messages(connections=[c for c in reader.connections if c.topic == MAP_TOPIC])
        world = reader.deserialize(raw, "nav_msgs/msg/OccupancyGrid")
        assert world.header.frame_id == "odom" and stamp_ns(world.header) == expected[0].stamp_ns
        classes = grid_classes(world.data).reshape(world.info.height, world.info.width)
        window = truth_window(classes, GridSpec(world.info.resolution, world.info.width * world.info.resolution,
                                                world.info.height * world.info.resolution, world.info.origin.position.x,
                                                world.info.origin.position.y, "odom"),
                              replace(config.grid, origin_x=config.grid.origin_x + expected[-1].ego_x, frame_id="odom"))
        known = window != 255  # where traffic passed during the drive, no one class is true throughout
        assert known.mean() > 0.9 and (window[known] == expected[-1].ground_truth[known]).mean() > 0.99
    finally:
        reader.close()


def test_odometry_drift_bends_the_reported_path_and_noise_jitters_it():
    exact = DriveConfig(frames=1)
    drifting = DriveConfig(frames=1, odometry_drift=0.002, odometry_noise=0.05)
    rng = np.random.default_rng(0)
    assert exact.odometry(100.0, rng) == Pose2D(100.0, 0.0, 0.0)
    poses = [drifting.odometry(100.0, rng) for _ in range(200)]
    assert poses[0].yaw == pytest.approx(0.2)  # 2 mrad per metre over 100 m
    # An arc of 100 m turning by 0.2 rad: it ends 9.97 m to the side and 0.3 m short along x.
    assert np.mean([p.y for p in poses]) == pytest.approx((1 - np.cos(0.2)) / 0.002, abs=0.02)
    assert np.mean([p.x for p in poses]) == pytest.approx(np.sin(0.2) / 0.002, abs=0.02)
    assert np.std([p.x for p in poses]) == pytest.approx(0.05, rel=0.25)


def test_bag_errors_name_what_exists(tmp_path):
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=1, size=(32, 64)), None, bag=bag, progress=False)
    with pytest.raises(BagError, match=r"no topic /camera/image.*it has: .*/front/image_raw"):
        list(read_labelled_frames(bag, "/camera/image", LABEL_TOPIC))
    with pytest.raises(BagError, match="does not exist"):
        list(read_labelled_frames(tmp_path / "missing", IMAGE_TOPIC, LABEL_TOPIC))
    with pytest.raises(BagError, match="exists"):
        write_drive(DriveConfig(frames=1, size=(32, 64)), None, bag=bag, progress=False)


def test_traffic_moves_smoothly_from_the_first_frame_and_the_ego_lane_stays_clear():
    """Frame 0 is already part of the motion (a pedestrian who set off before the drive is mid-road),
    and nothing that moves ever stands in the ego vehicle's way."""
    scene = generate_scene(5, 200.0, ego_speed=8.0)
    movers = scene.movers()
    for step in range(60):
        t = step / 10.0
        now, later = movers.at(t), movers.at(t + 0.1)
        for shape in ("boxes", "cylinders"):
            a, b = getattr(now, shape).arrays()[0], getattr(later, shape).arrays()[0]
            assert np.abs(b - a).max() < 2.0  # at most 13 m/s for 0.1 s (oncoming traffic, 11 m/s at most)
        ego_x = 8.0 * t  # the ego vehicle spans x in [ego_x - 1, ego_x + 4] on y in [-2.75, -0.75]
        boxes = now.boxes.arrays()[0]
        clash = (boxes[:, 0] < ego_x + 4) & (boxes[:, 3] > ego_x - 1) & (boxes[:, 1] < -0.75) & (boxes[:, 4] > -2.75)
        cylinders = now.cylinders.arrays()[0]
        near = (np.abs(cylinders[:, 0] - (ego_x + 1.5)) < 2.5 + cylinders[:, 2]) & (np.abs(cylinders[:, 1] + 1.75) < 1.0 + cylinders[:, 2])
        assert not clash.any() and not near.any(), t


def test_fault_specs_parse_and_bad_ones_say_how_to_write_them():
    assert parse_faults("glare@3-6, frozen@4.5-7.5") == (Fault("glare", 3.0, 6.0), Fault("frozen", 4.5, 7.5))
    assert parse_faults("") == ()
    with pytest.raises(DenseASPPError, match="KIND@START-END"):
        parse_faults("glare 3-6")
    with pytest.raises(DenseASPPError, match="unknown camera fault 'fog'"):
        parse_faults("fog@1-2")
    with pytest.raises(DenseASPPError, match="0 <= start < end"):
        parse_faults("blur@5-2")


def test_a_fault_changes_only_what_the_camera_delivers_over_its_interval_and_the_bag_says_when(tmp_path):
    faults = parse_faults("frozen@0.2-0.5,stamp_offset@0.5-0.7,blockage@0.7-0.9")
    config = DriveConfig(frames=10, seed=3, size=(64, 128), faults=faults)
    clean = list(drive(replace(config, faults=())))
    faulty = list(drive(config))
    assert [item.faults for item in faulty] == [(), (), ("frozen",), ("frozen",), ("frozen",), ("stamp_offset",),
                                                  ("stamp_offset",), ("blockage",), ("blockage",), ()]
    for got, want in zip(faulty, clean):  # the world and its truth are the same drive
        np.testing.assert_array_equal(got.frame.rgb, want.frame.rgb)
        np.testing.assert_array_equal(got.ground_truth, want.ground_truth)
    assert all((item.camera.rgb == faulty[2].frame.rgb).all() for item in faulty[2:5])  # the fault's first frame, repeated
    assert [item.camera.stamp_ns - item.stamp_ns for item in faulty[4:8]] == [0, STAMP_OFFSET_NS, STAMP_OFFSET_NS, 0]
    smudged = np.abs(faulty[7].camera.rgb.astype(int) - faulty[7].frame.rgb).mean(2) > 20
    assert 0.05 < smudged.mean() < 0.7 and np.array_equal(faulty[9].camera.rgb, faulty[9].frame.rgb)
    bag = tmp_path / "faulty"
    write_drive(config, None, bag=bag, progress=False)
    reader = open_bag(bag)
    try:
        truth = next(c for c in reader.connections if c.topic == FAULTS_TOPIC)
        records = [json.loads(reader.deserialize(raw, truth.msgtype).data) for _, _, raw in reader.messages(connections=[truth])]
        images = next(c for c in reader.connections if c.topic == IMAGE_TOPIC)
        arrivals = [(log_time, stamp_ns(reader.deserialize(raw, images.msgtype).header))
                    for _, log_time, raw in reader.messages(connections=[images])]
    finally:
        reader.close()
    assert [record["faults"] for record in records] == [list(item.faults) for item in faulty]
    assert [record["camera_stamp_ns"] - record["stamp_ns"] for record in records][5] == STAMP_OFFSET_NS
    # Images arrive at the drive's time, stamped as the camera stamped them.
    assert arrivals == [(item.stamp_ns, item.camera.stamp_ns) for item in faulty]

"""The costmap anchored to the world: poses at image stamps, the rolling window, and a stationary
obstacle that stays in its world cell while the vehicle drives (synthetic drive, true masks)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from denseaspp_ros.costmap import (
    CostmapSettings, GridSpec, OdometryRefused, OdometryTrack, Pose2D, PoseBuffer, PoseUnavailable, RollingWindow,
    SemanticCostmap, load_cost_table, odometry_pose, yaw_of_quaternion,
)
from denseaspp_ros.costmap.egomotion import interpolate, scroll
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.synth.drive import DriveConfig, drive, truth_map

SECOND = 1_000_000_000


def test_poses_are_interpolated_at_the_stamp_along_the_shortest_arc():
    before, after = (0, Pose2D(0.0, 0.0, math.radians(170))), (SECOND, Pose2D(2.0, 4.0, math.radians(-170)))
    middle = interpolate(before, after, SECOND // 2)
    assert (middle.x, middle.y) == pytest.approx((1.0, 2.0))
    assert abs(math.remainder(middle.yaw - math.pi, math.tau)) < 1e-9  # through 180 degrees, not through 0
    assert yaw_of_quaternion(0.0, 0.0, math.sin(0.3), math.cos(0.3)) == pytest.approx(0.6)


def test_the_buffer_answers_within_its_tolerance_and_says_why_not_otherwise():
    buffer = PoseBuffer(history_s=2.0)
    with pytest.raises(PoseUnavailable, match="no odometry received yet"):
        buffer.at(0, 0.1)
    for step in range(31):  # 3 s at 10 Hz, moving 1 m/s along x
        buffer.add(step * SECOND // 10, Pose2D(step / 10, 0.0, 0.0))
    assert buffer.at(round(2.55 * SECOND), 0.1).x == pytest.approx(2.55)
    assert buffer.at(round(3.05 * SECOND), 0.1).x == pytest.approx(3.0)  # late, within the tolerance
    with pytest.raises(PoseUnavailable, match="odometry is 0.500 s behind the frame"):
        buffer.at(round(3.5 * SECOND), 0.1)
    with pytest.raises(PoseUnavailable, match="older than the odometry kept"):
        buffer.at(round(0.5 * SECOND), 0.1)  # history is 2 s: poses before 1 s are gone
    buffer.add(0, Pose2D(0.0, 0.0, 0.0))  # time went back (a looped bag): start over
    assert len(buffer) == 1


def test_the_window_follows_in_whole_cells_and_keeps_what_stays():
    shape = GridSpec(resolution=1.0, length_x=4.0, length_y=4.0)
    first = RollingWindow.around(Pose2D(0.2, 0.2, 1.0), shape, "odom")
    assert (first.grid.origin_x, first.grid.origin_y, first.grid.frame_id) == (-2.0, -2.0, "odom")
    second = RollingWindow.around(Pose2D(1.3, 0.2, 0.0), shape, "odom")
    assert first.shift_to(second) == (-1, 0)
    values = np.arange(16).reshape(4, 4)
    moved = scroll(values, -1, 0, -1)
    np.testing.assert_array_equal(moved[:, :3], values[:, 1:])  # same world cell, one column to the left
    assert (moved[:, 3] == -1).all()  # entered: unknown
    assert (scroll(values, 5, 0, 0) == 0).all()


def _in_world(costmap: SemanticCostmap, contacts: bool) -> set[tuple[int, int]]:
    """World cells (integer cell coordinates) an obstacle contact decided, or that were seen at all."""
    snapshot = costmap.snapshot()
    cells = snapshot.contact_cells()[0] if contacts else np.flatnonzero(snapshot.keys.ravel())
    x, y = snapshot.grid.cell_centers(cells)
    resolution = snapshot.grid.resolution
    return set(zip(np.floor(x / resolution).astype(int).tolist(), np.floor(y / resolution).astype(int).tolist()))


@pytest.mark.parametrize("anchored", [True, False])
def test_a_parked_car_stays_in_its_world_cell_only_when_anchored(anchored):
    """Two frames 4 m apart of a synthetic drive with its true masks: anchored, the obstacle contacts
    seen in both land in the same odom cells; vehicle-centric, they are displaced by the drive."""
    config = DriveConfig(frames=6, seed=11, size=(128, 256), speed=8.0, fps=10.0)
    table = load_cost_table(None, CITYSCAPES)
    grid = GridSpec(resolution=0.2, length_x=40.0, length_y=30.0, origin_x=-10.0, origin_y=-15.0)
    settings = CostmapSettings(grid=grid, memory="latest")  # one frame each: the geometry, not the fusion
    seen = []
    for item in drive(config):
        if item.index not in (0, 5):
            continue
        costmap = SemanticCostmap(table, settings, anchored=anchored)
        costmap.set_camera("front", config.camera(), config.mount)
        pose = Pose2D(item.index * config.speed / config.fps, 0.0, 0.0)
        costmap.update("front", item.frame.train_ids, item.stamp_ns / 1e9, pose=pose if anchored else None)
        # Vehicle-centric cells are read as if they were world cells: that is what a planner gets.
        seen.append((_in_world(costmap, contacts=True), _in_world(costmap, contacts=False)))
    (first, first_seen), (second, _) = seen
    # Contacts of what stands still, where the first frame saw the ground (traffic moves with the vehicle).
    truth, truth_grid = truth_map(config)
    swept = cv2.dilate((truth == 255).astype(np.uint8), np.ones((7, 7), np.uint8)).ravel() > 0  # with its contacts' spread
    moving = {(int(np.floor(x / 0.2)), int(np.floor(y / 0.2))) for x, y in zip(*truth_grid.cell_centers(np.flatnonzero(swept)))}
    both = [(x, y) for x, y in second if (x, y) in first_seen and (x, y) not in moving]
    assert len(first) > 20 and len(both) > 20
    near = sum(any((x + dx, y + dy) in first for dx in (-1, 0, 1) for dy in (-1, 0, 1)) for x, y in both)
    share = near / len(both)
    if anchored:
        assert share >= 0.8, f"{100 * share:.0f}% of the second frame's contacts are within a cell of the first's"
    else:
        assert share < 0.5, f"vehicle-centric cells should move with the vehicle, {100 * share:.0f}% stayed"


# --- evidence over frames ---------------------------------------------------------------------------


def _evidence_costmap() -> SemanticCostmap:
    from street_scene import CAMERA, FRONT, GRID, TABLE

    settings = CostmapSettings(grid=GRID)  # the defaults: evidence when anchored (memory auto), 30 s of memory
    costmap = SemanticCostmap(TABLE, settings, anchored=True)
    costmap.set_camera("front", CAMERA, FRONT)
    return costmap


def _lethal_world_cells(costmap: SemanticCostmap) -> set[tuple[int, int]]:
    snapshot = costmap.snapshot()
    rows, columns = np.nonzero(snapshot.costs == 100)
    resolution = snapshot.grid.resolution
    return {(round(snapshot.grid.origin_x / resolution) + c, round(snapshot.grid.origin_y / resolution) + r)
            for r, c in zip(rows.tolist(), columns.tolist())}


def test_one_frame_of_an_obstacle_on_ground_seen_free_is_unknown_two_are_lethal():
    from street_scene import CAMERA, CAR_BOX, FRONT, render

    costmap = _evidence_costmap()  # standing still in odom
    car, still = render(CAMERA, FRONT, CAR_BOX), Pose2D(0.0, 0.0, 0.0)
    costmap.update("front", render(CAMERA, FRONT), 0.9, pose=still)  # the empty road: seen free
    costmap.update("front", car, 1.0, pose=still)
    snapshot = costmap.snapshot()
    contact = snapshot.table.key_is_contact[costmap._layers["front"].obstacle_keys.reshape(snapshot.keys.shape)]
    assert contact.any() and (snapshot.costs[contact] == -1).all()  # one misread frame: unknown, neither free nor lethal
    costmap.update("front", car, 1.1, pose=still)
    assert (costmap.snapshot().costs[contact] == 100).all()  # a second: an obstacle that arrived


def test_a_contact_where_nothing_was_seen_before_is_lethal_at_once():
    from street_scene import CAMERA, CAR_BOX, FRONT, render

    costmap = _evidence_costmap()
    costmap.update("front", render(CAMERA, FRONT, CAR_BOX), 1.0, pose=Pose2D(0.0, 0.0, 0.0))
    snapshot = costmap.snapshot()
    contact = snapshot.table.key_is_contact[snapshot.keys]
    assert contact.sum() > 10 and (snapshot.costs[contact] == 100).all()


def test_a_parked_car_stays_marked_after_it_leaves_the_view_and_clears_when_seen_free():
    from street_scene import CAMERA, CAR_BOX, FRONT, render

    costmap = _evidence_costmap()
    parked_at = CAR_BOX[0]  # its near face, in odom
    marked = None
    for frame in range(10):  # driving towards it at 1 m/s, 10 Hz
        x = frame * 0.1
        costmap.update("front", render(CAMERA, FRONT, (parked_at - x, CAR_BOX[1] - x, *CAR_BOX[2:])), frame * 0.1,
                       pose=Pose2D(x, 0.0, 0.0))
        marked = _lethal_world_cells(costmap)
    assert len(marked) > 10
    # Driven past: the car is behind the camera, the ground ahead is seen free; the car's cells stay.
    costmap.update("front", render(CAMERA, FRONT), 2.0, pose=Pose2D(parked_at + 3.0, 0.0, 0.0))
    assert marked <= _lethal_world_cells(costmap)
    # Back where it was seen from, and the car is gone: cleared within three frames.
    for frame in range(3):
        costmap.update("front", render(CAMERA, FRONT), 3.0 + frame * 0.1, pose=Pose2D(0.9, 0.0, 0.0))
    assert not (marked & _lethal_world_cells(costmap))


def test_a_late_frame_lands_in_the_window_as_it_is_and_never_moves_it_back():
    from street_scene import CAMERA, CAR_BOX, FRONT, render

    costmap = _evidence_costmap()
    costmap.update("front", render(CAMERA, FRONT), 2.0, pose=Pose2D(16.0, 0.0, 0.0))
    ahead = costmap.window
    costmap.update("front", render(CAMERA, FRONT, CAR_BOX), 1.0, pose=Pose2D(8.0, 0.0, 0.0))  # a second older
    assert costmap.window == ahead  # what lies ahead of the newest pose was not scrolled away


@pytest.mark.parametrize("changes, words", [
    ({"occupied_threshold": 4.0, "evidence_max": 3.0}, "no cell could ever be lethal"),
])
def test_evidence_settings_that_could_never_mark_a_cell_are_refused(changes, words):
    from denseaspp_ros.errors import DenseASPPError

    with pytest.raises(DenseASPPError, match=words):
        CostmapSettings(**changes)


# --- odometry that lies ---------------------------------------------------------------------------


def odometry_message(frame_id: str = "odom", stamp: int = 1_000_000_000, x: float = 0.0, orientation=(0.0, 0.0, 0.0, 1.0)):
    position = SimpleNamespace(x=x, y=0.0, z=0.0)
    quaternion = SimpleNamespace(**dict(zip("xyzw", orientation)))
    header = SimpleNamespace(frame_id=frame_id, stamp=SimpleNamespace(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000))
    return SimpleNamespace(header=header, pose=SimpleNamespace(pose=SimpleNamespace(position=position, orientation=quaternion)))


def test_a_quaternion_that_is_not_normalised_gives_its_true_heading():
    half = math.sin(math.pi / 4)
    assert math.degrees(odometry_pose(odometry_message(orientation=(0.0, 0.0, 2 * half, 2 * half))).yaw) == pytest.approx(90.0)
    assert math.degrees(yaw_of_quaternion(0.0, 0.0, 0.3 * half, 0.3 * half)) == pytest.approx(90.0)


@pytest.mark.parametrize("orientation, x", [
    ((0.0, 0.0, 0.0, 0.0), 0.0), ((math.nan, 0.0, 0.0, 1.0), 0.0), ((0.0, 0.0, math.inf, 1.0), 0.0), ((0.0, 0.0, 0.0, 1.0), math.nan),
])
def test_a_pose_that_is_no_pose_is_refused(orientation, x):
    track = OdometryTrack()
    with pytest.raises(OdometryRefused, match="not a rotation|not finite") as refused:
        track.add(odometry_message(orientation=orientation, x=x))
    assert refused.value.kind == "invalid" and track.refused == {"invalid": 1} and len(track.poses) == 0


def test_poses_of_two_frames_are_never_interpolated_together():
    track = OdometryTrack()
    track.add(odometry_message("odom", 1_000_000_000, x=0.0))
    with pytest.raises(OdometryRefused, match="in frame 'map', not 'odom' \\(the first accepted\\)"):
        track.add(odometry_message("map", 1_050_000_000, x=10.0))
    track.add(odometry_message("odom", 1_100_000_000, x=0.2))
    assert track.poses.at(1_050_000_000, 0.1).x == pytest.approx(0.1)  # not 5 m, between odom and map
    given = OdometryTrack("map")
    with pytest.raises(OdometryRefused, match="not 'map' \\(costmap.global_frame\\)"):
        given.add(odometry_message("odom"))
    given.clear()
    assert given.frame_id == "map"


def test_odometry_stamped_ahead_of_the_clock_is_refused_as_such():
    track = OdometryTrack(max_ahead_s=0.5)
    with pytest.raises(OdometryRefused, match="stamped 2.000 s ahead of the clock") as refused:
        track.add(odometry_message(stamp=3_000_000_000), now_ns=1_000_000_000)
    assert refused.value.kind == "future"
    track.add(odometry_message(stamp=1_400_000_000), now_ns=1_000_000_000)  # within the tolerated skew
    assert track.refused == {"future": 1}

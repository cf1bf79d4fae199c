"""The costmap library on its own: geometry against closed forms, cost rules, fusion and decay.

Scenes come from test/street_scene.py: a street (road, a car's box standing on it, sky) ray cast
through the camera model, so the expected cells follow from the scene's geometry.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from denseaspp_ros.costmap import (
    CameraModel,
    CameraModelError,
    CameraPose,
    CostmapSettings,
    CostTableError,
    GroundProjection,
    ProjectionError,
    SemanticCostmap,
    bird_eye_image,
    load_cost_table,
    project_pixels,
)
from denseaspp_ros.costmap.costs import parse_cost_table
from denseaspp_ros.costmap.pose import rotation_of_quaternion
from denseaspp_ros.labels import CITYSCAPES, IGNORE_INDEX, LabelSet
from street_scene import (
    CAMERA,
    CAR_BOX,
    FOCAL,
    FRONT,
    GRID,
    HEIGHT,
    HEIGHT_M,
    PITCH,
    SKY,
    TABLE,
    TERRAIN,
    WIDTH,
    quaternion_of,
    render,
    row_of_ground_point,
)

def cell(x: float, y: float) -> tuple[int, int]:
    """(row, col) of the grid cell holding vehicle-frame point (x, y)."""
    index = int(GRID.cell_index(np.array([x]), np.array([y]))[0])
    assert index >= 0
    return divmod(index, GRID.width)


def make_costmap(**settings) -> SemanticCostmap:
    return SemanticCostmap(TABLE, CostmapSettings(grid=GRID, max_range=30.0, **settings))


# --- geometry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", [3.0, 7.5, 15.0, 28.0])
def test_a_ground_pixel_projects_to_the_closed_form_point(distance):
    row = row_of_ground_point(distance)
    (x, y), = project_pixels(CAMERA, FRONT, np.array([[CAMERA.K[0, 2], row]]))
    assert x == pytest.approx(distance, abs=1e-6)
    assert y == pytest.approx(0.0, abs=1e-9)


def test_the_horizon_and_everything_above_it_are_ignored():
    horizon = CAMERA.K[1, 2] - FOCAL * math.tan(PITCH)  # rays parallel to the ground
    rows = np.array([0.0, horizon - 5, horizon - 0.01, horizon + 1.0])
    points = project_pixels(CAMERA, FRONT, np.stack([np.full(4, 300.0), rows], 1))
    assert np.isnan(points[:3]).all()
    assert np.isfinite(points[3]).all() and points[3, 0] > 50  # just below: far away
    projection = GroundProjection(CAMERA, FRONT, GRID, max_range=30.0)
    assert projection.first_row > horizon  # nothing above the horizon is ever looked at


def test_max_range_drops_far_ground():
    beyond = project_pixels(CAMERA, FRONT, np.array([[319.5, row_of_ground_point(35.0)]]), max_range=30.0)
    within = project_pixels(CAMERA, FRONT, np.array([[319.5, row_of_ground_point(25.0)]]), max_range=30.0)
    assert np.isnan(beyond).all() and np.isfinite(within).all()


def test_distortion_is_undone_for_the_pixel_rays():
    distorted = CameraModel.from_camera_info(
        [FOCAL, 0, 319.5, 0, FOCAL, 159.5, 0, 0, 1], [-0.3, 0.1, 0.001, -0.002, 0.0], "plumb_bob", WIDTH, HEIGHT
    )
    rational = CameraModel.from_camera_info(
        [FOCAL, 0, 319.5, 0, FOCAL, 159.5, 0, 0, 1], [0.2, -0.1, 0.0, 0.0, 0.01, 0.4, -0.05, 0.02],
        "rational_polynomial", WIDTH, HEIGHT,
    )
    ground = np.array([[6.0, -2.5, 0.0], [12.0, 3.0, 0.0], [4.0, 1.0, 0.0]])
    for camera in (distorted, rational):
        optical = (ground - FRONT.position) @ FRONT.optical_to_vehicle()
        pixels, _ = cv2.projectPoints(optical.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.D)
        back = project_pixels(camera, FRONT, pixels.reshape(-1, 2))
        np.testing.assert_allclose(back, ground[:, :2], atol=1e-4)
        # Ignoring the distortion would put these points decimetres to metres away.
        assert np.abs(project_pixels(CAMERA, FRONT, pixels.reshape(-1, 2)) - ground[:, :2]).max() > 0.1


def test_a_resized_mask_scales_the_intrinsics():
    half = CAMERA.scaled_to(WIDTH // 2, HEIGHT // 2)
    full_pixel = np.array([[401.5, row_of_ground_point(9.0)]])
    half_pixel = (full_pixel + 0.5) / 2 - 0.5  # the same point in a 2x smaller image (pixel centres)
    np.testing.assert_allclose(project_pixels(half, FRONT, half_pixel), project_pixels(CAMERA, FRONT, full_pixel), atol=1e-9)


def test_binning_and_roi_of_camera_info_shift_and_scale_k():
    k = [FOCAL, 0, 319.5, 0, FOCAL, 159.5, 0, 0, 1]
    binned = CameraModel.from_camera_info(k, [], "", WIDTH, HEIGHT, binning=(2, 2))
    assert (binned.width, binned.height) == (WIDTH // 2, HEIGHT // 2)
    np.testing.assert_allclose(binned.K, CAMERA.scaled_to(WIDTH // 2, HEIGHT // 2).K)
    cropped = CameraModel.from_camera_info(k, [], "", WIDTH, HEIGHT, roi=(100, 40, 320, 200))
    assert (cropped.width, cropped.height) == (320, 200)
    assert (cropped.K[0, 2], cropped.K[1, 2]) == (219.5, 119.5)
    pixel = np.array([[300.0, 250.0]])
    np.testing.assert_allclose(project_pixels(cropped, FRONT, pixel - [100, 40]), project_pixels(CAMERA, FRONT, pixel))


@pytest.mark.parametrize(
    "yaw, direction", [(0.0, (1.0, 0.0)), (math.pi / 2, (0.0, 1.0)), (math.pi, (-1.0, 0.0)), (-math.pi / 2, (0.0, -1.0))]
)
def test_optical_frame_follows_the_body_pose(yaw, direction):
    """The image centre's column sees the ground along the camera's heading; image right is the camera's right."""
    pose = CameraPose(0.5, -0.2, HEIGHT_M, 0.0, PITCH, yaw)
    centre, right = project_pixels(CAMERA, pose, np.array([[319.5, 250.0], [600.0, 250.0]]))
    heading = np.array(direction)
    ahead = centre - [pose.x, pose.y]
    assert ahead @ heading > 3 and abs(heading[0] * ahead[1] - heading[1] * ahead[0]) < 1e-9
    # The camera's right is the heading turned clockwise: (hx, hy) -> (hy, -hx).
    assert (right - centre) @ np.array([heading[1], -heading[0]]) > 0.5


def test_roll_tilts_the_image_about_the_optical_axis():
    rolled = CameraPose(0.0, 0.0, HEIGHT_M, 0.1, PITCH, 0.0)  # rolled right-side down (REP 103: +x axis)
    left, right = project_pixels(CAMERA, rolled, np.array([[100.0, 300.0], [540.0, 300.0]]))
    # Rolling to the right lowers the right side of the view: its bottom row sees ground nearer by.
    assert right[0] < left[0]


@pytest.mark.parametrize("pose", [CameraPose(1.7, 0.1, 1.22, 0.0, 0.05, 0.0), CameraPose(-0.5, 0.3, 2.0, 0.1, 0.3, 2.5),
                                  CameraPose(0.0, 0.0, 1.0, -0.2, -0.4, -1.2)])
def test_a_camera_pose_from_tf_of_its_optical_frame_is_the_body_pose(pose):
    """TF gives the images' (optical) frame: as a quaternion, it turns back into the same body pose."""
    rotation = pose.optical_to_vehicle()
    quaternion = quaternion_of(rotation)  # the matrix as TF would send it
    np.testing.assert_allclose(rotation_of_quaternion(*quaternion), rotation, atol=1e-12)
    again = CameraPose.from_optical(pose.position, rotation_of_quaternion(*quaternion))
    np.testing.assert_allclose([getattr(again, f) for f in "x y z roll pitch yaw".split()],
                               [getattr(pose, f) for f in "x y z roll pitch yaw".split()], atol=1e-9)


def test_bad_geometry_is_refused_clearly():
    with pytest.raises(CameraModelError, match="focal lengths must be positive"):
        CameraModel.from_camera_info([0.0] * 9, [], "plumb_bob", WIDTH, HEIGHT)
    with pytest.raises(CameraModelError, match="finite"):
        CameraModel.from_intrinsics([FOCAL, math.nan, 320, 160], WIDTH, HEIGHT)
    with pytest.raises(CameraModelError, match="unsupported distortion model"):
        CameraModel.from_camera_info([FOCAL, 0, 320, 0, FOCAL, 160, 0, 0, 1], [0.1, 0, 0, 0], "equidistant", WIDTH, HEIGHT)
    with pytest.raises(CameraModelError, match="finite"):
        CameraPose.from_list([0, 0, 1.5, 0, math.inf, 0])
    with pytest.raises(CameraModelError, match=r"\[x, y, z, roll, pitch, yaw\]"):
        CameraPose.from_list([0, 0, 1.5])
    with pytest.raises(ProjectionError, match="above the ground"):
        GroundProjection(CAMERA, CameraPose(0, 0, -0.5, 0, 0, 0), GRID, 30.0)


def test_a_camera_looking_at_the_sky_sees_no_ground():
    sky = CameraPose(0.0, 0.0, HEIGHT_M, 0.0, -0.6, 0.0)  # pitched up beyond half the vertical field of view
    projection = GroundProjection(CAMERA, sky, GRID, 30.0)
    assert projection.visible_cells == 0
    costmap = make_costmap()
    costmap.set_camera("up", CAMERA, sky)
    assert costmap.update("up", render(CAMERA, sky), 1.0) == 0
    assert (costmap.snapshot().costs == -1).all()


def test_far_cells_have_no_holes():
    """Beyond ~10 m pixel rows are sparser than 0.1 m cells; every cell in view must still get a value."""
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    costmap.update("front", render(CAMERA, FRONT), 1.0)
    observed = costmap.snapshot().costs.ravel() == 0
    # Independently: the cells whose centre the camera sees within range (forward projection).
    x, y = GRID.cell_centers(np.arange(GRID.size))
    points = np.stack([x, y, np.zeros_like(x)], 1)
    optical = (points - FRONT.position) @ FRONT.optical_to_vehicle()
    ahead = optical[:, 2] > 0.1
    pixels = optical[:, :2] / np.where(ahead, optical[:, 2], 1.0)[:, None] * FOCAL + [319.5, 159.5]
    visible = (
        ahead & (pixels[:, 0] > 0.5) & (pixels[:, 0] < WIDTH - 1.5) & (pixels[:, 1] > 0.5) & (pixels[:, 1] < HEIGHT - 1.5)
        & (np.hypot(x, y) < 29.9)
    )
    assert visible.sum() > 5000
    missing = visible & ~observed
    assert missing.sum() == 0, f"{missing.sum()} holes, e.g. at {x[missing][:5]}, {y[missing][:5]}"
    far = visible & (x > 20)
    assert observed[far].all() and far.sum() > 1000


# --- from classes to cost ------------------------------------------------------------------------


def test_a_car_marks_a_lethal_line_where_it_stands_and_no_smear_behind_it():
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    mask = render(CAMERA, FRONT, car=CAR_BOX)
    costmap.update("front", mask, 1.0)
    costs = costmap.snapshot().costs
    lethal_rows, lethal_cols = np.nonzero(costs == 100)
    x = GRID.origin_x + (lethal_cols + 0.5) * GRID.resolution
    y = GRID.origin_y + (lethal_rows + 0.5) * GRID.resolution
    assert len(x) >= 15  # the car's 1.8 m front, at 0.1 m cells
    # Lethal only at the contact line: the near face's foot, within a cell or two.
    assert np.abs(x - CAR_BOX[0]).max() <= 0.25
    assert np.abs(y).max() <= CAR_BOX[2] + 0.2
    # Flat-ground projection of the car's body would land from 12 m out to infinity: none of it.
    behind = costs[cell(13.0, 0.0)[0] - 5 : cell(13.0, 0.0)[0] + 5, cell(13.0, 0.0)[1] : cell(29.0, 0.0)[1]]
    assert not (behind == 100).any()
    assert (behind == -1).all()  # hidden by the car: unknown, not free
    # The road in front of the car and beside it is free.
    for point in ((5.0, 0.0), (11.5, 0.0), (14.0, 3.0)):
        assert costs[cell(*point)] == 0, point


def test_ground_beyond_a_contact_does_not_clear_it():
    """A thin pole: road visible right behind its foot falls into the same cell but cannot free it."""
    costmap = make_costmap(rule="majority")
    costmap.set_camera("front", CAMERA, FRONT)
    mask = render(CAMERA, FRONT, car=(10.0, 10.05, 0.04, 3.0))  # 8 cm wide, 5 cm deep
    costmap.update("front", mask, 1.0)
    assert costmap.snapshot().costs[cell(10.02, 0.0)] == 100


def test_max_and_majority_rules():
    costmap_max, costmap_majority = make_costmap(rule="max"), make_costmap(rule="majority")
    mask = render(CAMERA, FRONT)
    # Terrain on a few columns of the road near the camera: a minority in the cells it touches.
    mask[250:, 300:303] = TERRAIN
    for costmap in (costmap_max, costmap_majority):
        costmap.set_camera("front", CAMERA, FRONT)
        costmap.update("front", mask, 1.0)
    (x, y), = project_pixels(CAMERA, FRONT, np.array([[301.0, 300.0]]))
    assert costmap_max.snapshot().costs[cell(x, y)] == TABLE.cost_of("terrain") == 80
    assert costmap_majority.snapshot().costs[cell(x, y)] == 0


def test_majority_weighs_by_confidence():
    costmap = make_costmap(rule="majority")
    costmap.set_camera("front", CAMERA, FRONT)
    mask = render(CAMERA, FRONT)
    mask[250:, 300:310] = TERRAIN  # about half of the cells there
    (x, y), = project_pixels(CAMERA, FRONT, np.array([[305.0, 300.0]]))
    confidence = np.full(mask.shape, 30, np.uint8)
    confidence[mask == TERRAIN] = 255  # terrain is certain, the road around it is not
    costmap.update("front", mask, 1.0, confidence)
    assert costmap.snapshot().costs[cell(x, y)] == 80


def test_ignored_classes_and_the_ignore_index_never_mark_the_grid():
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    mask = np.full((HEIGHT, WIDTH), IGNORE_INDEX, np.uint8)
    mask[:, :100] = CITYSCAPES.class_names.index("traffic sign")
    costmap.update("front", mask, 1.0)
    assert (costmap.snapshot().costs == -1).all()


# --- fusion and memory ----------------------------------------------------------------------------


LEFT = CameraPose(0.0, 0.0, HEIGHT_M, 0.0, PITCH, 0.6)  # turned 34 degrees left: overlaps FRONT


def test_two_cameras_fuse_by_the_highest_cost():
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    costmap.set_camera("left", CAMERA, LEFT)
    costmap.update("front", render(CAMERA, FRONT), 1.0)  # the front camera misses the car (e.g. it is new)
    costmap.update("left", render(CAMERA, LEFT, car=CAR_BOX), 1.05)
    fused = costmap.snapshot()
    left_alone = make_costmap()
    left_alone.set_camera("left", CAMERA, LEFT)
    left_alone.update("left", render(CAMERA, LEFT, car=CAR_BOX), 1.05)
    contact = left_alone.snapshot().costs == 100
    assert contact.sum() >= 10
    # Seen free by the front camera and lethal by the left one: lethal.
    front_alone = make_costmap()
    front_alone.set_camera("front", CAMERA, FRONT)
    front_alone.update("front", render(CAMERA, FRONT), 1.0)
    assert (front_alone.snapshot().costs[contact] == 0).mean() > 0.9
    assert (fused.costs[contact] == 100).all()
    # A cell only the front camera sees keeps its value; one only the left camera sees, too.
    assert fused.costs[cell(8.0, -2.5)] == 0
    assert fused.costs[cell(3.0, 3.5)] == 0
    assert bird_eye_image(fused).shape == (GRID.width, GRID.height, 3)


def test_a_new_frame_replaces_what_the_camera_saw_and_decay_forgets():
    costmap = make_costmap(decay_time=0.5)
    costmap.set_camera("front", CAMERA, FRONT)
    costmap.set_camera("left", CAMERA, LEFT)
    costmap.update("front", render(CAMERA, FRONT, car=CAR_BOX), 1.0)
    assert costmap.snapshot().costs[cell(12.0, 0.0)] == 100
    costmap.update("front", render(CAMERA, FRONT), 1.1)  # the car drove away
    assert costmap.snapshot().costs[cell(12.0, 0.0)] == 0
    only_front = cell(8.0, -2.5)
    costmap.update("left", render(CAMERA, LEFT), 1.4)
    assert costmap.snapshot().costs[only_front] == 0  # 0.3 s old: still fresh
    costmap.update("left", render(CAMERA, LEFT), 1.7)
    assert costmap.snapshot().costs[only_front] == -1  # 0.6 s old: forgotten
    assert costmap.snapshot().costs[cell(3.0, 3.5)] == 0


def test_hidden_cells_keep_their_value_until_decay_or_become_unknown_at_once():
    for occluded_unknown, expected in ((False, 0), (True, -1)):
        costmap = make_costmap(decay_time=5.0, occluded_unknown=occluded_unknown, shadow_depth=0.0)
        costmap.set_camera("front", CAMERA, FRONT)
        costmap.update("front", render(CAMERA, FRONT), 1.0)
        costmap.update("front", render(CAMERA, FRONT, car=CAR_BOX), 1.1)  # a car now hides the road behind it
        assert costmap.snapshot().costs[cell(20.0, 0.0)] == expected


@pytest.mark.parametrize("memory", ["latest", "evidence"])
def test_a_face_seen_now_withdraws_the_free_word_of_the_cells_just_behind_it(memory):
    """Road seen free from afar, then a car in front of it: the cells up to shadow_depth behind the
    car's face are unknown at once (they may be the car, or what stands behind it), farther ones
    keep their word until they decay, the road in front stays free."""
    costmap = make_costmap(decay_time=5.0, shadow_depth=4.0, memory=memory)
    costmap.set_camera("front", CAMERA, FRONT)
    costmap.update("front", render(CAMERA, FRONT), 1.0)
    face = CAR_BOX[0]
    assert costmap.snapshot().costs[cell(face + 2.0, 0.0)] == 0 and costmap.snapshot().costs[cell(face + 8.0, 0.0)] == 0
    costmap.update("front", render(CAMERA, FRONT, car=CAR_BOX), 1.1)
    costs = costmap.snapshot().costs
    assert costs[cell(face + 1.0, 0.0)] == -1 and costs[cell(face + 3.5, 0.0)] == -1
    assert costs[cell(face + 8.0, 0.0)] == 0  # beyond shadow_depth: kept until it decays
    # The face: lethal at once, or, with evidence, no longer free after one frame (one hit against one miss).
    assert costs[cell(5.0, 0.0)] == 0 and costs[cell(face + 0.05, 0.0)] == (100 if memory == "latest" else -1)


def test_a_camera_that_cannot_be_trusted_loses_its_free_cells_at_once_and_keeps_marking_obstacles():
    """free=False withholds one frame's ground; forget_free (the camera in FAULT) takes what it called
    free before to unknown in the same update (the frames that would have set a wrong word right are
    the untrusted ones); its obstacles still mark the grid, and another camera's free cells stay."""
    costmap = make_costmap(decay_time=5.0)
    costmap.set_camera("front", CAMERA, FRONT)
    costmap.set_camera("left", CAMERA, LEFT)
    costmap.update("front", render(CAMERA, FRONT), 1.0)
    costmap.update("left", render(CAMERA, LEFT), 1.0)
    only_front, only_left = cell(8.0, -2.5), cell(3.0, 3.5)
    assert costmap.snapshot().costs[only_front] == 0 and costmap.snapshot().costs[only_left] == 0
    costmap.update("front", render(CAMERA, FRONT, car=CAR_BOX), 1.1, free=False)  # one frame withheld: the rest stands
    assert costmap.snapshot().costs[only_front] == 0
    costmap.update("front", render(CAMERA, FRONT, car=CAR_BOX), 1.2, free=False, forget_free=True)
    costs = costmap.snapshot().costs
    assert costs[only_front] == -1 and costs[cell(CAR_BOX[0] + 0.05, 0.0)] == 100
    assert costs[only_left] == 0


def test_pixels_that_may_not_vote_free_still_mark_obstacles():
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    mask = render(CAMERA, FRONT, car=CAR_BOX)
    costmap.update("front", mask, 1.0, no_free=np.ones(mask.shape, bool))
    costs = costmap.snapshot().costs
    assert (costs == 100).sum() >= 15 and not ((costs >= 0) & (costs < 100)).any()
    left_half = np.zeros(mask.shape, bool)
    left_half[:, : mask.shape[1] // 2] = True  # the camera's left: the vehicle's +y
    costmap.update("front", render(CAMERA, FRONT), 1.1, no_free=left_half)
    costs = costmap.snapshot().costs
    assert costs[cell(6.0, -2.0)] == 0 and costs[cell(6.0, 2.0)] == -1


def test_mask_of_another_size_uses_scaled_intrinsics():
    costmap = make_costmap()
    costmap.set_camera("front", CAMERA, FRONT)
    small = CAMERA.scaled_to(WIDTH // 2, HEIGHT // 2)
    costmap.update("front", render(small, FRONT, car=CAR_BOX), 1.0)
    lethal_cols = np.nonzero(costmap.snapshot().costs == 100)[1]
    x = GRID.origin_x + (lethal_cols + 0.5) * GRID.resolution
    assert len(x) and np.abs(x - CAR_BOX[0]).max() <= 0.4  # pixels twice as large


# --- cost tables -----------------------------------------------------------------------------------


def test_default_table_follows_the_documented_rules():
    assert TABLE.cost_of("road") == 0
    assert 0 < TABLE.cost_of("sidewalk") < 100 and 0 < TABLE.cost_of("terrain") < 100
    for lethal in ("building", "wall", "fence", "pole", "vegetation", "person", "rider", "car", "truck", "bus", "train",
                   "motorcycle", "bicycle"):
        assert TABLE.cost_of(lethal) == 100, lethal
    for ignored in ("sky", "traffic light", "traffic sign"):
        assert TABLE.cost_of(ignored) is None, ignored
    # The same costs by trainId, for a ground-truth class grid: ignored classes and 255 are unknown (-1).
    names = CITYSCAPES.class_names
    expected = [-1 if TABLE.cost_of(name) is None else TABLE.cost_of(name) for name in names]
    assert TABLE.class_cost[: len(names)].tolist() == expected and TABLE.class_cost[IGNORE_INDEX] == -1


def test_config_costmap_yaml_is_the_built_in_table():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "config" / "costmap.yaml"
    assert load_cost_table(shipped, CITYSCAPES).classes == TABLE.classes


def test_cost_table_errors_name_the_problem(tmp_path):
    document = {"label_set": "cityscapes", "classes": {name: 0 for name in CITYSCAPES.class_names}}
    with pytest.raises(CostTableError, match=r"unknown class name\(s\) \['roadd'\]"):
        parse_cost_table({**document, "classes": {**document["classes"], "roadd": 0}}, CITYSCAPES)
    with pytest.raises(CostTableError, match=r"no cost for class\(es\) \['sky'\]"):
        parse_cost_table({**document, "classes": {k: v for k, v in document["classes"].items() if k != "sky"}}, CITYSCAPES)
    with pytest.raises(CostTableError, match="integer 0..100 or ignore"):
        parse_cost_table({**document, "classes": {**document["classes"], "road": 150}}, CITYSCAPES)
    with pytest.raises(CostTableError, match="for label set 'mapillary'"):
        parse_cost_table({**document, "label_set": "mapillary"}, CITYSCAPES)
    broken = tmp_path / "broken.yaml"
    broken.write_text("classes: [unclosed")
    with pytest.raises(CostTableError, match="not valid YAML"):
        load_cost_table(broken, CITYSCAPES)
    with pytest.raises(CostTableError, match="missing.yaml does not exist"):
        load_cost_table(tmp_path / "missing.yaml", CITYSCAPES)


def test_custom_label_set_needs_and_gets_its_own_table(tmp_path):
    labels = LabelSet("farm", ("soil", "crop", "tractor", "sky"), np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9], [0, 0, 255]]))
    with pytest.raises(CostTableError, match="no built-in cost table"):
        load_cost_table(None, labels)
    table_file = tmp_path / "farm_costs.yaml"
    table_file.write_text(
        "label_set: farm\nclasses:\n  soil: 0\n  crop: {cost: 100, obstacle: false}\n  tractor: 100\n  sky: ignore\n"
    )
    table = load_cost_table(table_file, labels)
    assert table.cost_of("crop") == 100 and not table.classes[1].obstacle and table.classes[2].obstacle
    # A lethal flat class votes as ground: all of its pixels mark cells, not only its lowest ones.
    costmap = SemanticCostmap(table, CostmapSettings(grid=GRID))
    costmap.set_camera("front", CAMERA, FRONT)
    mask = np.where(render(CAMERA, FRONT) == SKY, 3, 0).astype(np.uint8)
    mask[200:, 300:340] = 1
    costmap.update("front", mask, 1.0)
    assert (costmap.snapshot().costs == 100).sum() > 20



def test_a_mask_of_another_aspect_ratio_is_refused_while_one_scale_passes():
    """Intrinsics scaled anisotropically put every ray in the wrong place: only a uniform resize
    (to within the pixel it rounds off) is projected."""
    from denseaspp_ros.costmap import AspectMismatch

    camera = CameraModel.from_intrinsics([700.0, 700.0, 620.0, 188.0], 1241, 376)
    assert camera.uniformly_scales_to(620, 188) and camera.uniformly_scales_to(2482, 752)
    assert not camera.uniformly_scales_to(1241, 188) and not camera.uniformly_scales_to(376, 1241)
    costmap = SemanticCostmap(load_cost_table(None, CITYSCAPES), CostmapSettings())
    costmap.set_camera("front", camera, CameraPose(0.0, 0.0, 1.5, 0.0, 0.1, 0.0))
    assert costmap.projection("front", (188, 620)) is not None
    with pytest.raises(AspectMismatch, match="a 1241x188 mask is not the camera's 1241x376 at one scale"):
        costmap.projection("front", (188, 1241))

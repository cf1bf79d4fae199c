"""The accumulated map of a synthetic drive against its ground-truth map in odom: what anchoring the
costmap to odometry buys, with the true masks (the costmap alone, not the segmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from denseaspp_ros.costmap import CostmapSettings, GridSpec, load_cost_table
from denseaspp_ros.eval.map_accuracy import drive_map_accuracy, score_map, truth_window
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.synth.drive import DriveConfig

TABLE = load_cost_table(None, CITYSCAPES)


def test_the_truth_is_cut_to_the_window_and_unknown_outside_it():
    truth_grid = GridSpec(1.0, 4.0, 3.0, 0.0, 0.0, "odom")
    truth = np.arange(12, dtype=np.uint8).reshape(3, 4)
    window = GridSpec(1.0, 3.0, 2.0, 2.0, 1.0, "odom")  # columns 2..4, rows 1..2: one column outside
    np.testing.assert_array_equal(truth_window(truth, truth_grid, window), [[6, 7, 255], [10, 11, 255]])


@pytest.fixture(scope="module")
def drive_scores() -> dict:
    # The demo's drive. Anchored, the defaults accumulate evidence: an obstacle face seen in one frame
    # only (the newest, or one just out of occlusion) is unknown until a second frame confirms it,
    # which a short drive's final map would count as missed. Vehicle-centric memory is as long.
    config = DriveConfig(frames=60, seed=7, size=(256, 512))
    settings = CostmapSettings(grid=config.grid, decay_time=30.0)
    return {anchored: drive_map_accuracy(config, TABLE, settings, anchored=anchored) for anchored in (True, False)}


def test_anchored_map_of_a_drive_with_true_masks_meets_the_goals(drive_scores):
    final = drive_scores[True]["final"]
    assert final["free_iou"] >= 0.97, final
    assert final["contact_recall"] >= 0.95, final


def test_without_odometry_the_remembered_cells_are_in_the_wrong_place(drive_scores):
    anchored, vehicle = drive_scores[True]["mean"], drive_scores[False]["mean"]
    assert vehicle["free_iou"] < anchored["free_iou"] - 0.02, (anchored, vehicle)
    assert vehicle["stray_lethal"] > 10 * max(anchored["stray_lethal"], 1.0), (anchored, vehicle)


def test_a_map_that_is_all_lethal_scores_no_free_cells_and_strays_everywhere():
    from denseaspp_ros.costmap import Snapshot

    grid = GridSpec(1.0, 4.0, 4.0, 0.0, 0.0, "odom")
    truth = np.zeros((4, 4), np.uint8)  # road everywhere
    truth[0, 0] = CITYSCAPES.class_names.index("car")
    lethal_key = int(np.flatnonzero(TABLE.key_cost == 100)[0])
    score = score_map(Snapshot(np.full((4, 4), lethal_key, np.uint8), TABLE, grid).costs, TABLE, truth)
    assert score.free_iou == 0.0 and score.stray_lethal == 16 - 4  # all but the car's cell and its neighbours


def test_the_drive_map_pastes_each_window_where_it_lies_and_keeps_what_later_windows_forgot(tmp_path):
    from denseaspp_ros.eval.map_accuracy import DriveMap

    road, car = 0, CITYSCAPES.class_names.index("car")
    truth_grid = GridSpec(1.0, 10.0, 4.0, 0.0, -2.0, "odom")  # column c covers x in [c, c + 1)
    truth = np.full((4, 10), road, np.uint8)
    truth[:, 6] = car
    drive_map = DriveMap(TABLE, truth, truth_grid)
    first = np.full((4, 4), 0, np.int16)  # a window over x in [0, 4): all free, as the truth says
    drive_map.add(first, GridSpec(1.0, 4.0, 4.0, 0.0, -2.0, "odom"))
    second = np.full((4, 4), -1, np.int16)  # x in [3, 7): forgets x = 3, sees free ground and the car's face
    second[:, 1:3] = 0
    second[:, 3] = 100
    score = drive_map.add(second, GridSpec(1.0, 4.0, 4.0, 3.0, -2.0, "odom"))
    assert score.free_iou == 1.0 and score.contact_recall == 1.0 and score.stray_lethal == 0
    expected = np.full((4, 10), -1, np.int16)
    expected[:, :7] = [0, 0, 0, 0, 0, 0, 100]  # x = 0..5 free (x = 3 from the first window), x = 6 the car
    np.testing.assert_array_equal(drive_map.accumulated, expected)
    summary = drive_map.summary()
    assert summary["frames"] == 2 and summary["accumulated"]["free_iou"] == 1.0
    assert summary["accumulated"]["lethal_iou"] == 1.0  # the truth is scored where the drive looked
    assert drive_map.plot(tmp_path / "map.png") and (tmp_path / "map.png").stat().st_size > 1000


def test_the_accumulated_map_of_the_drive_meets_the_goals_too(drive_scores):
    accumulated = drive_scores[True]["accumulated"]
    assert accumulated["free_iou"] >= 0.97 and accumulated["contact_recall"] >= 0.95, accumulated

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
    score = score_map(Snapshot(np.full((4, 4), lethal_key, np.uint8), TABLE, grid), truth)
    assert score.free_iou == 0.0 and score.stray_lethal == 16 - 4  # all but the car's cell and its neighbours

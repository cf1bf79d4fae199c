"""The packaged demo weights and the README's main command, at a reduced length.

Thresholds come from measurement (BENCHMARKS.md): the weights' held-out mIoU is recomputed and
must match the figure recorded beside them; the demo must score the node's live masks and its
costmap clearly above chance.
"""

from __future__ import annotations

import json
import os

import pytest

from denseaspp_ros import cli
from denseaspp_ros.model import DEMO_WEIGHTS, build_model, declared_input_size
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.holdout import HELD_OUT, held_out_evaluation
from denseaspp_ros.synth.outputs import write_drive

RECORD = DEMO_WEIGHTS.record()


def test_demo_weights_score_their_recorded_held_out_miou():
    assert RECORD["held_out"] == HELD_OUT  # the record was measured on these drives
    declared = declared_input_size("demo")  # and with the network at the size the weights declare
    assert RECORD["input_size"] == (list(declared) if declared else None)
    result = held_out_evaluation("demo")
    assert result.frames == len(HELD_OUT["seeds"]) * HELD_OUT["frames"]
    assert result.matrix.miou() == pytest.approx(RECORD["miou"], abs=0.005)


def test_demo_weights_refuse_another_variant():
    from denseaspp_ros.errors import CheckpointError

    with pytest.raises(CheckpointError, match=f"holds {DEMO_WEIGHTS.model} weights, not DenseASPP121"):
        build_model("DenseASPP121", 19, "demo")


def test_the_demo_runs_end_to_end(tmp_path, capsys):
    """The README's main command, shortened: the node's pace is measured, the drive replayed at what
    it holds and paused while a frame is unanswered, so even on a CPU shared with other jobs
    (where the pace measured alone is not kept) no frame is dropped but for a lost message."""
    output = tmp_path / "demo"
    assert cli.main(["demo", "--output", str(output), "--frames", "20"]) == 0
    for name in ("report.json", "report.md", "overview.png", "confusion.png", "per_class_iou.png", "drive.gif",
                 "costmap.png", "costmap_window.gif", "node.log"):
        assert (output / name).is_file(), name
    assert (output / "published_bag" / "metadata.yaml").is_file()
    report = json.loads((output / "report.json").read_text())
    assert report["frames_sent"] == 20 and report["frames_received"] + report["frames_dropped"] == 20
    assert report["frames_dropped"] <= 1, (report["summary"], (output / "node.log").read_text())
    assert report["pauses"] >= 0 and report["paused_s"] >= 0
    assert report["node_ms_per_frame"] > 0 and 0 < report["replay_rate"] <= 1.0
    assert report["miou"] >= RECORD["demo_thresholds"]["miou"]
    assert report["costmap"]["free_iou"] >= RECORD["demo_thresholds"]["costmap_free_iou"]
    assert report["latency_ms_p50"] is not None
    # The drive's /odom went to the node with the images: its grids are in odom, scored against the
    # drive's true map, one by one and accumulated (issue 12's goal with the demo weights: >= 90%).
    accumulated = report["costmap"]["accumulated"]
    assert accumulated["free_iou"] >= 0.90 and accumulated["contact_recall"] > 0.5, report["costmap"]
    # The summary table is printed and heads report.md, which links every picture.
    printed = capsys.readouterr().out
    assert "  frames        20 in," in printed and "  costmap       map of the drive in odom" in printed
    # Camera health judged every frame of the clean drive (its verdicts are best-effort like the masks:
    # one may be lost), and raised no alarm.
    assert report["health"]["frames"] >= report["frames_received"] - 1 and report["health"]["OK"] == report["health"]["frames"]
    assert f"  health        front camera: {report['health']['frames']} frames OK, 0 DEGRADED, 0 FAULT" in printed
    markdown = (output / "report.md").read_text()
    assert report["summary"][0] in markdown
    for name in ("overview.png", "drive.gif", "costmap.png", "costmap_window.gif", "per_class_iou.png", "confusion.png"):
        assert f"]({name})" in markdown, name
    # A domain of its own, never the shell's (conftest exports one), and only the profile variable
    # the installed Fast DDS reads (Fast DDS 3 warns at every start when given the old name).
    assert report["domain_id"] != int(os.environ["ROS_DOMAIN_ID"])
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in (output / "node.log").read_text()
    # Asked to overload the node (--rate), the demo does, and says what was dropped. Into the same
    # folder: an earlier demo's results are replaced, nothing else would be. A bag of CompressedImages
    # gets a node configured for them, in the domain asked for.
    (output / "report.json").unlink()
    bag = tmp_path / "compressed"
    write_drive(DriveConfig(frames=8, seed=7, size=(256, 512)), None, bag=bag, compressed=True, progress=False)
    assert cli.main(["demo", "--output", str(output), "--bag", str(bag), "--image-topic", "/front/image_raw/compressed",
                     "--rate", "20", "--domain-id", "42"]) == 0
    overloaded = json.loads((output / "report.json").read_text())
    assert overloaded["replay_rate"] == 20 and overloaded["node_ms_per_frame"] is None and overloaded["domain_id"] == 42
    assert overloaded["frames_dropped"] > 0 and overloaded["frames_sent"] == 8 and overloaded["frames_received"] > 0


def test_the_demo_drives_through_camera_faults_and_draws_their_timeline(tmp_path, capsys):
    """``denseaspp demo --faults``: a frozen stream and rain in the drive; the node judges them
    (FAULT on ~/front/health, lined up with the drive's frames by stamp) and health_timeline.png
    shows them beside the dangerous free cells with and without camera health."""
    output = tmp_path / "faults"
    assert cli.main(["demo", "--output", str(output), "--frames", "30", "--faults", "frozen@0.5-1.2,rain@2-2.5"]) == 0
    report = json.loads((output / "report.json").read_text())
    states = report["faults"]["states"]
    assert len(states) == 30 and states[:5] == ["OK"] * 5, states
    assert "FAULT" in states[7:12] and "FAULT" in states[20:25], states  # frozen by its third frame, rain at once
    assert len(report["faults"]["dangerous_free_without_health"]) == 30
    assert (output / "health_timeline.png").is_file() and "](health_timeline.png)" in (output / "report.md").read_text()
    assert "frames per kind: frozen" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # a stamp fault would not survive the replay's restamping: refused, said why
        cli.build_parser().parse_args(["demo", "--faults", "bogus@1-2"])
    assert cli.main(["demo", "--output", str(output), "--faults", "stamp_offset@1-2"]) == 2
    assert "the demo's replay restamps every frame" in capsys.readouterr().err

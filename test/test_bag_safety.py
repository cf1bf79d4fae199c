"""Bags and outputs that survive failure: a writer killed with SIGKILL leaves a clearly marked
``PATH.partial`` whose synced messages ``bag-recover`` makes readable, a finished bag appears at
``PATH`` only, and unwritable destinations fail before the model is built."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from denseaspp_ros import cli
from denseaspp_ros.bags import NOTE, SYNC_SECONDS, BagError, BagWriter, open_bag, read_labelled_frames, recover_bag
from denseaspp_ros.cli import engine_options
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.outputs import write_drive

START = 1_700_000_000_000_000_000
# Writes message i at stamp START + i until killed; every `every` messages it syncs and then prints
# the last index, so each printed index is a point up to which the bag must be recoverable.
WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from denseaspp_ros.bags import BagWriter

    path, storage, every = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with BagWriter(path, storage) as writer:
        index = 0
        while True:
            writer.write_image("/count", {start} + index, "c", np.full((16, 16), index % 256, np.uint8), "mono8")
            if every and index % every == every - 1:
                writer.sync()
            print(index, flush=True)
            index += 1
            time.sleep(0.002)
""").format(start=START)


def _stamps(bag: Path, topic: str) -> list[int]:
    reader = open_bag(bag)
    try:
        connections = [c for c in reader.connections if c.topic == topic]
        return [stamp for _, stamp, _ in reader.messages(connections=connections)]
    finally:
        reader.close()


def _assert_marked_partial(path: Path) -> Path:
    """``path`` absent, ``path.partial`` holding the note and the unreadable bag; returns the partial."""
    partial = path.with_name(path.name + ".partial")
    assert not path.exists()
    assert "denseaspp bag-recover" in (partial / NOTE).read_text()
    with pytest.raises(BagError, match="Unfinished bag"):
        open_bag(partial)
    with pytest.raises(BagError, match="does not exist.*unfinished"):
        open_bag(path)
    return partial


@pytest.mark.parametrize("storage, every", [("mcap", 5), ("sqlite3", 5), ("mcap", 0)])
def test_a_killed_writer_leaves_a_marked_partial_that_recovers_every_synced_message(tmp_path, storage, every):
    """With explicit syncs, every message up to the last printed index comes back; with none (every=0),
    the periodic sync still saves every message written more than SYNC_SECONDS (plus margin) before the kill."""
    path = tmp_path / "results"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), storage, str(every)], stdout=subprocess.PIPE, text=True)
    try:
        printed: list[tuple[int, float]] = []
        while len(printed) < 50 or not every and printed[-1][1] - printed[0][1] < 3 * SYNC_SECONDS:
            line = writer.stdout.readline()
            assert line, "the writer died on its own"
            printed.append((int(line), time.monotonic()))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    killed = time.monotonic()
    if every:
        synced = max(index for index, _ in printed if index % every == every - 1)
    else:
        synced = max(index for index, seen in printed if seen < killed - 2 * SYNC_SECONDS)
    partial = _assert_marked_partial(path)

    assert cli.main(["bag-recover", str(partial)]) == 0
    stamps = _stamps(partial / "results", "/count")
    assert len(stamps) > synced  # everything up to the known point, and nothing invented after it
    assert stamps == [START + index for index in range(len(stamps))]
    assert not path.exists()  # recovered, but still marked as not the whole run
    assert "Recovered" in (partial / NOTE).read_text()
    assert recover_bag(path) == partial / "results"  # again: nothing to do


def test_a_killed_eval_keeps_every_frame_whose_prediction_was_saved(tmp_path, capsys):
    """``denseaspp eval --write-bag`` killed mid-run: each frame it saved a prediction for is in the recovered bag."""
    source = tmp_path / "drive"
    write_drive(DriveConfig(frames=40, seed=3, size=(48, 96)), None, bag=source, progress=False)
    results, predictions = tmp_path / "results", tmp_path / "predictions"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "denseaspp_ros.cli", "eval", "--bag", source, "--image-topic", "/front/image_raw",
        "--label-topic", "/front/labels", "--model", "MobileNetDenseASPP", "--device", "cpu",
        "--output", tmp_path / "report", "--save-predictions", predictions, "--write-bag", results,
    ]
    log = tmp_path / "eval.log"
    with log.open("wb") as stderr:
        run = subprocess.Popen([str(part) for part in command], env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while len(list(predictions.glob("*.png"))) < 3:
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    saved = {int(p.name.split("_")[1]) for p in predictions.glob("frame_*_pred_labelIds.png")}
    assert saved and not (tmp_path / "report").exists()
    partial = _assert_marked_partial(results)

    bag = recover_bag(partial)
    frames = {frame.stamp_ns for frame in read_labelled_frames(bag, "/eval/image", "/eval/mask")}
    assert saved <= frames and len(frames) < 40
    for topic in ("/eval/mask_color", "/eval/ground_truth"):
        assert saved <= set(_stamps(bag, topic))
    code = cli.main(["eval", "--bag", str(source), "--image-topic", "/front/image_raw", "--label-topic", "/front/labels",
                     "--output", str(tmp_path / "again"), "--write-bag", str(results)])
    assert code == 2 and "results.partial exists" in capsys.readouterr().err  # never silently replaced


def test_a_finished_bag_appears_whole_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3") as writer:
        for index in range(3):
            writer.write_image("/count", START + index, "c", np.zeros((4, 4), np.uint8), "mono8")
        assert not path.exists() and (tmp_path / "bag.partial" / NOTE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag"]
    assert sorted(p.name for p in path.iterdir()) == ["bag.db3", "metadata.yaml"]
    assert _stamps(path, "/count") == [START, START + 1, START + 2]


def test_eval_writes_its_bag_whole_and_leaves_nothing_behind(tmp_path):
    source = tmp_path / "drive"
    write_drive(DriveConfig(frames=2, seed=3, size=(32, 64)), None, bag=source, progress=False)
    code = cli.main(["eval", "--bag", str(source), "--image-topic", "/front/image_raw", "--label-topic", "/front/labels",
                     "--model", "MobileNetDenseASPP", "--device", "cpu", "--output", str(tmp_path / "report"),
                     "--write-bag", str(tmp_path / "results")])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive", "report", "results"]
    assert len(_stamps(tmp_path / "results", "/eval/mask")) == 2


def test_an_exception_finishes_the_bag_but_keeps_it_marked_partial(tmp_path):
    path = tmp_path / "bag"
    with pytest.raises(RuntimeError), BagWriter(path) as writer:
        writer.write_image("/count", START, "c", np.zeros((4, 4), np.uint8), "mono8")
        raise RuntimeError("the run broke")
    assert not path.exists()
    assert "the run broke" in (tmp_path / "bag.partial" / NOTE).read_text()
    assert _stamps(recover_bag(path), "/count") == [START]


def test_a_bag_being_written_is_neither_recovered_nor_overwritten(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path) as writer:
        writer.write_image("/count", START, "c", np.zeros((4, 4), np.uint8), "mono8")
        with pytest.raises(BagError, match="still being written"):
            recover_bag(path)
        with pytest.raises(BagError, match="bag.partial exists"):
            BagWriter(path)
    assert _stamps(path, "/count") == [START]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"denseaspp {command}: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def no_model(monkeypatch):
    """Building the network is where the work starts: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was built before the destinations were checked")

    monkeypatch.setattr(engine_options, "_build_segmenter", refuse)


def test_infer_into_an_unwritable_folder_fails_before_the_model_is_built(tmp_path, capsys, no_model):
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder goes")
    assert cli.main(["infer", str(image), "--output", str(blocker / "out"), "--device", "cpu"]) == 2
    assert "--output" in _one_line_error(capsys, "infer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "image.png"]


@pytest.mark.parametrize("option", ["--output", "--save-predictions", "--write-bag"])
def test_eval_into_an_unwritable_destination_fails_before_the_model_is_built(tmp_path, capsys, no_model, option):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder goes")
    destinations = {"--output": tmp_path / "report", "--save-predictions": tmp_path / "predictions",
                    "--write-bag": tmp_path / "results"}
    destinations[option] = blocker / "deeper" / "target"
    arguments = [text for name, path in destinations.items() for text in (name, str(path))]
    assert cli.main(["eval", "--cityscapes", str(tmp_path / "unused"), "--device", "cpu", *arguments]) == 2
    assert option in _one_line_error(capsys, "eval")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the probes leave nothing behind


def test_eval_refuses_an_existing_result_bag_before_the_model_is_built(tmp_path, capsys, no_model):
    (tmp_path / "results").mkdir()
    code = cli.main(["eval", "--cityscapes", str(tmp_path / "unused"), "--output", str(tmp_path / "report"),
                     "--write-bag", str(tmp_path / "results")])
    assert code == 2 and "exists" in _one_line_error(capsys, "eval")

"""evaluate(): frames go to the Segmenter in batches while a reader thread decodes the next ones,
with the results, counts and early stops of one frame at a time."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from denseaspp_ros.errors import DenseASPPError
from denseaspp_ros.eval.evaluate import Shard, cityscapes_samples, evaluate
from denseaspp_ros.frames import Frame
from denseaspp_ros.inference import Segmentation, Segmenter
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.model import build_model
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.outputs import write_drive

FRAMES = 6


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("MobileNetDenseASPP", CITYSCAPES.num_classes)


@pytest.fixture(scope="module")
def drive_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drive")
    write_drive(DriveConfig(frames=FRAMES, seed=5, size=(64, 128)), root, "val", progress=False)
    return root


def forward_batch_sizes(segmenter: Segmenter) -> list[int]:
    """The batch size of every network forward the Segmenter runs from now on."""
    sizes: list[int] = []
    segmenter.model.register_forward_pre_hook(lambda module, inputs: sizes.append(inputs[0].shape[0]))
    return sizes


def run(samples, segmenter: Segmenter, **options):
    """The result and every prediction evaluate handed on, by frame name in the order handed on."""
    predictions: dict[str, np.ndarray] = {}

    def keep(sample: Frame, segmentation: Segmentation) -> None:
        predictions[sample.name] = segmentation.train_ids

    return evaluate(samples, segmenter, CITYSCAPES, on_prediction=keep, progress=False, **options), predictions


def synthetic_samples(count: int, then: BaseException | None = None, size: tuple[int, int] = (32, 48)):
    rng = np.random.default_rng(7)
    for index in range(count):
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        yield Frame(image, False, index, name=f"frame{index}", labels=rng.integers(0, 19, size, dtype=np.uint8))
    if then is not None:
        raise then


def test_frames_are_batched_and_score_as_one_at_a_time(drive_folder, model):
    single, batched = Segmenter(model, device="cpu", max_batch=1), Segmenter(model, device="cpu", max_batch=4)
    single_sizes, batched_sizes = forward_batch_sizes(single), forward_batch_sizes(batched)
    one, one_predictions = run(cityscapes_samples(drive_folder, "val", CITYSCAPES), single, batch=1)
    four, four_predictions = run(cityscapes_samples(drive_folder, "val", CITYSCAPES), batched, batch=4)
    assert single_sizes == [1] * FRAMES and batched_sizes == [4, FRAMES - 4]
    assert one.frames == four.frames == FRAMES and one.complete and four.complete
    assert len(four.seconds) == FRAMES
    assert list(four_predictions) == list(one_predictions)  # same frames, same order
    for name, prediction in one_predictions.items():
        # Batched convolutions round differently: at most a near-tie pixel may flip.
        assert np.mean(four_predictions[name] != prediction) < 1e-3, name
    assert np.abs(four.matrix.counts - one.matrix.counts).sum() <= 2 * 1e-3 * FRAMES * 64 * 128


def test_a_shard_is_batched_over_its_own_frames(drive_folder, model):
    segmenter = Segmenter(model, device="cpu", max_batch=2)
    sizes = forward_batch_sizes(segmenter)
    result, predictions = run(cityscapes_samples(drive_folder, "val", CITYSCAPES), segmenter, shard=Shard(1, 2), batch=2)
    every = sorted(p.relative_to(drive_folder / "leftImg8bit" / "val") for p in drive_folder.rglob("*_leftImg8bit.png"))
    assert list(predictions) == [str(every[i]) for i in (1, 3, 5)]
    assert result.frames == 3 and sizes == [2, 1]


def test_the_next_frames_are_read_while_a_batch_is_segmented(model):
    segmenter = Segmenter(model, device="cpu")
    next_frame_read = threading.Event()
    overlapped: list[bool] = []

    def source():
        first, second = synthetic_samples(2)
        yield first
        next_frame_read.set()
        yield second

    segment = segmenter.segment

    def segment_once_the_next_frame_is_read(images, **options):
        overlapped.append(next_frame_read.wait(timeout=30))  # without a reader thread this would time out
        return segment(images, **options)

    segmenter.segment = segment_once_the_next_frame_is_read
    result, _ = run(source(), segmenter, batch=1)
    assert result.frames == 2 and overlapped[0]


@pytest.mark.parametrize("batch", [1, 4])
def test_a_source_error_stops_the_run_after_the_frames_before_it(model, batch):
    segmenter = Segmenter(model, device="cpu")
    result, predictions = run(synthetic_samples(5, then=DenseASPPError("bag truncated")), segmenter, batch=batch)
    assert result.frames == 5 and len(predictions) == 5
    assert not result.complete and not result.interrupted
    assert result.problems == ["stopped early: bag truncated"]


def test_ctrl_c_keeps_the_frames_before_it(model):
    segmenter = Segmenter(model, device="cpu")
    result, _ = run(synthetic_samples(3, then=KeyboardInterrupt()), segmenter, batch=2)
    assert result.frames == 3 and not result.complete and result.interrupted
    assert result.problems[0].startswith("interrupted")


def test_an_image_the_segmenter_refuses_stops_the_run_after_the_frames_before_it(model):
    good = list(synthetic_samples(3))
    grey = Frame(np.zeros((32, 48), np.uint8), False, name="grey", labels=np.zeros((32, 48), np.uint8))
    mismatched = Frame(good[0].pixels, False, name="mismatched", labels=np.zeros((8, 8), np.uint8))
    result, predictions = run([good[0], mismatched, good[1], grey, good[2]], Segmenter(model, device="cpu"), batch=8)
    assert list(predictions) == ["frame0", "frame1"] and result.frames == 2 and result.corrupt == 1
    assert result.problems[0] == "mismatched: label and image sizes differ"
    assert result.problems[1].startswith("stopped early: image 0: expected an HxWx3 colour image")

"""Training: the loss falls, a resumed run continues exactly, fine-tuning changes the class count,
ImageNet backbones map, two gloo processes train under torchrun, bad datasets say what is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from denseaspp_ros.datasets import CityscapesDataset, DatasetError
from denseaspp_ros.errors import CheckpointError
from denseaspp_ros.eval.evaluate import cityscapes_samples, evaluate
from denseaspp_ros.inference import Segmenter, load_engine
from denseaspp_ros.labels import CITYSCAPES, IGNORE_INDEX
from denseaspp_ros.model import DEMO_WEIGHTS, build_model, save_checkpoint, save_safetensors
from denseaspp_ros.synth.drive import DriveConfig
from denseaspp_ros.synth.outputs import write_drive
from denseaspp_ros.train import TrainConfig, Trainer, initialise, train
from denseaspp_ros.train.augmentation import Augmentation
from denseaspp_ros.train.trainer import hard_pixel_loss


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    """A small synthetic Cityscapes-layout dataset: 2 drives to train on, 1 to validate."""
    root = tmp_path_factory.mktemp("street")
    for seed in (1, 2):
        write_drive(DriveConfig(frames=6, seed=seed, size=(64, 128), fps=2.0), root, "train", progress=False)
    write_drive(DriveConfig(frames=3, seed=50, size=(64, 128), fps=2.0), root, "val", progress=False)
    return root


def config(street: Path, output: Path, **overrides) -> TrainConfig:
    values = dict(
        data=str(street), output=str(output), model="MobileNetDenseASPP", steps=40, batch_size=4, crop=(48, 48),
        scale=(0.75, 1.25), val_every=0, checkpoint_every=10, log_every=5, workers=0, device="cpu", seed=3,
    )
    values.update(overrides)
    return TrainConfig(**values)


def test_a_few_dozen_steps_make_the_loss_fall(street, tmp_path):
    torch.set_num_threads(2)
    # --input-size: validation runs the network at 56x112 (the images are 64x128) and the kept
    # weights say so in their header, so deployment runs them where they were chosen.
    result = train(config(street, tmp_path / "run", val_every=20, input_size=(56, 112)))
    log = __import__("json").loads((tmp_path / "run" / "log.json").read_text())["log"]
    losses = [row["loss"] for row in log if "loss" in row]
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses  # from ln(19) = 2.9 at chance
    assert result["step"] == 40 and 0 <= result["best_miou"] <= 1
    for name in ("last.pt", "best.pt", "final.safetensors", "best.safetensors", "log.csv", "training.png"):
        assert (tmp_path / "run" / name).is_file(), name
    # The kept weights load like any checkpoint, and score what validation said, as `denseaspp eval` does.
    engine = load_engine(tmp_path / "run" / "best.safetensors", "auto", CITYSCAPES, device="cpu")
    assert engine.input_size == (56, 112)
    evaluation = evaluate(cityscapes_samples(street, "val", CITYSCAPES), engine, CITYSCAPES, progress=False)
    assert evaluation.matrix.miou() == pytest.approx(result["best_miou"], abs=1e-6)


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(street, tmp_path, monkeypatch):
    straight = Trainer(config(street, tmp_path / "straight", steps=6, checkpoint_every=100))
    straight.run()

    original_step = Trainer._train_step

    def interrupt_at_three(self, images, labels):
        if self.step == 3:
            raise KeyboardInterrupt
        return original_step(self, images, labels)

    monkeypatch.setattr(Trainer, "_train_step", interrupt_at_three)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(street, tmp_path / "resumed", steps=6, checkpoint_every=100)).run()
    monkeypatch.setattr(Trainer, "_train_step", original_step)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["step"] == 3  # nothing lost, nothing but data
    resumed = Trainer(config(street, tmp_path / "resumed", steps=6, checkpoint_every=100))
    assert resumed.step == 3
    resumed.run()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_a_time_limit_stops_with_everything_saved_and_running_again_goes_on(street, tmp_path, monkeypatch):
    """--time-limit: the step past it validates, saves and stops; the same command continues to --steps."""
    clock = iter(range(0, 10_000, 20))  # every look at the clock: 20 s later
    monkeypatch.setattr("denseaspp_ros.train.trainer._clock", lambda: float(next(clock)))
    limited = Trainer(config(street, tmp_path / "run", steps=8, checkpoint_every=100, val_every=100, time_limit=1.0))
    result = limited.run()  # the deadline: 0 s + 60 s; steps 1-4 look at 20, 40, 60 and 80 s
    assert result["step"] == 4 and result["best_miou"] >= 0  # validated at the stop
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 4
    assert (tmp_path / "run" / "final.safetensors").is_file()
    monkeypatch.undo()
    assert Trainer(config(street, tmp_path / "run", steps=8, checkpoint_every=100, val_every=100)).run()["step"] == 8


def test_ctrl_c_during_validation_saves_the_run(street, tmp_path, monkeypatch):
    def interrupted(self, images, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(Segmenter, "segment", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config(street, tmp_path / "run", steps=4, val_every=2, checkpoint_every=100, bn_batches=0)).run()
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 2


class _TouchesWhenUnpickled:
    """Pickles as a call that creates ``marker``: what a planted file runs when loaded unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return subprocess.call, (["touch", str(self.marker)],)


def test_a_planted_last_pt_that_would_run_code_is_refused_on_resume(street, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "marker"
    run.mkdir()
    torch.save({"state_dict": {}, "step": 1, "log": [_TouchesWhenUnpickled(marker)]}, run / "last.pt")
    with pytest.raises(CheckpointError, match="refusing to load .*last.pt.* would run code"):
        Trainer(config(street, run))
    assert not marker.exists()
    torch.load(run / "last.pt", weights_only=False)  # the control: the payload is live, so "not run" means refused
    assert marker.exists()


def test_resuming_someone_elses_run_is_refused(street, tmp_path):
    Trainer(config(street, tmp_path / "run", steps=2)).run()
    with pytest.raises(CheckpointError, match="batch_size"):
        Trainer(config(street, tmp_path / "run", steps=2, batch_size=2))
    # A network input size of its own would validate elsewhere and compare its best with another size's.
    with pytest.raises(CheckpointError, match=r"input_size=\(\), not \(56, 112\)"):
        Trainer(config(street, tmp_path / "run", steps=2, input_size=(56, 112)))
    # Nor may the upsampling change under a run: its best was chosen with the other one.
    with pytest.raises(CheckpointError, match="half_pixel=False, not True"):
        Trainer(config(street, tmp_path / "run", steps=2, half_pixel=True))


def test_a_half_pixel_run_says_so_in_every_file_it_writes(street, tmp_path):
    """--half-pixel is not taken from --init-checkpoint (the release's weights are corner-aligned):
    the run's own setting goes into its checkpoints, whose loading restores it."""
    init = tmp_path / "init.safetensors"
    save_safetensors(build_model("MobileNetDenseASPP", 19), init)
    train(config(street, tmp_path / "run", steps=2, val_every=2, half_pixel=True, init_checkpoint=str(init)))
    for name in ("last.pt", "best.pt", "final.safetensors", "best.safetensors"):
        assert build_model("MobileNetDenseASPP", 19, str(tmp_path / "run" / name)).align_corners is False, name


def test_fine_tuning_to_another_class_count_keeps_all_but_the_classifier(tmp_path):
    source = build_model("MobileNetDenseASPP", 19)
    save_checkpoint(source, tmp_path / "cityscapes.pt")
    target = build_model("MobileNetDenseASPP", 5)
    report = initialise(target, checkpoint=tmp_path / "cityscapes.pt")
    assert {name.rsplit(".", 1)[0] for name in report.fresh} == {"classification.1"}
    torch.testing.assert_close(target.state_dict()["ASPP_3.conv1.weight"], source.state_dict()["ASPP_3.conv1.weight"])
    with pytest.raises(CheckpointError, match="MobileNetDenseASPP checkpoint, not DenseASPP121"):
        initialise(build_model("DenseASPP121", 19), checkpoint=tmp_path / "cityscapes.pt")


def test_the_decoder_variant_fine_tunes_from_its_base_networks_checkpoint(tmp_path):
    source = build_model("MobileNetDenseASPP", 19)
    save_checkpoint(source, tmp_path / "base.pt")
    target = build_model("MobileNetDenseASPPDecoder", 19)
    report = initialise(target, checkpoint=tmp_path / "base.pt")
    assert {name.split(".")[0] for name in report.fresh} == {"decoder", "classification"}
    assert report.skipped == ["classification.1.weight", "classification.1.bias"]  # 640 inputs there, 32 here
    assert "starting fresh: classification.1, decoder." in report.summary()
    torch.testing.assert_close(target.state_dict()["ASPP_24.conv2.weight"], source.state_dict()["ASPP_24.conv2.weight"])
    save_checkpoint(target, tmp_path / "decoder.pt")
    with pytest.raises(CheckpointError, match="MobileNetDenseASPPDecoder checkpoint, not MobileNetDenseASPP"):
        initialise(build_model("MobileNetDenseASPP", 19), checkpoint=tmp_path / "decoder.pt")


def torchvision_mobilenet_v2_state() -> dict[str, torch.Tensor]:
    """torchvision's MobileNetV2 state-dict layout, written from its published architecture."""
    generator = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out: int, inp: int, k: int) -> None:
        state[f"{name}.weight"] = torch.randn(out, inp, k, k, generator=generator)

    def bn(name: str, channels: int) -> None:
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            state[f"{name}.{suffix}"] = torch.rand(channels, generator=generator)
        state[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("features.0.0", 32, 3, 3)
    bn("features.0.1", 32)
    index, channels = 1, 32
    for t, c, n, _ in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for _ in range(n):
            hidden = channels * t
            prefix = f"features.{index}.conv"
            if t == 1:
                conv(f"{prefix}.0.0", hidden, 1, 3)
                bn(f"{prefix}.0.1", hidden)
                conv(f"{prefix}.1", c, hidden, 1)
                bn(f"{prefix}.2", c)
            else:
                conv(f"{prefix}.0.0", hidden, channels, 1)
                bn(f"{prefix}.0.1", hidden)
                conv(f"{prefix}.1.0", hidden, 1, 3)
                bn(f"{prefix}.1.1", hidden)
                conv(f"{prefix}.2", c, hidden, 1)
                bn(f"{prefix}.3", c)
            index, channels = index + 1, c
    conv("features.18.0", 1280, 320, 1)
    bn("features.18.1", 1280)
    state["classifier.1.weight"] = torch.randn(1000, 1280, generator=generator)
    state["classifier.1.bias"] = torch.randn(1000, generator=generator)
    return state


def test_imagenet_mobilenet_v2_backbone_maps_onto_the_dilated_backbone(tmp_path):
    state = torchvision_mobilenet_v2_state()
    torch.save(state, tmp_path / "mobilenet_v2.pth")
    model = build_model("MobileNetDenseASPP", 19)
    report = initialise(model, imagenet=tmp_path / "mobilenet_v2.pth")
    loaded = model.state_dict()
    torch.testing.assert_close(loaded["features.features.5.conv.3.weight"], state["features.5.conv.1.0.weight"])
    torch.testing.assert_close(loaded["features.features.1.conv.3.weight"], state["features.1.conv.0.0.weight"])
    fresh_backbone = {n.rsplit(".", 1)[0] for n in report.fresh if n.startswith("features.")}
    assert fresh_backbone == {"features.features.1.conv.0", "features.features.1.conv.1"}  # the added expansion
    assert "classifier.1.weight" in report.skipped and "features.18.0.weight" in report.skipped
    assert "starting fresh" in report.summary()


def test_imagenet_densenet_keeps_its_names_and_reports_the_narrower_norm5(tmp_path):
    model = build_model("DenseASPP121", 19)
    state = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("features.") and "transition4" not in k}
    state["features.norm5.weight"] = torch.ones(1024)  # torchvision's DenseNet121 ends with 1024 channels
    state["classifier.weight"] = torch.zeros(1000, 1024)
    torch.save(state, tmp_path / "densenet121.pth")
    report = initialise(build_model("DenseASPP121", 19), imagenet=tmp_path / "densenet121.pth")
    fresh = {n.rsplit(".", 1)[0] for n in report.fresh if n.startswith("features.")}
    assert fresh == {"features.norm5", "features.transition4.norm", "features.transition4.conv"}
    assert "classifier.weight" in report.skipped


def test_two_gloo_processes_train_under_torchrun(street, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [
        str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "denseaspp_ros.cli", "train",
        "--data", str(street), "--output", str(tmp_path / "ddp"), "--steps", "3", "--batch-size", "2",
        "--crop", "32x32", "--val-every", "3", "--workers", "0", "--device", "cpu", "--log-every", "1",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert state["step"] == 3
    assert any("val_miou" in row for row in state["log"])


def test_dataset_problems_are_named(tmp_path):
    root = tmp_path / "data"
    write_drive(DriveConfig(frames=2, seed=1, size=(32, 64)), root, "train", progress=False)
    labels = sorted((root / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))
    label_ids = sorted((root / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))
    label_ids[0].unlink()
    labels[0].unlink()
    with pytest.raises(DatasetError, match="1 of 2 images .* have no gtFine label"):
        CityscapesDataset(root, "train", CITYSCAPES)
    write_drive(DriveConfig(frames=2, seed=1, size=(32, 64)), tmp_path / "again", "train", progress=False)
    dataset_root = tmp_path / "again"
    label = sorted((dataset_root / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))[0]
    cv2.imwrite(str(label), np.zeros((16, 64), np.uint8))
    with pytest.raises(DatasetError, match="is 64x16 but .* is 64x32"):
        CityscapesDataset(dataset_root, "train", CITYSCAPES)[0]
    cv2.imwrite(str(label), np.full((32, 64), 40, np.uint8))
    with pytest.raises(DatasetError, match=r"class ids \[40\] lie outside 0..18"):
        CityscapesDataset(dataset_root, "train", CITYSCAPES)[0]
    with pytest.raises(DatasetError, match="no \\*_leftImg8bit.png images"):
        CityscapesDataset(tmp_path, "train", CITYSCAPES)


def test_training_from_a_bag(tmp_path):
    bag = tmp_path / "drive"
    write_drive(DriveConfig(frames=8, seed=4, size=(64, 128), fps=2.0), None, bag=bag, compressed=True, progress=False)
    result = train(TrainConfig(
        data=str(bag), image_topic="/front/image_raw/compressed", label_topic="/front/labels", output=str(tmp_path / "run"),
        steps=4, batch_size=2, crop=(32, 32), val_every=0, workers=0, device="cpu",
    ))
    assert result["step"] == 4


def test_the_hard_pixel_loss_averages_the_hardest_labelled_pixels_only():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0] = 10.0  # every pixel predicts class 0 with confidence
    labels = torch.tensor([[[0, 0], [1, IGNORE_INDEX]]])
    per_pixel = F.cross_entropy(logits, labels.clamp(max=2), reduction="none")[0]
    easy, hard = float(per_pixel[0, 0]), float(per_pixel[1, 0])
    assert float(hard_pixel_loss(logits, labels, 1.0)) == pytest.approx((2 * easy + hard) / 3)
    # A third of the three labelled pixels: the one wrong pixel alone; the ignored pixel never counts.
    assert float(hard_pixel_loss(logits, labels, 0.34)) == pytest.approx(hard)
    assert float(hard_pixel_loss(logits, torch.full_like(labels, IGNORE_INDEX), 0.5)) == 0.0


def test_class_uniform_crops_find_a_rare_class_as_often_as_the_road():
    # A 4x4 traffic light in a corner of a 512x1024 road: a random 64x64 crop almost never holds it.
    light = CITYSCAPES.class_names.index("traffic light")
    label = np.zeros((512, 1024), np.uint8)
    label[500:504, 1010:1014] = light
    image = np.repeat(label[..., None], 3, axis=2)  # the image shows its label, to check they stay aligned

    def share_with_the_light(class_uniform: float) -> float:
        augment = Augmentation(crop=(64, 64), scale=(1.0, 1.0), flip=False, class_uniform=class_uniform)
        hits = 0
        for index in range(400):
            crop, crop_label = augment(image, label, np.random.default_rng(index))
            assert crop_label.shape == (64, 64) and np.array_equal(crop[..., 0], crop_label)
            hits += bool((crop_label == light).any())
        return hits / 400

    assert share_with_the_light(0.0) < 0.02
    assert 0.35 < share_with_the_light(1.0) < 0.65  # one class of the two, drawn uniformly
    assert 0.1 < share_with_the_light(0.3) < 0.25


def test_the_gpu_training_command_runs_every_stage_at_toy_sizes(tmp_path):
    """bench/train_gpu.py --smoke: renders in parallel, trains, converts and scores on the held-out
    drives, leaving what the device tool brings back (at most 8 small files)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "bench" / "train_gpu.py"), "--output", str(tmp_path), "--smoke"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((tmp_path / "demo_weights.json").read_text())
    assert record["steps"] == 4 and 0 <= record["miou"] <= 1 and record["held_out"]["seeds"] == [2000, 2001, 2002, 2003, 2004]
    weights = tmp_path / "demo_weights.safetensors"
    assert build_model(DEMO_WEIGHTS.model, 19, str(weights)).input_size == (384, 768)  # loads as the packaged file does
    assert weights.stat().st_size < 16 * 2**20 and len(list(tmp_path.iterdir())) <= 8

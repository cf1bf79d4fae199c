"""Tests for the ``denseaspp`` command: infer, convert, bench and their one-line errors.

The main runs go through a real subprocess (the installed entry point or ``python -m``); the many
error cases call ``cli.main`` in-process, which is equivalent for what they check (an escaped
exception would fail the test outright) and keeps the file fast.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from denseaspp_ros import cli
from denseaspp_ros.inference import Segmenter
from denseaspp_ros.labels import CITYSCAPES
from denseaspp_ros.model import DEMO_WEIGHTS, build_model, load_weights, save_safetensors, to_original_state_dict

MODEL = "MobileNetDenseASPP"
KINDS = ("trainid", "labelid", "color", "overlay", "confidence")
# Input tree in the Cityscapes leftImg8bit layout, sizes deliberately not multiples of 8 for some.
GOOD_IMAGES = {
    "aachen/aachen_000000_000019_leftImg8bit.png": (48, 64),
    "aachen/aachen_000001_000019_leftImg8bit.png": (40, 56),
    "zurich/zurich_000000_000019_leftImg8bit.png": (37, 53),
    "zurich/zurich_000001_000019_leftImg8bit.jpg": (48, 64),
}
BROKEN_IMAGE = "zurich/broken_leftImg8bit.png"
TIE_MARGIN = 1e-3
# cityscapesscripts is a pip-only test dependency (the test extra; rosdep has no key for it), so
# a colcon test in a rosdep-installed workspace skips what needs it.
NO_CITYSCAPESSCRIPTS = "cityscapesscripts is not installed (pip install cityscapesscripts; no rosdep key)"


def cityscapes_label_id_of_train_id() -> dict[int, int]:
    """trainId -> labelId from cityscapesScripts itself, independent of this package's tables."""
    labels = pytest.importorskip("cityscapesscripts.helpers.labels", reason=NO_CITYSCAPESSCRIPTS).labels

    return {label.trainId: label.id for label in labels if 0 <= label.trainId < 19}


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DENSEASPP_WEIGHTS_DIR", "CITYSCAPES_DATASET", "CITYSCAPES_RESULTS"):
        env.pop(name, None)
    # One intra-op thread: tiny inputs gain nothing from more, and spinning OpenMP threads make
    # the child crawl when the test process or a neighbour keeps the cores busy.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(*args: str | Path, cwd: Path | None = None, script: bool = False) -> subprocess.CompletedProcess:
    entry = Path(sys.executable).parent / "denseaspp"
    command = [str(entry)] if script and entry.exists() else [sys.executable, "-m", "denseaspp_ros.cli"]
    return subprocess.run(
        [*command, *map(str, args)], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300
    )


def run_main(capsys, *args: str | Path) -> tuple[int, str, str]:
    """cli.main in-process; argparse's SystemExit counts as an exit code like the real command."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clean_error(code: int, stderr: str, *fragments: str) -> None:
    assert code not in (0, None), stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def no_temporaries(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*")]


# What these tests check (outputs, errors, weights) is the same whatever the backend: the eager one
# spares each image size an export (test_backends.py checks the exported ones).
TORCH = ("--backend", "torch")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(MODEL)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, model) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {"safetensors": folder / "mobilenet.safetensors", "original": folder / "mobilenet_original.pkl"}
    save_safetensors(model, paths["safetensors"])
    torch.save(to_original_state_dict(model), paths["original"], _use_new_zipfile_serialization=False)
    return paths


@pytest.fixture(scope="module")
def input_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes") / "leftImg8bit" / "val"
    rng = np.random.default_rng(0)
    for relative, (height, width) in GOOD_IMAGES.items():
        coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(root / relative), image)
    (root / BROKEN_IMAGE).write_bytes(b"\x89PNG\r\n\x1a\n this is no image")
    return root


@pytest.fixture(scope="module")
def tree_run(tmp_path_factory, input_tree, checkpoints):
    output = tmp_path_factory.mktemp("run") / "out"
    result = run_cli(
        "infer", input_tree, "--output", output, "--model", MODEL, "--weights", checkpoints["safetensors"],
        "--device", "cpu", "--batch", "2", "--save", ",".join(KINDS), *TORCH,
    )
    return result, output


# --- infer on a folder tree (one real subprocess) ---------------------------------------------


def test_infer_tree_writes_every_kind_mirrored_and_skips_corrupt_image(tree_run, input_tree):
    result, output = tree_run
    assert result.returncode == 1, result.stderr  # one image was skipped
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and "broken_leftImg8bit.png" in skipped[0], result.stderr
    assert "segmented 4 of 5 images" in result.stdout
    assert sorted(p.name for p in output.iterdir()) == sorted(KINDS)
    for kind in KINDS:
        written = sorted(str(p.relative_to(output / kind)) for p in (output / kind).rglob("*") if p.is_file())
        assert written == sorted(str(Path(r).with_suffix(".png")) for r in GOOD_IMAGES), kind
        for relative, size in GOOD_IMAGES.items():
            picture = cv2.imread(str(output / kind / Path(relative).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
            assert picture.dtype == np.uint8
            assert picture.shape[:2] == size, (kind, relative)
            assert picture.ndim == (3 if kind in ("color", "overlay") else 2), kind
    assert no_temporaries(output)


def read_output(output: Path, kind: str, relative: str, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    return cv2.imread(str(output / kind / Path(relative).with_suffix(".png")), flags)


def test_infer_outputs_are_consistent_with_the_label_set(tree_run, input_tree):
    _, output = tree_run
    official = cityscapes_label_id_of_train_id()
    valid_label_ids = set(official.values())
    for relative in GOOD_IMAGES:
        train_ids = read_output(output, "trainid", relative)
        label_ids = read_output(output, "labelid", relative)
        assert train_ids.max() < 19
        assert set(np.unique(label_ids)) <= valid_label_ids
        np.testing.assert_array_equal(label_ids, np.vectorize(official.get, otypes=[np.uint8])(train_ids))
        colour_bgr = read_output(output, "color", relative)
        np.testing.assert_array_equal(colour_bgr[..., ::-1], CITYSCAPES.colorize(train_ids))
        image_rgb = cv2.imread(str(input_tree / relative), cv2.IMREAD_COLOR)[..., ::-1]
        overlay_bgr = read_output(output, "overlay", relative)
        np.testing.assert_array_equal(overlay_bgr[..., ::-1], CITYSCAPES.overlay(np.ascontiguousarray(image_rgb), train_ids))
        assert read_output(output, "confidence", relative).max() > 0


def test_infer_equals_segmenter_on_rgb_images(tree_run, input_tree, model):
    """The CLI reads BGR files; its masks must equal the engine's on the same pixels as RGB."""
    _, output = tree_run
    segmenter = Segmenter(model, device="cpu")
    for relative in GOOD_IMAGES:
        rgb = np.ascontiguousarray(cv2.imread(str(input_tree / relative), cv2.IMREAD_COLOR)[..., ::-1])
        expected = segmenter.segment([rgb], confidence=True, logits=True)[0]
        top2 = expected.logits.topk(2, dim=0).values
        decided = (top2[0] - top2[1] > TIE_MARGIN).numpy()
        train_ids = read_output(output, "trainid", relative)
        np.testing.assert_array_equal(train_ids[decided], expected.train_ids[decided])
        confidence = read_output(output, "confidence", relative)
        assert np.abs(confidence.astype(int) - expected.confidence.astype(int)).max() <= 1
    assert len(np.unique(train_ids)) > 1  # a single-class mask would make these checks weak


def test_official_cityscapes_evaluation_reads_labelid_outputs(tree_run, tmp_path, monkeypatch):
    """cityscapesScripts' evalPixelLevelSemanticLabeling finds and scores our labelid PNGs."""
    pytest.importorskip("cityscapesscripts", reason=NO_CITYSCAPESSCRIPTS)
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evaluation
    from cityscapesscripts.helpers.labels import trainId2label

    _, output = tree_run
    gt_root = tmp_path / "cityscapes" / "gtFine" / "val"
    present = set()
    for relative in GOOD_IMAGES:
        relative = Path(relative)
        if relative.suffix != ".png":
            continue  # leave the .jpg one without ground truth: evaluation must not need it
        train_ids = read_output(output, "trainid", str(relative))
        # Ground truth built from the trainId masks with cityscapesScripts' own table.
        gt = np.zeros_like(train_ids)
        for train_id in np.unique(train_ids):
            gt[train_ids == train_id] = trainId2label[int(train_id)].id
            present.add(trainId2label[int(train_id)].name)
        np.testing.assert_array_equal(gt, read_output(output, "labelid", str(relative)))
        stem = relative.name.removesuffix("_leftImg8bit.png")
        target = gt_root / relative.parent / f"{stem}_gtFine_labelIds.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), gt)
        cv2.imwrite(str(target).replace("labelIds", "instanceIds"), gt)  # labelIds < 1000: no instances
    assert len(present) > 1

    args = copy.copy(evaluation.args)
    args.predictionPath = str(output / "labelid")
    args.predictionWalk = None
    args.exportFile = str(tmp_path / "result.json")
    args.quiet = True
    args.colorized = False
    args.bold = args.nocol = ""
    args.JSONOutput = True
    ground_truth = sorted(glob.glob(str(gt_root / "*" / "*_gtFine_labelIds.png")))
    assert len(ground_truth) == 3
    predictions = [evaluation.getPrediction(args, gt) for gt in ground_truth]
    for gt, prediction in zip(ground_truth, predictions):
        assert Path(prediction).parent.parent == output / "labelid"
        assert Path(prediction).name.split("_leftImg8bit")[0] == Path(gt).name.split("_gtFine")[0]
    results = evaluation.evaluateImgLists(predictions, ground_truth, args)
    scores = results["classScores"]
    for name in present:
        assert scores[name] == pytest.approx(1.0), name
    for name, score in scores.items():
        if name not in present:
            assert np.isnan(score), name  # absent classes: neither predicted nor in ground truth
    assert results["averageScoreClasses"] == pytest.approx(1.0)
    assert json.loads(Path(args.exportFile).read_text())["averageScoreClasses"] == pytest.approx(1.0)


# --- infer options, in-process -----------------------------------------------------------------


def test_infer_single_file_multiscale_and_input_size(capsys, tmp_path, checkpoints, model):
    source = tmp_path / "frame.jpg"
    small = np.random.default_rng(1).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    cv2.imwrite(str(source), cv2.resize(small, (32, 24), interpolation=cv2.INTER_LINEAR))
    rgb = np.ascontiguousarray(cv2.imread(str(source))[..., ::-1])
    for options, engine in (
        (["--multiscale"], {"multiscale": True}),
        (["--input-size", "16x40"], {"input_size": (16, 40)}),
    ):
        output = tmp_path / options[0].strip("-")
        code, out, err = run_main(
            capsys, "infer", source, "--output", output, "--model", MODEL, "--weights", checkpoints["original"],
            "--device", "cpu", "--save", "trainid", *TORCH, *options,
        )
        assert code == 0, err
        expected = Segmenter(model, device="cpu", **engine).segment([rgb], logits=True)[0]
        top2 = expected.logits.topk(2, dim=0).values
        decided = (top2[0] - top2[1] > TIE_MARGIN).numpy()
        written = cv2.imread(str(output / "trainid" / "frame.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == (24, 32)
        np.testing.assert_array_equal(written[decided], expected.train_ids[decided])
        assert sorted(p.name for p in output.iterdir()) == ["trainid"]


# --- errors: one line, exit != 0, nothing written ------------------------------------------------


@pytest.fixture
def bad_checkpoints(tmp_path, checkpoints) -> dict[str, Path]:
    original = checkpoints["original"].read_bytes()
    safetensors = checkpoints["safetensors"].read_bytes()
    paths = {
        "truncated_pkl": (tmp_path / "truncated.pkl", original[: len(original) // 2]),
        "truncated_safetensors": (tmp_path / "truncated.safetensors", safetensors[: len(safetensors) // 3]),
        "garbage": (tmp_path / "garbage.pth", b"\x00\x01 definitely not a checkpoint" * 10),
        "empty": (tmp_path / "empty.pkl", b""),
    }
    for path, data in paths.values():
        path.write_bytes(data)
    return {name: path for name, (path, _) in paths.items()}


def write_malicious_pickle(path: Path, marker: Path) -> None:
    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    torch.save({"features.0.0.weight": Exploit()}, path)


def infer_args(tmp_path: Path, *extra: str | Path, inputs: tuple[str | Path, ...] | None = None) -> list[str | Path]:
    if inputs is None:
        image = tmp_path / "in" / "image.png"
        if not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(image), np.full((16, 24, 3), 90, np.uint8))
        inputs = (image,)
    return ["infer", *inputs, "--output", tmp_path / "out", "--model", MODEL, "--device", "cpu", *TORCH, *extra]


def test_error_empty_folder(capsys, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
    code, _, err = run_main(capsys, *infer_args(tmp_path, inputs=(tmp_path / "empty",)))
    assert_one_clean_error(code, err, "no images", "empty")
    assert not (tmp_path / "out").exists()


def test_error_nonexistent_input(capsys, tmp_path):
    code, _, err = run_main(capsys, *infer_args(tmp_path, inputs=(tmp_path / "missing.png",)))
    assert_one_clean_error(code, err, "missing.png", "does not exist")
    assert not (tmp_path / "out").exists()


def test_error_nonexistent_among_valid_inputs_writes_nothing(capsys, tmp_path, input_tree):
    code, _, err = run_main(capsys, *infer_args(tmp_path, inputs=(input_tree, tmp_path / "missing")))
    assert_one_clean_error(code, err, "does not exist")
    assert not (tmp_path / "out").exists()


def test_error_non_image_file(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run_main(capsys, *infer_args(tmp_path, inputs=(tmp_path / "notes.txt",)))
    assert_one_clean_error(code, err, "notes.txt", "not an image")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("which", ["truncated_pkl", "truncated_safetensors", "garbage", "empty"])
def test_error_corrupt_checkpoint(capsys, tmp_path, bad_checkpoints, which):
    path = bad_checkpoints[which]
    code, _, err = run_main(capsys, *infer_args(tmp_path, "--weights", path))
    assert_one_clean_error(code, err, path.name, "corrupt")
    assert not (tmp_path / "out").exists()


def test_error_missing_checkpoint(capsys, tmp_path):
    code, _, err = run_main(capsys, *infer_args(tmp_path, "--weights", tmp_path / "nope.pkl"))
    assert_one_clean_error(code, err, "nope.pkl", "does not exist")
    assert not (tmp_path / "out").exists()
    assert "relative to" not in err  # an absolute path is where it was looked for


@pytest.mark.parametrize("weights, words", [("/dev/zero", "is a character device, not a regular file"), (".", "is a folder")])
def test_weights_that_exist_but_are_no_file_are_described_as_such(capsys, tmp_path, weights, words):
    code, _, err = run_main(capsys, *infer_args(tmp_path, "--weights", weights))
    assert_one_clean_error(code, err, f"--weights {weights} {words}")


@pytest.mark.parametrize("which", ["original", "safetensors"])
def test_error_wrong_variant_checkpoint_names_the_right_one(capsys, tmp_path, checkpoints, which):
    arguments = infer_args(tmp_path, "--weights", checkpoints[which])
    arguments[arguments.index(MODEL)] = "DenseASPP121"
    code, _, err = run_main(capsys, *arguments)
    assert_one_clean_error(code, err, "DenseASPP121", f"--model {MODEL}")
    assert not (tmp_path / "out").exists()


def test_error_malicious_pickle_is_refused_not_run(tmp_path):
    """Through a real subprocess: the file's code must not run, and stderr holds one error line."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    write_malicious_pickle(evil, marker)
    result = run_cli(*infer_args(tmp_path, "--weights", evil))
    assert_one_clean_error(result.returncode, result.stderr, "evil.pkl", "refusing")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    # convert refuses it as well and writes no output file
    target = tmp_path / "evil.safetensors"
    code = cli.main(["convert", str(evil), str(target), "--model", MODEL])
    assert code != 0 and not target.exists() and not marker.exists()


def test_error_corrupt_checkpoint_subprocess_exit_code(tmp_path, bad_checkpoints):
    result = run_cli(*infer_args(tmp_path, "--weights", bad_checkpoints["truncated_pkl"]), script=True)
    assert_one_clean_error(result.returncode, result.stderr, "truncated.pkl")
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (("--save", "bogus"), "--save"),
        (("--save", "labelid,colour"), "--save"),
        (("--save", ","), "--save"),
        (("--input-size", "12"), "--input-size"),
        (("--input-size", "0x12"), "--input-size"),
        (("--model", "DenseASPP999"), "--model"),
        (("--device", "gpu"), "device"),
        (("--precision", "fp16"), "CUDA"),
        (("--batch", "0"), "max_batch"),
        (("--labels", "/nonexistent/labels.yaml"), "labels.yaml"),
    ],
)
def test_error_bad_options(capsys, tmp_path, extra, fragment):
    code, _, err = run_main(capsys, *infer_args(tmp_path, *extra))
    assert_one_clean_error(code, err, fragment)
    assert not (tmp_path / "out").exists()


def test_error_output_is_a_file(capsys, tmp_path):
    (tmp_path / "out").write_text("precious")
    code, _, err = run_main(capsys, *infer_args(tmp_path))
    assert_one_clean_error(code, err, "not a folder")
    assert (tmp_path / "out").read_text() == "precious"


def test_error_unwritable_output_is_one_line(capsys, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "color").write_text("a file where the color folder goes")
    code, _, err = run_main(capsys, *infer_args(tmp_path, "--save", "color"))
    assert_one_clean_error(code, err, "color")


def test_error_labelid_with_label_set_without_label_ids(capsys, tmp_path):
    labels = tmp_path / "two.yaml"
    labels.write_text("name: two\nclasses:\n  - {name: floor, color: [0, 255, 0]}\n  - {name: other, color: [255, 0, 0]}\n")
    base = infer_args(tmp_path, "--labels", labels)
    code, _, err = run_main(capsys, *base, "--save", "labelid,color")
    assert_one_clean_error(code, err, "label ids", "labelid")
    assert not (tmp_path / "out").exists()
    # without labelid the same label set works
    code, _, err = run_main(capsys, *base, "--save", "trainid,color")
    assert code == 0, err
    assert cv2.imread(str(tmp_path / "out" / "trainid" / "image.png"), cv2.IMREAD_UNCHANGED).max() < 2


# --- convert ------------------------------------------------------------------------------------


def test_convert_original_pickle_to_safetensors(capsys, tmp_path, checkpoints, model):
    target = tmp_path / "nested" / "converted.safetensors"
    code, out, err = run_main(capsys, "convert", checkpoints["original"], target, "--model", MODEL)
    assert code == 0, err
    assert "wrote" in out and str(target) in out
    assert no_temporaries(tmp_path)
    loaded = build_model(MODEL)
    checkpoint = load_weights(loaded, target)
    assert checkpoint.metadata["model"] == MODEL
    expected = model.state_dict()
    for key, value in loaded.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, expected[key]), key
    model.to(memory_format=torch.contiguous_format)  # an earlier Segmenter made it channels_last
    with torch.inference_mode():
        x = torch.randn(1, 3, 24, 32)
        assert torch.equal(loaded(x), model(x))


def test_convert_declares_an_input_size_and_keeps_the_sources(capsys, tmp_path, checkpoints):
    declared = tmp_path / "declared.safetensors"
    code, out, err = run_main(capsys, "convert", checkpoints["original"], declared, "--model", MODEL, "--input-size", "48x96")
    assert code == 0 and "network input 48x96" in out, err
    assert build_model("auto", 19, declared).input_size == (48, 96)
    again = tmp_path / "again.safetensors"  # converting a declaring file keeps its declaration
    code, out, err = run_main(capsys, "convert", declared, again, "--model", MODEL, "--half")
    assert code == 0 and build_model("auto", 19, again).input_size == (48, 96), err


@pytest.mark.parametrize("which", ["truncated_pkl", "garbage"])
def test_convert_failure_leaves_no_file(capsys, tmp_path, bad_checkpoints, which):
    target = tmp_path / "converted" / "out.safetensors"
    code, _, err = run_main(capsys, "convert", bad_checkpoints[which], target, "--model", MODEL)
    assert_one_clean_error(code, err, bad_checkpoints[which].name)
    assert not target.exists() and not target.parent.exists()


def test_convert_wrong_variant_and_bad_target(capsys, tmp_path, checkpoints):
    target = tmp_path / "out.safetensors"
    code, _, err = run_main(capsys, "convert", checkpoints["original"], target, "--model", "DenseASPP121")
    assert_one_clean_error(code, err, f"--model {MODEL}")
    assert not target.exists()
    code, _, err = run_main(capsys, "convert", checkpoints["original"], tmp_path / "out.pt", "--model", MODEL)
    assert_one_clean_error(code, err, ".safetensors")
    assert list(tmp_path.iterdir()) == []


# --- bench --------------------------------------------------------------------------------------


def test_bench_writes_json_prints_table_and_warns_about_random_weights(tmp_path):
    json_path = tmp_path / "reports" / "bench.json"
    result = run_cli(
        "bench", "--model", MODEL, "--size", "32x48", "--batch", "2", "--device", "cpu", "--precision", "fp32",
        "--iterations", "2", "--warmup", "1", "--json", json_path,
        cwd=tmp_path, script=True,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "weights").exists()
    assert "warning: no --weights" in result.stderr and "random weights" in result.stderr
    assert "Traceback" not in result.stderr
    assert "raw" in result.stdout and "engine" in result.stdout and "images/s" in result.stdout
    report = json.loads(json_path.read_text())
    assert report["model"] == MODEL and report["size"] == [32, 48] and report["batch"] == 2
    assert report["device"] == "cpu" and report["iterations"] == 2
    assert [(row["backend"], row["precision"], row["path"]) for row in report["rows"]] == [
        ("torch", "fp32", "raw"), ("torch", "fp32", "engine"),
    ]  # random weights: auto is torch (nothing worth exporting)
    for row in report["rows"]:
        assert row["images_per_s"] > 0 and 0 < row["p50_ms"] <= row["p95_ms"]
    assert report["engine_share"]["torch/fp32"] > 0


def test_no_warning_with_weights(capsys, tmp_path, checkpoints):
    code, _, err = run_main(capsys, *infer_args(tmp_path, "--weights", checkpoints["safetensors"], "--save", "trainid"))
    assert code == 0, err
    assert "warning" not in err


@pytest.mark.parametrize("extra", [("--iterations", "0"), ("--warmup", "-1"), ("--batch", "0"), ("--size", "0x8")])
def test_bench_bad_numbers(capsys, tmp_path, extra):
    json_path = tmp_path / "bench.json"
    code, _, err = run_main(
        capsys, "bench", "--model", MODEL, "--size", "16x16", "--device", "cpu", "--iterations", "1", "--warmup", "0",
        "--json", json_path, *extra,
    )
    assert_one_clean_error(code, err)
    assert not json_path.exists()


def test_weights_without_a_model_run_the_network_they_identify_and_say_which(capsys, tmp_path):
    """The node's rule on the command line: --weights without --model is auto, and the summary names
    the network resolved, not "auto"; without either, DenseASPP161 (here: random, with a warning)."""
    arguments = infer_args(tmp_path, "--weights", "demo", "--input-size", "64x128")
    del arguments[arguments.index("--model") : arguments.index("--model") + 2]
    code, out, err = run_main(capsys, *arguments)
    assert code == 0, err
    assert f"with {DEMO_WEIGHTS.model} on cpu" in out
    from denseaspp_ros.cli.engine_options import model_of

    assert model_of(cli.build_parser().parse_args(["infer", "x", "--output", "o"])) == "DenseASPP161"
    assert model_of(cli.build_parser().parse_args(["infer", "x", "--output", "o", "--weights", "w.pt"])) == "auto"

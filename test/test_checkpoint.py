"""Reading and writing weights: the release's legacy pickles, project checkpoints, .safetensors,
and the errors a user sees for files that are missing, damaged, unsafe or for another network."""

import io
import os
import pickletools
import shlex
import subprocess
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from legacy_pickle import write_original_checkpoint
from original_reference import randomize_
from safetensors import safe_open
from safetensors.torch import save_file as save_safetensors_file

from denseaspp_ros.errors import CheckpointError
from denseaspp_ros.model import (
    build_model,
    convert_checkpoint,
    identify_variant,
    load_weights,
    save_checkpoint,
    save_safetensors,
    to_original_state_dict,
)
from denseaspp_ros.model import checkpoint as checkpoint_module
from denseaspp_ros.model.checkpoint import from_original_keys

DATA = Path(__file__).parent / "data"
MOBILE = "MobileNetDenseASPP"


def _random_model(name: str, seed: int, num_classes: int = 19):
    model = build_model(name, num_classes)
    randomize_(model.state_dict(), seed)
    return model


@pytest.fixture(scope="module")
def mobile_model():
    return _random_model(MOBILE, seed=1)


@pytest.fixture(scope="module")
def images():
    return torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def files(tmp_path_factory, mobile_model):
    """``mobile_model`` saved in every supported format, plus a DenseASPP121 release file."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {
        "original": folder / "original.pkl",
        "original_gpu": folder / "original_gpu.pkl",
        "project": folder / "project.pth",
        "safetensors": folder / "weights.safetensors",
        "DenseASPP121": folder / "denseASPP121.pkl",
    }
    write_original_checkpoint(to_original_state_dict(mobile_model), paths["original"])
    write_original_checkpoint(to_original_state_dict(mobile_model), paths["original_gpu"], on_gpu=True)
    save_checkpoint(mobile_model, paths["project"])
    save_safetensors(mobile_model, paths["safetensors"])
    write_original_checkpoint(to_original_state_dict(_random_model("DenseASPP121", seed=2)), paths["DenseASPP121"])
    return paths


def _assert_same_network(loaded, source, images):
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(images), source(images))
    source_state = source.state_dict()
    for key, tensor in loaded.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(tensor, source_state[key]), key


def _pickle_opcodes(data: bytes) -> list[set[str]]:
    """Opcode names of each of the five pickles a legacy torch.save file starts with."""
    stream = io.BytesIO(data)
    return [{op.name for op, _, _ in pickletools.genops(stream)} for _ in range(5)]


def _load_error(path, name=MOBILE, num_classes=19) -> str:
    with pytest.raises(CheckpointError) as error:
        build_model(name, num_classes, weights=path)
    return str(error.value)


# --- the release's legacy pickles ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["original", "original_gpu"])
def test_legacy_writer_produces_what_the_release_wrote(files, kind):
    data = files[kind].read_bytes()
    assert data[:2] != b"PK" and not zipfile.is_zipfile(files[kind])
    magic, protocol, sys_info, objects, storage_keys = _pickle_opcodes(data)
    assert "PROTO" in objects and "SHORT_BINSTRING" in objects
    # Python 2 str, never Python 3 unicode; 0.3.1's tensor rebuild function, not today's v2.
    assert not {"BINUNICODE", "SHORT_BINUNICODE"} & (objects | sys_info | storage_keys)
    assert b"ctorch._utils\n_rebuild_tensor\n" in data and b"_rebuild_tensor_v2" not in data
    assert b"ccollections\nOrderedDict\n" in data
    on_gpu = kind == "original_gpu"
    assert (b"ctorch.cuda\nFloatStorage\n" in data) == on_gpu
    assert (b"U\x06cuda:0" in data) == on_gpu
    assert (b"U\x03cpu" in data) != on_gpu


@pytest.mark.parametrize("kind", ["original", "original_gpu"])
def test_release_checkpoint_loads_exactly(files, kind, mobile_model, images):
    assert files[kind].read_bytes()[:2] != b"PK"
    _assert_same_network(build_model(MOBILE, weights=files[kind]), mobile_model, images)


def test_release_checkpoint_of_a_densenet_variant_loads_exactly(files, images):
    source = _random_model("DenseASPP121", seed=2)
    model = build_model("DenseASPP121")
    checkpoint = load_weights(model, files["DenseASPP121"])
    assert checkpoint.source_format == "original"
    _assert_same_network(model.eval(), source, images)


def test_release_checkpoint_in_a_state_dict_wrapper_loads(tmp_path, mobile_model, images):
    path = tmp_path / "wrapped.pth"
    torch.save({"epoch": 80, "state_dict": to_original_state_dict(mobile_model)}, path)
    _assert_same_network(build_model(MOBILE, weights=path), mobile_model, images)


def test_original_keys_map_back_to_the_project_layout(mobile_model):
    expected = {k: v for k, v in mobile_model.state_dict().items() if not k.endswith("num_batches_tracked")}
    renamed = from_original_keys(to_original_state_dict(mobile_model))
    assert list(renamed) == list(expected)
    assert all(renamed[k] is not None and torch.equal(renamed[k], expected[k]) for k in expected)


# --- this project's formats ---------------------------------------------------------------------


def test_project_checkpoint_round_trip(files, mobile_model, images):
    assert zipfile.is_zipfile(files["project"])
    model = build_model(MOBILE)
    checkpoint = load_weights(model, files["project"])
    assert checkpoint.source_format == "project"
    assert checkpoint.metadata["model"] == MOBILE and checkpoint.metadata["num_classes"] == 19
    _assert_same_network(model.eval(), mobile_model, images)


def test_safetensors_round_trip(files, mobile_model, images):
    model = build_model(MOBILE)
    checkpoint = load_weights(model, files["safetensors"])
    assert checkpoint.source_format == "safetensors"
    assert checkpoint.metadata["model"] == MOBILE and checkpoint.metadata["num_classes"] == 19
    _assert_same_network(model.eval(), mobile_model, images)


def test_half_pixel_upsampling_travels_in_both_formats_and_the_release_is_corner_aligned(files, tmp_path):
    half_pixel = build_model(MOBILE)
    half_pixel.align_corners = False
    save_checkpoint(half_pixel, tmp_path / "run.pt")
    save_safetensors(half_pixel, tmp_path / "run.safetensors")
    for path in (tmp_path / "run.pt", tmp_path / "run.safetensors"):
        model = build_model(MOBILE)
        model.align_corners = True
        load_weights(model, path)
        assert model.align_corners is False, path
    released = build_model(MOBILE)
    released.align_corners = False
    load_weights(released, files["original"])  # the release's file says nothing: corner-aligned, as 0.3.1 upsampled
    assert released.align_corners is True


@pytest.mark.parametrize("kind", ["original", "original_gpu"])
def test_convert_release_checkpoint_to_safetensors(files, kind, tmp_path, mobile_model, images):
    target = tmp_path / "converted.safetensors"
    convert_checkpoint(files[kind], target, MOBILE)
    with safe_open(str(target), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["model"] == MOBILE and metadata["num_classes"] == "19"
    assert metadata["source"] == files[kind].name
    _assert_same_network(build_model(MOBILE, weights=target), mobile_model, images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted.safetensors"]


# --- identify_variant ---------------------------------------------------------------------------


def _release_shapes(name: str, num_classes: int = 19) -> OrderedDict:
    """Empty tensors named and shaped as the release's checkpoint lists them (test/data)."""
    tensors = OrderedDict()
    for line in (DATA / f"{name}.keys.txt").read_text().splitlines()[1:]:
        key, shape = line.split()
        shape = [int(size) for size in shape.split("x")]
        if key.startswith("module.classification.1."):
            shape[0] = num_classes
        tensors[key] = torch.empty(shape, device="meta")
    return tensors


@pytest.mark.parametrize("name", ["DenseASPP121", "DenseASPP161", "DenseASPP169", "DenseASPP201", MOBILE])
@pytest.mark.parametrize("num_classes", [19, 21])
def test_identify_variant_of_release_layout(name, num_classes):
    state_dict = from_original_keys(_release_shapes(name, num_classes))
    assert identify_variant(state_dict) == (name, num_classes)


def test_identify_variant_of_an_incomplete_state_dict_is_none():
    state_dict = from_original_keys(_release_shapes("DenseASPP121"))
    del state_dict["features.norm5.running_var"]
    assert identify_variant(state_dict) is None
    assert identify_variant({}) is None


# --- files that cannot be used --------------------------------------------------------------------


def test_missing_file(tmp_path):
    message = _load_error(tmp_path / "denseASPP161.pkl")
    assert "does not exist" in message and "denseASPP161.pkl" in message


def test_folder_instead_of_file(tmp_path):
    assert "is not a file" in _load_error(tmp_path)


@pytest.mark.parametrize("kind", ["original", "project", "safetensors"])
def test_empty_file(files, kind, tmp_path):
    path = tmp_path / files[kind].name
    path.touch()
    assert "empty" in _load_error(path)


@pytest.mark.parametrize("kind", ["original", "project", "safetensors"])
@pytest.mark.parametrize("fraction", [0.0001, 0.01, 0.5, 0.99, 0.999999])
def test_truncated_file(files, kind, fraction, tmp_path):
    data = files[kind].read_bytes()
    path = tmp_path / files[kind].name
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    message = _load_error(path)
    assert "truncated or corrupt" in message and str(path) in message
    # torch's own advice to retry with weights_only=False is wrong for a damaged file and unsafe.
    assert "weights_only" not in message


@pytest.mark.parametrize("filename", ["garbage.pkl", "garbage.pth", "garbage"])
def test_random_bytes(tmp_path, filename):
    path = tmp_path / filename
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    message = _load_error(path)
    assert "truncated or corrupt" in message and "weights_only" not in message


@pytest.mark.parametrize(
    "content",
    [
        np.random.default_rng(1).bytes(10_000),
        # A header length that fits, then a header that is not JSON.
        (40).to_bytes(8, "little") + b"{not json" + b" " * 31 + b"\0" * 64,
    ],
    ids=["random", "bad-header"],
)
def test_corrupt_safetensors(tmp_path, content):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(content)
    assert "not a readable .safetensors file" in _load_error(path)


class _RunsCode:
    """Pickles as a call that creates ``marker``: what a malicious weights file does."""

    def __init__(self, marker: Path, runner: str) -> None:
        self.marker, self.runner = marker, runner

    def __reduce__(self):
        if self.runner == "os.system":  # a module torch's unpickler blocks outright
            return os.system, (f"touch {shlex.quote(str(self.marker))}",)
        return subprocess.call, (["touch", str(self.marker)],)  # merely not on its allowlist


def _save_code_running_pickle(path: Path, marker: Path, runner: str, legacy: bool) -> None:
    payload = OrderedDict(
        [("module.classification.1.bias", torch.zeros(19)), ("module.payload", _RunsCode(marker, runner))]
    )
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)


# The global the message names; protocol 2 pickles subprocess.call under its Python 2 name.
RUNNERS = {"os.system": "(posix.system)", "subprocess.call": "(commands.call)"}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_pickle_that_runs_code_is_refused_without_running(tmp_path, runner, legacy):
    path, marker = tmp_path / "evil.pkl", tmp_path / "marker"
    _save_code_running_pickle(path, marker, runner, legacy)
    message = _load_error(path)
    assert message.startswith("refusing to load") and "run code" in message
    assert RUNNERS[runner] in message
    assert not marker.exists()


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_the_code_running_pickle_really_runs_code_when_unpickled_unsafely(tmp_path, runner):
    # The control for the test above: the payload is live, so "not run" means "refused".
    path, marker = tmp_path / "evil.pkl", tmp_path / "marker"
    _save_code_running_pickle(path, marker, runner, legacy=True)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_checkpoint_of_another_variant_is_identified(files):
    message = _load_error(files["DenseASPP121"])
    assert "missing keys (features.features.0.0.weight" in message
    assert "unexpected keys (features.conv0.weight" in message
    assert "DenseASPP121 checkpoint with 19 classes" in message and "--model DenseASPP121" in message


def test_checkpoint_of_a_related_densenet_variant_is_identified(files):
    message = _load_error(files["DenseASPP121"], name="DenseASPP169")
    assert "missing keys (features.denseblock3.denselayer25." in message
    assert "shape mismatches (features.transition3.norm.weight (file 1024, model 1280)" in message
    assert "--model DenseASPP121" in message


def test_checkpoint_with_another_class_count_is_identified(tmp_path):
    path = tmp_path / "voc.pkl"
    write_original_checkpoint(to_original_state_dict(build_model(MOBILE, num_classes=21)), path)
    message = _load_error(path)
    assert "classification.1.weight (file 21x640x1x1, model 19x640x1x1)" in message
    assert "21 classes" in message and "--labels with 21 classes" in message and "--model" not in message


def test_project_checkpoint_claiming_another_model(tmp_path, mobile_model):
    # The tensors fit, but the file says they were trained as a different network.
    path = tmp_path / "mislabelled.pth"
    save_checkpoint(mobile_model, path)
    payload = torch.load(path, weights_only=True)
    payload["model"] = "DenseASPP121"
    torch.save(payload, path)
    message = _load_error(path)
    assert f"holds DenseASPP121 weights, not {MOBILE}" in message


def test_safetensors_claiming_another_model(tmp_path, mobile_model):
    path = tmp_path / "mislabelled.safetensors"
    tensors = {key: tensor.contiguous() for key, tensor in mobile_model.state_dict().items()}
    save_safetensors_file(tensors, str(path), metadata={"model": "DenseASPP161", "num_classes": "19"})
    assert f"holds DenseASPP161 weights, not {MOBILE}" in _load_error(path)


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_state_dict_with_a_non_tensor_value(tmp_path, mobile_model, legacy):
    state_dict = to_original_state_dict(mobile_model)
    state_dict["module.features.features.0.1.momentum"] = 0.1
    path = tmp_path / "odd.pkl"
    if legacy:
        # The legacy writer only knows tensors and str; use torch's own legacy pickler for the float.
        torch.save(state_dict, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(state_dict, path)
    message = _load_error(path)
    assert "not a state dict" in message and "'module.features.features.0.1.momentum' is a float" in message


@pytest.mark.parametrize("payload, found", [([torch.zeros(3)], "list"), ({}, "dict"), (torch.zeros(3), "Tensor")])
def test_file_without_a_state_dict(tmp_path, payload, found):
    path = tmp_path / "notweights.pth"
    torch.save(payload, path)
    assert f"holds no state dict (found {found})" in _load_error(path)


# --- convert_checkpoint leaves nothing behind when it fails -----------------------------------------


def _folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_conversion_of_a_damaged_file_writes_nothing(files, tmp_path):
    source = tmp_path / "denseASPP.pkl"
    source.write_bytes(files["original"].read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        convert_checkpoint(source, tmp_path / "out.safetensors", MOBILE)
    assert _folder_listing(tmp_path) == ["denseASPP.pkl"]


def test_failed_conversion_for_the_wrong_variant_writes_nothing(files, tmp_path):
    with pytest.raises(CheckpointError, match="DenseASPP121"):
        convert_checkpoint(files["DenseASPP121"], tmp_path / "out.safetensors", MOBILE)
    assert _folder_listing(tmp_path) == []


def test_failure_while_writing_leaves_no_partial_or_temporary_file(files, tmp_path, monkeypatch):
    target = tmp_path / "out.safetensors"
    target.write_bytes(b"previous conversion")

    def write_half_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module, "save_safetensors_file", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        convert_checkpoint(files["original"], target, MOBILE)
    assert _folder_listing(tmp_path) == ["out.safetensors"]
    assert target.read_bytes() == b"previous conversion"

"""Exported backends against torch: the export checks itself, every backend segments real frames like
torch, the cache survives restarts and rebuilds on any change of its key, and what is missing says
how to install it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from denseaspp_ros import cli
from denseaspp_ros.errors import DenseASPPError
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.inference import backends
from denseaspp_ros.inference.backends import EngineIdentity, backend_precision, export_verified
from denseaspp_ros.inference.calibration import calibration_frames
from denseaspp_ros.model import RELEASE_NORMALIZATION, build_model, save_safetensors
from denseaspp_ros.model.export import ExportError, export_onnx, read_metadata

# Installed by `make` (the onnx and openvino extras); a plain `pip install .` has neither runtime.
onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install -e '.[openvino]'")

SIZE = (128, 256)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Held-out frames of the synthetic world (a seed the demo weights never saw)."""
    return calibration_frames(None, 3, SIZE)


@pytest.fixture(scope="module")
def reference(frames):
    engine = load_engine("demo", backend=BackendSettings(backend="torch"), device="cpu", precision="fp32", input_size=SIZE)
    return [result.train_ids for result in engine.segment(frames)]


def engine_for(backend: str, precision: str = "auto", **settings) -> object:
    return load_engine(
        "demo", backend=BackendSettings(backend=backend, calibration_frames=8, **settings), precision=precision,
        input_size=SIZE, log=lambda message: None,
    )


@pytest.mark.parametrize("backend, precision, agreement", [
    ("onnxruntime", "fp32", 0.999), ("openvino", "fp32", 0.999), ("openvino", "int8", 0.97),
])
def test_every_backend_segments_real_frames_like_torch(frames, reference, backend, precision, agreement):
    engine = engine_for(backend, precision)
    assert engine.describe()["backend"] == backend and engine.describe()["precision"] == precision
    results = engine.segment(frames, confidence=True)
    agreeing = np.mean([np.mean(result.train_ids == expected) for result, expected in zip(results, reference)])
    assert agreeing >= agreement, f"{backend} {precision}: {100 * agreeing:.3f}% of pixels agree with torch"
    assert all(result.finite and result.confidence is not None for result in results)


def test_the_export_is_verified_and_describes_itself(tmp_path):
    model = build_model("MobileNetDenseASPP", 19).eval()
    identity = EngineIdentity.of(model, "MobileNetDenseASPP", RELEASE_NORMALIZATION)
    check = export_verified(model, identity, tmp_path / "net.onnx", (64, 96), frames=2)
    assert check.passed() and check.max_logit_error < 1e-3 and check.argmax_agreement >= 0.999
    metadata = read_metadata(tmp_path / "net.onnx")
    assert metadata["model"] == "MobileNetDenseASPP" and metadata["num_classes"] == "19"
    assert metadata["input_size"] == "64x96" and metadata["weights_sha256"] == identity.digest
    assert metadata["opset"] == "18" and "mean_rgb" in metadata
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"images": np.zeros((3, 3, 64, 96), np.float32)})[0].shape == (3, 19, 64, 96)  # dynamic batch


class _Drifting(nn.Module):
    """A network whose output depends on Python state the exported graph cannot hold."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x) * self.calls


def test_an_export_that_does_not_reproduce_the_network_is_refused_and_not_left(tmp_path):
    batch = torch.randn(2, 3, 16, 16)
    with pytest.raises(ExportError, match="does not reproduce the network: max .logit difference"):
        export_onnx(_Drifting(), tmp_path / "bad.onnx", batch, {})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.parametrize("name", ["DenseASPP161", "MobileNetDenseASPPDecoder"])
def test_the_largest_network_and_the_decoder_export_within_the_logit_tolerance(tmp_path, name):
    model = build_model(name, 19).eval()
    identity = EngineIdentity.of(model, name, RELEASE_NORMALIZATION)
    check = export_verified(model, identity, tmp_path / f"{name}.onnx", (64, 64), frames=1)
    assert check.max_logit_error <= 1e-3 and check.argmax_agreement >= 0.999


def test_a_half_pixel_network_exports_as_itself_and_under_a_key_of_its_own(tmp_path):
    """The tensors do not show how a network upsamples: the engine's identity (and so its cache key)
    and the ONNX metadata do, and the export computes the half-pixel network within the tolerance."""
    model = build_model("MobileNetDenseASPPDecoder", 19).eval()
    corner_aligned = EngineIdentity.of(model, "MobileNetDenseASPPDecoder", RELEASE_NORMALIZATION)
    model.align_corners = False
    identity = EngineIdentity.of(model, "MobileNetDenseASPPDecoder", RELEASE_NORMALIZATION)
    assert identity.digest == corner_aligned.digest and identity != corner_aligned
    check = export_verified(model, identity, tmp_path / "half_pixel.onnx", (64, 64), frames=1)
    assert check.max_logit_error <= 1e-3 and check.argmax_agreement >= 0.999
    assert read_metadata(tmp_path / "half_pixel.onnx")["align_corners"] == "false"


def test_engines_are_cached_across_restarts_and_rebuilt_when_their_key_changes(tmp_path, frames):
    cache = tmp_path / "cache"
    settings = {"cache_dir": str(cache)}
    first = engine_for("openvino", **settings)
    assert [path.name.split("-")[-2] for path in first.backend.built] == ["onnx", "fp32"]
    again = engine_for("openvino", **settings)  # a second start: everything comes from the cache
    assert again.backend.built == []
    np.testing.assert_array_equal(again.segment(frames[:1])[0].train_ids, first.segment(frames[:1])[0].train_ids)
    other = engine_for("onnxruntime", **settings)  # the same verified ONNX file serves ONNX Runtime
    assert other.backend.built == []
    # Weights that declare no input size run at each image's own: a new size is built at its first frame.
    native = build_model("auto", 19, "demo")
    native.input_size = None
    save_safetensors(native, tmp_path / "native.safetensors")
    larger = load_engine(tmp_path / "native.safetensors", backend=BackendSettings(backend="openvino", **settings), log=lambda m: None)
    assert larger.backend.built == []
    larger.segment([np.zeros((64, 64, 3), np.uint8)])
    assert [path.name.split("-")[-2] for path in larger.backend.built] == ["onnx", "fp32"]
    # Weights that declare one (the demo weights: 384x768) are built at it while loading, whatever the frames' size.
    declared = load_engine("demo", backend=BackendSettings(backend="openvino", **settings), log=lambda m: None)
    assert len(declared.backend.built) == 2 and declared.input_size == (384, 768)
    assert declared.segment([np.zeros((64, 64, 3), np.uint8)])[0].train_ids.shape == (64, 64)
    keys = [json.loads((entry / "key.json").read_text()) for entry in cache.iterdir()]
    assert all(record["files"] for record in keys)  # every file of every entry has its SHA-256 recorded
    assert all(not entry.name.startswith(".") for entry in cache.iterdir())  # no half-built entry left
    assert {tuple(record["key"]["size"]) for record in keys} == {SIZE, (64, 64), (384, 768)}


def test_a_missing_runtime_names_the_extra_that_installs_it(monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda name: False)
    with pytest.raises(DenseASPPError, match=r"pip install 'denseaspp_ros\[openvino\]'"):
        engine_for("openvino")
    assert backends.choose_backend("auto", torch.device("cpu"), untrained=False) == "torch"


def test_auto_picks_torch_for_random_weights_and_cuda_and_an_exported_runtime_on_a_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert backends.choose_backend("auto", cpu, untrained=False) == "openvino"
    assert backends.choose_backend("auto", cpu, untrained=True) == "torch"
    assert backends.choose_backend("auto", cuda, untrained=False) == "torch"
    assert backends.choose_backend("onnxruntime", cuda, untrained=True) == "onnxruntime"


@pytest.mark.parametrize("backend, precision, message", [
    ("torch", "int8", "int8 runs on the openvino backend"),
    ("onnxruntime", "int8", "the onnxruntime backend runs fp32, not int8"),
    ("openvino", "fp16", "the openvino backend runs fp32 or int8, not fp16"),
])
def test_precisions_a_backend_cannot_run_are_refused(backend, precision, message):
    with pytest.raises(DenseASPPError, match=message):
        backend_precision(backend, precision)


def test_unavailable_providers_are_skipped_and_none_available_is_an_error(frames):
    engine = engine_for("onnxruntime", providers=("TensorrtExecutionProvider", "CPUExecutionProvider"))
    assert engine.segment(frames[:1])[0].finite  # TensorRT is not in this onnxruntime: CPU runs
    with pytest.raises(DenseASPPError, match="none of the providers"):
        engine_for("onnxruntime", providers=("NoSuchExecutionProvider",))


def test_export_command_writes_a_verified_file(tmp_path, capsys):
    output = tmp_path / "demo.onnx"
    code = cli.main(["export", "--weights", "demo", "--size", "64x128", "--batch", "2", "--output", str(output),
                     "--check-frames", "2"])
    out = capsys.readouterr().out
    assert code == 0 and output.is_file() and "argmax agreement 100" in out
    assert read_metadata(output)["input_size"] == "64x128"


def test_eval_through_each_backend_keeps_the_accuracy_of_torch(tmp_path):
    """The accuracy gates on held-out synthetic frames: fp32 within 0.1 mIoU point, int8 within 1."""
    from denseaspp_ros.synth.drive import DriveConfig
    from denseaspp_ros.synth.outputs import write_drive

    folder = tmp_path / "drive"
    write_drive(DriveConfig(frames=6, seed=7, size=SIZE), folder, split="val", progress=False)
    miou = {}
    for backend, precision in (("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8")):
        output = tmp_path / f"{backend}-{precision}"
        code = cli.main(["eval", "--cityscapes", str(folder), "--weights", "demo", "--model", "auto", "--backend", backend,
                         "--precision", precision, "--calibration-frames", "8", "--output", str(output)])
        assert code == 0
        report = json.loads((output / "report.json").read_text())
        assert report["frames_evaluated"] == 6
        miou[(backend, precision)] = 100 * report["miou"]
    torch_miou = miou[("torch", "fp32")]
    assert abs(miou[("onnxruntime", "fp32")] - torch_miou) <= 0.1, miou
    assert abs(miou[("openvino", "fp32")] - torch_miou) <= 0.1, miou
    assert abs(miou[("openvino", "int8")] - torch_miou) <= 1.0, miou

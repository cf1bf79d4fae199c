"""The engine that runs is the engine that was built: every load checks a cache entry's key, the
SHA-256 of each of its files and the ONNX file's own metadata against the weights actually loaded;
an entry that fails is reported, rebuilt and never run; a cache that cannot be written says how
to fix it; leftovers of interrupted builds never wedge a later run."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from denseaspp_ros.errors import DenseASPPError
from denseaspp_ros.inference import BackendSettings, load_engine
from denseaspp_ros.inference.backends import EngineIdentity, export_verified
from denseaspp_ros.inference.cache import CacheError, KEY_FILE, build_entry, file_sha256
from denseaspp_ros.inference.calibration import calibration_frames
from denseaspp_ros.model import RELEASE_NORMALIZATION, build_model
from denseaspp_ros.model.export import ExportError, export_onnx

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install -e '.[onnx]'")
pytest.importorskip("openvino", reason="the openvino extra is not installed: pip install -e '.[openvino]'")

SIZE = (64, 128)


def engine(cache: Path, backend: str, warnings: list[str] | None = None):
    return load_engine(
        "demo", backend=BackendSettings(backend=backend, cache_dir=str(cache), calibration_frames=4),
        input_size=SIZE, log=lambda message: None, warn=(warnings if warnings is not None else []).append,
    )


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return calibration_frames(None, 2, SIZE)


@pytest.fixture(scope="module")
def built(tmp_path_factory, frames):
    """A cache holding the demo weights' ONNX and OpenVINO fp32 entries at SIZE, and their masks."""
    cache = tmp_path_factory.mktemp("built") / "cache"
    first = engine(cache, "openvino")
    assert [path.name.split("-")[-2] for path in first.backend.built] == ["onnx", "fp32"]
    return cache, [result.train_ids for result in first.segment(frames)]


@pytest.fixture
def cache(built, tmp_path) -> Path:
    """A copy of the built cache for one test to tamper with."""
    copy = tmp_path / "cache"
    shutil.copytree(built[0], copy)
    return copy


def entry(cache: Path, kind: str) -> Path:
    (found,) = [path for path in cache.iterdir() if path.name.endswith(f"-{kind}") or f"-{kind}-" in path.name]
    return found


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return planted_onnx(tmp_path_factory.mktemp("planted"))


def planted_onnx(folder: Path) -> Path:
    """Another network's verified export (random weights of the same architecture) at SIZE."""
    name = build_model("auto", 19, "demo").variant_name
    other = build_model(name, 19).eval()
    export_verified(other, EngineIdentity.of(other, name, RELEASE_NORMALIZATION),
                    folder / "planted.onnx", SIZE, frames=1)
    return folder / "planted.onnx"


def forge_key(folder: Path) -> None:
    """Rewrite key.json's file digests to what the folder now holds, as a careful attacker would."""
    record = json.loads((folder / KEY_FILE).read_text())
    record["files"] = {name: file_sha256(folder / name) for name in record["files"]}
    (folder / KEY_FILE).write_text(json.dumps(record))


def assert_rebuilt_and_right(cache, backend, built, frames, names: str) -> None:
    warnings: list[str] = []
    again = engine(cache, backend, warnings)
    assert again.backend.built, "the tampered entry was used, not rebuilt"
    assert any(names in message and "rebuilding" in message for message in warnings), warnings
    for result, expected in zip(again.segment(frames), built[1]):
        assert np.mean(result.train_ids == expected) > 0.999


def test_an_untouched_cache_loads_without_a_build_or_a_warning(cache, built, frames):
    warnings: list[str] = []
    again = engine(cache, "openvino", warnings)
    assert again.backend.built == [] and warnings == []
    record = json.loads((entry(cache, "onnx") / KEY_FILE).read_text())
    assert set(record["files"]) == {"model.onnx"} and record["key"]["weights"] == again.backend.identity.digest


def test_a_planted_onnx_of_another_network_is_refused_and_rebuilt(cache, built, frames, planted):
    onnx_entry = entry(cache, "onnx")
    shutil.copyfile(planted, onnx_entry / "model.onnx")
    assert_rebuilt_and_right(cache, "onnxruntime", built, frames, f"{onnx_entry.name} holds a model.onnx that is not")


def test_a_planted_onnx_with_a_forged_key_is_caught_by_its_own_metadata(cache, built, frames, planted):
    onnx_entry = entry(cache, "onnx")
    shutil.copyfile(planted, onnx_entry / "model.onnx")
    forge_key(onnx_entry)
    assert_rebuilt_and_right(cache, "onnxruntime", built, frames, "holds an ONNX export of another network: weights_sha256")


def test_a_zeroed_ir_of_the_same_size_is_refused_and_rebuilt(cache, built, frames):
    ir = entry(cache, "fp32")
    weights = ir / "model.bin"
    size = weights.stat().st_size
    with open(weights, "r+b") as stream:
        stream.write(bytes(min(size, 4 << 20)))
    assert weights.stat().st_size == size
    assert_rebuilt_and_right(cache, "openvino", built, frames, f"{ir.name} holds a model.bin")


def test_an_ir_from_another_onnx_is_never_reused(cache, built, frames, tmp_path):
    """The IR's key carries the digest of the verified ONNX it was built from: an IR entry cannot
    be passed off as built from the entry's ONNX file."""
    ir = entry(cache, "fp32")
    record = json.loads((ir / KEY_FILE).read_text())
    assert record["key"]["onnx_sha256"] == file_sha256(entry(cache, "onnx") / "model.onnx")


def test_an_entry_without_its_key_or_with_garbage_is_rebuilt_not_wedged(cache, built, frames):
    onnx_entry = entry(cache, "onnx")
    (onnx_entry / KEY_FILE).unlink()
    assert_rebuilt_and_right(cache, "onnxruntime", built, frames, f"{onnx_entry.name} has no key.json")
    (onnx_entry / KEY_FILE).write_text("{not json")
    assert_rebuilt_and_right(cache, "onnxruntime", built, frames, "has an unreadable key.json")
    assert not [path for path in cache.iterdir() if path.name.startswith(".")]


def test_leftovers_of_a_killed_build_are_removed_and_a_live_build_is_left_alone(tmp_path):
    path = tmp_path / "cache" / "net-64x128-onnx-0123456789abcdef"
    path.parent.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = path.parent / f".{path.name}.{dead.stdout.strip()}.abc"
    legacy = path.parent / f".{path.name}.x1y2z3"  # the old naming, without a pid
    alive = path.parent / f".{path.name}.{os.getppid()}.def"
    for folder in (killed, legacy, alive):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half")
    build_entry(path, lambda folder: (folder / "model.onnx").write_bytes(b"whole"), {"k": 1})
    assert not killed.exists() and not legacy.exists() and alive.exists()
    assert (path / "model.onnx").read_bytes() == b"whole"


def test_a_cache_that_cannot_be_written_fails_saying_how_to_fix_it(cache, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(CacheError, match=r"cannot be written .*cache_dir setting, --cache-dir, or \$DENSEASPP_CACHE"):
        engine(blocked / "cache", "onnxruntime")


def test_a_warm_load_writes_nothing_so_a_read_only_cache_serves(cache, built, frames):
    def snapshot() -> dict[str, tuple[int, int]]:
        return {str(path): (path.stat().st_mtime_ns, path.stat().st_size) for path in [cache, *cache.rglob("*")]}

    before = snapshot()
    again = engine(cache, "openvino")
    assert again.backend.built == [] and snapshot() == before
    np.testing.assert_array_equal(again.segment(frames[:1])[0].train_ids, built[1][0])


def test_entries_follow_the_umask_so_another_user_can_read_them(tmp_path):
    previous = os.umask(0o022)
    try:
        path, made = build_entry(tmp_path / "cache" / "entry", lambda folder: (folder / "model.onnx").write_bytes(b"x"), {"k": 1})
    finally:
        os.umask(previous)
    assert made
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(file.stat().st_mode) for file in path.iterdir()} == {0o644}


class _NotFinite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * float("nan")


def test_an_export_whose_logits_are_not_finite_is_refused(tmp_path):
    with pytest.raises(ExportError, match="non-finite logits"):
        export_onnx(_NotFinite(), tmp_path / "nan.onnx", torch.randn(1, 3, 16, 16), {})
    assert list(tmp_path.iterdir()) == []


# --- int8 calibration frames ------------------------------------------------------------------


def write_bag(path: Path, cameras: dict[str, tuple[np.ndarray, str]], frames: int = 3) -> Path:
    """A bag with ``frames`` messages on each topic: {topic: (pixels, encoding)}."""
    from denseaspp_ros.bags import BagWriter

    with BagWriter(path) as bag:
        for index in range(frames):
            for topic, (pixels, encoding) in cameras.items():
                bag.write_image(topic, (index + 1) * 100_000_000, "camera", pixels, encoding)
    return path


MASK = np.tile(np.arange(64, dtype=np.uint8) % 19, (48, 1))
PICTURE = np.dstack([MASK * 13, MASK * 7, 255 - MASK * 11]).astype(np.uint8)


def test_a_bag_whose_only_image_topic_is_a_label_mask_is_refused_naming_the_way_out(tmp_path):
    bag = write_bag(tmp_path / "labels", {"/front/labels": (MASK, "mono8")})
    with pytest.raises(DenseASPPError, match=r"no colour camera topic; its grey image topics \(/front/labels\) may be label masks"):
        calibration_frames(str(bag), 8, SIZE)
    named = calibration_frames(f"{bag}:/front/labels", 3, SIZE)  # named, a grey topic is taken
    assert len(named) == 3


def test_the_colour_camera_is_taken_beside_a_label_topic_and_several_cameras_need_a_name(tmp_path):
    bag = write_bag(tmp_path / "drive", {"/a/labels": (MASK, "mono8"), "/front/image": (PICTURE, "rgb8")})
    frames = calibration_frames(str(bag), 3, (48, 64))
    assert len(frames) == 3 and np.array_equal(frames[0], PICTURE)
    two = write_bag(tmp_path / "two", {"/front/image": (PICTURE, "rgb8"), "/rear/image": (PICTURE, "bgr8")})
    with pytest.raises(DenseASPPError, match=r"2 colour camera topics \(/front/image, /rear/image\): name the camera topic"):
        calibration_frames(str(two), 3, SIZE)
    assert len(calibration_frames(f"{two}:/rear/image", 3, SIZE)) == 3
    with pytest.raises(DenseASPPError, match="has no Image or CompressedImage topic /side/image"):
        calibration_frames(f"{two}:/side/image", 3, SIZE)


def test_fewer_frames_than_asked_is_a_warning_with_the_count(tmp_path):
    bag = write_bag(tmp_path / "short", {"/front/image": (PICTURE, "rgb8")}, frames=6)
    warnings: list[str] = []
    assert len(calibration_frames(str(bag), 32, SIZE, warnings.append)) == 6
    assert warnings == [f"calibration source {bag} holds 6 frames, fewer than the 32 asked: calibrating on 6"]


def test_recalibrating_on_new_frames_under_the_same_path_builds_a_new_int8_engine(tmp_path):
    folder = tmp_path / "calibration"
    folder.mkdir()
    source = calibration_frames(None, 4, SIZE)
    for index, frame in enumerate(source[:2]):
        cv2.imwrite(str(folder / f"{index}.png"), frame[..., ::-1])

    def int8():
        return load_engine("demo", backend=BackendSettings(
            backend="openvino", cache_dir=str(tmp_path / "cache"), calibration=str(folder), calibration_frames=2,
        ), precision="int8", input_size=SIZE, log=lambda message: None)

    assert [path.name.split("-")[-2] for path in int8().backend.built] == ["onnx", "int8"]
    assert int8().backend.built == []  # the same frames: the same engine
    for index, frame in enumerate(source[2:]):
        cv2.imwrite(str(folder / f"{index}.png"), frame[..., ::-1])
    assert [path.name.split("-")[-2] for path in int8().backend.built] == ["int8"]


# --- engines kept in memory: bounded, and built aside in a node -----------------------------------


class _Counting:
    """An exported backend's bookkeeping with engines that take ``seconds`` to build and report their size."""

    def __init__(self, tmp_path: Path, seconds: float = 0.0, max_engines: int = 4) -> None:
        from denseaspp_ros.inference.backends import OnnxRuntimeBackend

        network = build_model("MobileNetDenseASPP", 19)
        identity = EngineIdentity.of(network, "MobileNetDenseASPP", RELEASE_NORMALIZATION)
        settings = BackendSettings(backend="onnxruntime", cache_dir=str(tmp_path), max_engines=max_engines)
        self.backend = OnnxRuntimeBackend(network, identity, "fp32", settings, log=lambda message: None, warn=print)
        self.backend._load = self.load  # the engines' build: an export is tested above, their keeping here
        self.seconds, self.loads = seconds, []

    def load(self, size: tuple[int, int]):
        import time

        self.loads.append(size)
        time.sleep(self.seconds)
        return lambda array: np.full((array.shape[0], 19, *size), 1.0, np.float32)

    def run(self, height: int) -> np.ndarray:
        return self.backend(torch.zeros(1, 3, height, 64)).numpy()


def test_engines_kept_are_bounded_least_recently_used_first(tmp_path):
    counting = _Counting(tmp_path, max_engines=2)
    for height in (32, 48, 32, 64, 48):  # 32 is used again before 64 comes: 48 is dropped, then rebuilt
        counting.run(height)
    state = counting.backend.state()
    assert counting.loads == [(32, 64), (48, 64), (64, 64), (48, 64)]
    assert state["engines_kept"] == "64x64 48x64" and state["engines_evicted"] == 2


def test_a_node_builds_a_new_size_aside_and_the_frame_path_does_not_wait(tmp_path):
    import time

    from denseaspp_ros.inference.backends import EngineBuilding

    counting = _Counting(tmp_path, seconds=1.5)
    counting.run(32)  # built in line before the node asks for background builds
    counting.backend.build_in_background()
    started = time.monotonic()
    with pytest.raises(EngineBuilding, match="the engine for 48x64 is not built yet"):
        counting.run(48)
    with pytest.raises(EngineBuilding, match=r"not built yet \(48x64 is being built"):
        counting.run(80)  # one build at a time
    assert time.monotonic() - started < 0.5 and counting.backend.state()["engine_building"] == "48x64"
    assert counting.run(32).shape == (1, 19, 32, 64)  # the size already built runs on meanwhile
    deadline = time.monotonic() + 30
    while counting.backend.state()["engine_building"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert counting.run(48).shape == (1, 19, 48, 64) and counting.loads == [(32, 64), (48, 64)]


def test_a_failed_background_build_stays_failed_rather_than_storming(tmp_path):
    import time

    from denseaspp_ros.errors import DenseASPPError
    from denseaspp_ros.inference.backends import EngineBuilding

    counting = _Counting(tmp_path)

    def broken(size):
        counting.loads.append(size)
        raise DenseASPPError("export failed")

    counting.backend._load = broken
    counting.backend.build_in_background()
    with pytest.raises(EngineBuilding):
        counting.run(48)
    deadline = time.monotonic() + 10
    while counting.backend.state()["engine_building"] is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):
        with pytest.raises(DenseASPPError, match="export failed"):
            counting.run(48)
    assert counting.loads == [(48, 64)] and "48x64: export failed" in counting.backend.state()["engine_failures"]


def test_multiscale_on_an_exported_backend_needs_an_engine_per_scale(tmp_path):
    """Every frame runs all six scales: with fewer engines kept each frame would evict and rebuild."""
    from denseaspp_ros.errors import DenseASPPError

    with pytest.raises(DenseASPPError, match="runs 6 input sizes a frame .*max_engines must be at least 6 \\(it is 4\\)"):
        load_engine("demo", backend=BackendSettings(backend="onnxruntime", cache_dir=str(tmp_path), max_engines=4),
                    multiscale=True, log=lambda message: None)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # refused before anything was built

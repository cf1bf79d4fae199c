"""What runs the network: a backend maps a normalised float32 batch (N, 3, H, W) to logits.

Everything around it (normalisation, resizing, multi-scale fusion, argmax, confidence) is the
Segmenter's and the same for every backend.

- ``torch``: the network itself, eager or ``torch.compile``d, on the CPU or CUDA (fp16/bf16 there).
- ``openvino``: an OpenVINO IR compiled for a device string (``CPU``; ``GPU``/``AUTO`` pass
  through for Intel GPUs), fp32 or int8 (NNCF post-training quantization on real frames).
- ``onnxruntime``: an ONNX Runtime session on the listed execution providers that the installed
  onnxruntime offers (CPU; CUDA and TensorRT where present: one code path).

Exported engines have a fixed spatial size, so one is built per input size on first use, from a
verified ONNX export, and kept in the cache (``inference/cache.py``): a second start loads them.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..declarations import format_size, setting, validate
from ..errors import DenseASPPError, require
from ..model.export import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, ExportCheck, export_onnx, read_metadata
from ..model.weights import Normalization
from .cache import build_entry, cache_root, entry_path, recorded_digest, weights_digest
from .calibration import calibration_frames, frames_digest, is_synthetic, synthetic_world_digest
from .preprocessing import preprocess

BACKENDS = ("auto", "torch", "openvino", "onnxruntime")
EXPORTED = {"openvino": "openvino", "onnxruntime": "onnx"}  # backend -> the extra that installs it
_EXPORT = ["onnx", "onnxruntime", "onnxscript"]  # an exported backend is built from a verified ONNX file
_MODULES = {"torch": [], "onnxruntime": _EXPORT, "openvino": [*_EXPORT, "openvino", "nncf"]}
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
BACKEND_PRECISIONS = {"torch": ("fp32", "fp16", "bf16"), "openvino": ("fp32", "int8"), "onnxruntime": ("fp32",)}
VERIFY_FRAMES = 2  # real frames every export is checked on


@dataclass(frozen=True)
class BackendSettings:
    """How the network runs: the node's ``model.*`` backend parameters and the commands' flags."""

    backend: str = setting(
        "auto", "auto (torch on CUDA or for random weights; on a CPU the fastest installed exported runtime: "
        "openvino, else onnxruntime, else torch), torch, openvino or onnxruntime", choices=BACKENDS,
    )
    compile: str = setting(
        "none", "torch backend: none (eager) or a torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune",
        choices=COMPILE_MODES,
    )
    openvino_device: str = setting("CPU", "openvino backend: device (CPU; GPU or AUTO for Intel GPUs)")
    providers: tuple[str, ...] = setting(
        ("CPUExecutionProvider",),
        "onnxruntime backend: execution providers in order of preference (e.g. TensorrtExecutionProvider "
        "CUDAExecutionProvider CPUExecutionProvider); those the installed onnxruntime lacks are skipped",
    )
    tensorrt_fp16: bool = setting(True, "onnxruntime backend: TensorrtExecutionProvider builds fp16 engines")
    calibration: str = setting(
        "", "int8 calibration frames: an image folder, a Cityscapes folder, a bag with one colour camera topic, "
        "or BAG:TOPIC; empty = the synthetic world",
    )
    calibration_frames: int = setting(32, "int8 calibration: how many frames", low=1, high=10000)
    cache_dir: str = setting("", "exported engines; empty = $DENSEASPP_CACHE, else ~/.cache/denseaspp_ros")
    threads: int = setting(0, "CPU threads of the openvino/onnxruntime backends; 0 = every core", low=0, high=1024)
    max_engines: int = setting(
        4, "exported backends: engines (one per input size) kept loaded; the least recently used is dropped beyond",
        low=1, high=64,
    )

    def __post_init__(self) -> None:
        validate(self)


def installed(backend: str) -> bool:
    """Whether ``backend``'s runtime and the ONNX export it is built from can be imported."""
    return all(importlib.util.find_spec(module) is not None for module in _MODULES[backend])


def choose_backend(requested: str, device: torch.device, untrained: bool) -> str:
    """``auto``: torch on CUDA (its fp16 path is the fast one there) and for random weights (nothing
    worth exporting); on a CPU the fastest installed exported runtime."""
    if requested != "auto":
        return requested
    if device.type == "cuda" or untrained:
        return "torch"
    return next((name for name in ("openvino", "onnxruntime") if installed(name)), "torch")


def backend_precision(backend: str, precision: str) -> str:
    """The precision ``backend`` runs at for the ``precision`` asked (auto: fp32; the torch backend
    turns it into fp16 on CUDA itself)."""
    if precision == "auto":
        return "fp32"
    if precision not in BACKEND_PRECISIONS[backend]:
        raise DenseASPPError(
            f"the {backend} backend runs {' or '.join(BACKEND_PRECISIONS[backend])}, not {precision}"
            + ("; int8 runs on the openvino backend" if precision == "int8" else "")
        )
    return precision


def normalised(frames: list[np.ndarray], normalization: Normalization) -> torch.Tensor:
    """RGB uint8 frames as the float32 NCHW batch a network takes."""
    return preprocess(
        torch.from_numpy(np.stack(frames)), torch.device("cpu"), normalize=normalization,
        memory_format=torch.contiguous_format,
    )


def export_verified(
    model: nn.Module, identity: EngineIdentity, path: Path, size: tuple[int, int], *, batch: int | None = None,
    calibration: str | Path | None = None, frames: int = VERIFY_FRAMES,
) -> ExportCheck:
    """The one export: ``model`` as ONNX at ``size``, checked on ``frames`` real frames (from
    ``calibration``, else the synthetic world), described in its metadata."""
    check_batch = normalised(calibration_frames(calibration, frames, size), identity.normalization)
    metadata = {
        **identity.onnx_metadata(size), "input": "float32 RGB (N, 3, H, W), (x / 255 - mean) / std",
        "output": "logits (N, classes, H, W): argmax over classes outside the graph",
    }
    return export_onnx(model, path, check_batch, metadata, batch=batch)


class EngineBuilding(DenseASPPError):
    """No engine for a frame's size yet: it is being built in the background (the frame is dropped)."""


class TorchBackend:
    """The network itself (optionally compiled); it lives wherever the Segmenter put it."""

    name = "torch"

    def __init__(self, model: nn.Module, compile_mode: str = "none") -> None:
        self.model = model
        self.compile_mode = compile_mode
        self._run = model if compile_mode == "none" else torch.compile(model, mode=compile_mode)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self._run(batch)

    def describe(self) -> dict[str, str]:
        return {"backend": "torch", "compile": self.compile_mode}  # precision: the Segmenter's


@dataclass(frozen=True)
class EngineIdentity:
    """What an exported engine is a function of, besides its size and runtime."""

    model_name: str
    num_classes: int
    digest: str  # of the weights' tensors
    normalization: Normalization
    align_corners: bool  # the network's upsampling, which the tensors do not show

    @classmethod
    def of(cls, model: nn.Module, model_name: str, normalization: Normalization) -> EngineIdentity:
        return cls(
            model_name, int(getattr(model, "num_classes", 0)), weights_digest(model), normalization,
            bool(getattr(model, "align_corners", True)),
        )

    def onnx_metadata(self, size: tuple[int, int]) -> dict[str, str]:
        """What an ONNX export of this network at ``size`` says of itself, and a cached one must say."""
        return {
            "model": self.model_name, "num_classes": str(self.num_classes), "input_size": format_size(size),
            "precision": "fp32", "mean_rgb": repr(self.normalization.mean_rgb), "std_rgb": repr(self.normalization.std_rgb),
            "weights_sha256": self.digest, "align_corners": str(self.align_corners).lower(),
        }

    def onnx_problem(self, path: Path, size: tuple[int, int]) -> str | None:
        """What in the ONNX file at ``path`` contradicts this network at ``size`` (None: nothing)."""
        try:
            declared = read_metadata(path)
        except Exception as error:  # onnx raises its own decode errors for a damaged file
            return f"holds an ONNX file that cannot be read ({type(error).__name__}: {error})"
        wrong = [
            f"{name} {declared.get(name, 'missing')!r} (expected {expected!r})"
            for name, expected in self.onnx_metadata(size).items() if declared.get(name) != expected
        ]
        return f"holds an ONNX export of another network: {', '.join(wrong)}" if wrong else None


class ExportedBackend:
    """Engines built from a verified ONNX export, one per input size, on first use; cached on disk."""

    name = "exported"

    def __init__(
        self, model: nn.Module, identity: EngineIdentity, precision: str, settings: BackendSettings,
        log: Callable[[str], None], warn: Callable[[str], None],
    ) -> None:
        self.model = model.float().eval()
        self.identity, self.precision, self.settings, self.log, self.warn = identity, precision, settings, log, warn
        self.root = cache_root(settings.cache_dir)
        self.threads = settings.threads or os.cpu_count() or 1
        self._engines: OrderedDict[tuple[int, int], Callable[[np.ndarray], np.ndarray]] = OrderedDict()  # oldest use first
        self._calibration: dict[tuple[int, int], list[np.ndarray]] = {}
        self.built: list[Path] = []  # cache entries this process had to build (a warm start builds none)
        self.evicted = 0  # engines dropped to keep at most settings.max_engines
        self._background = False
        self._lock = threading.Lock()
        self._building: tuple[tuple[int, int], float] | None = None  # (size, monotonic start) of the background build
        self._failed: dict[tuple[int, int], DenseASPPError] = {}  # sizes whose background build failed, and why

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        engine = self._engine((int(batch.shape[-2]), int(batch.shape[-1])))
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(engine(array))

    def prepare(self, size: tuple[int, int]) -> None:
        """Build (or load) the engine for ``size`` now rather than at the first frame."""
        with self._lock:
            ready = size in self._engines
        if not ready:
            self._keep(size, self._load(size))

    def build_in_background(self) -> None:
        """From now on an engine for a new size is built on a thread of its own, one at a time, and
        frames of that size raise ``EngineBuilding`` meanwhile: a node's frame path never waits the
        seconds (minutes, for TensorRT) a build takes, and the other sizes keep running."""
        self._background = True

    def state(self) -> dict[str, object]:
        """What /diagnostics says of the engines: the sizes kept, the one being built, evictions, failures."""
        with self._lock:
            building = self._building
            return {
                "engines_kept": " ".join(format_size(size) for size in self._engines) or "none",
                "engine_building": None if building is None else format_size(building[0]),
                "engine_building_s": None if building is None else time.monotonic() - building[1],
                "engines_evicted": self.evicted,
                "engine_failures": "; ".join(f"{format_size(size)}: {error}" for size, error in self._failed.items()) or None,
            }

    def _engine(self, size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
        with self._lock:
            engine = self._engines.get(size)
            if engine is not None:
                self._engines.move_to_end(size)
                return engine
            if size in self._failed:
                raise self._failed[size]
            if self._background:
                if self._building is None:
                    self._building = (size, time.monotonic())
                    threading.Thread(target=self._build_apart, args=(size,), name=f"engine-{format_size(size)}", daemon=True).start()
                building = self._building
                raise EngineBuilding(
                    f"the engine for {format_size(size)} is not built yet ({format_size(building[0])} is being built, "
                    f"{time.monotonic() - building[1]:.0f} s so far): frames of that size are dropped until it is ready"
                )
        engine = self._load(size)
        self._keep(size, engine)
        return engine

    def _build_apart(self, size: tuple[int, int]) -> None:
        try:
            engine = self._load(size)
        except Exception as error:  # an export that fails stays failed for this size: no rebuild storm
            failure = error if isinstance(error, DenseASPPError) else DenseASPPError(f"{type(error).__name__}: {error}")
            with self._lock:
                self._failed[size], self._building = failure, None
            self.warn(f"building the engine for {format_size(size)} failed: {failure}")
            return
        self._keep(size, engine)
        with self._lock:
            self._building = None

    def _keep(self, size: tuple[int, int], engine: Callable[[np.ndarray], np.ndarray]) -> None:
        """Keep ``engine`` as the most recently used; drop the least recently used beyond max_engines."""
        with self._lock:
            self._engines[size] = engine
            self._engines.move_to_end(size)
            while len(self._engines) > self.settings.max_engines:
                dropped, _ = self._engines.popitem(last=False)
                self.evicted += 1
                self.log(f"dropped the engine for {format_size(dropped)}: max_engines is {self.settings.max_engines}")

    def onnx_file(self, size: tuple[int, int]) -> Path:
        """The verified ONNX export for ``size`` in the cache, exported when missing."""
        onnx = require("onnx", EXPORTED[self.name], f"the {self.name} backend")
        key = self._key(size, onnx=onnx.__version__, opset=ONNX_OPSET)

        def build(folder: Path) -> None:
            self.log(f"exporting {self.identity.model_name} at {size[0]}x{size[1]} to ONNX (once; cached in {self.root})")
            check = export_verified(
                self.model, self.identity, folder / "model.onnx", size, calibration=self.settings.calibration or None
            )
            self.log(f"ONNX export verified: {check.describe()}")

        def check(folder: Path) -> str | None:
            return self.identity.onnx_problem(folder / "model.onnx", size)

        return self._entry("onnx", size, key, build, check) / "model.onnx"

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "precision": self.precision, "cache": str(self.root)}

    def _load(self, size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
        raise NotImplementedError

    def _key(self, size: tuple[int, int], **more: object) -> dict[str, object]:
        identity = self.identity
        return {
            "model": identity.model_name, "classes": identity.num_classes, "weights": identity.digest,
            "align_corners": identity.align_corners, "size": list(size), "torch": torch.__version__, **more,
        }

    def _entry(
        self, kind: str, size: tuple[int, int], key: dict[str, object], build: Callable[[Path], None],
        check: Callable[[Path], str | None] = lambda folder: None,
    ) -> Path:
        label = f"{self.identity.model_name}-{size[0]}x{size[1]}-{kind}"
        started = time.monotonic()
        path, made = build_entry(entry_path(self.root, label, key), build, key, check=check, warn=self.warn)
        if made:
            self.built.append(path)
            self.log(f"built {path.name} in {time.monotonic() - started:.1f} s")
        return path

    def _normalised(self, frames: list[np.ndarray]) -> torch.Tensor:
        return normalised(frames, self.identity.normalization)


class OnnxRuntimeBackend(ExportedBackend):
    name = "onnxruntime"

    def _load(self, size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
        runtime = require("onnxruntime", "onnx", "the onnxruntime backend")
        path = self.onnx_file(size)
        options = runtime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads yield the cores
        options.graph_optimization_level = runtime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = runtime.InferenceSession(str(path), options, providers=self._providers(runtime, path.parent))
        return lambda array: session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]

    def _providers(self, runtime: Any, folder: Path) -> list[tuple[str, dict[str, str]]]:
        available = runtime.get_available_providers()
        chosen = [provider for provider in self.settings.providers if provider in available]
        skipped = [provider for provider in self.settings.providers if provider not in available]
        if skipped:
            self.log(f"onnxruntime {runtime.__version__} lacks {', '.join(skipped)}: skipped (it has {', '.join(available)})")
        if not chosen:
            raise DenseASPPError(
                f"none of the providers {list(self.settings.providers)} is available in onnxruntime; it has {available}"
            )
        options = {
            "TensorrtExecutionProvider": {
                "trt_fp16_enable": str(self.settings.tensorrt_fp16), "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(folder / "tensorrt"),
            }
        }
        return [(provider, options.get(provider, {})) for provider in chosen]

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "providers": " ".join(self.settings.providers)}


class OpenVINOBackend(ExportedBackend):
    name = "openvino"

    def _load(self, size: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
        openvino = require("openvino", "openvino", "the openvino backend")
        ir = self._ir(openvino, size)
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.settings.openvino_device.upper().startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = self.threads
            if self.precision == "fp32":
                config["INFERENCE_PRECISION_HINT"] = "f32"  # not bf16 behind the user's back on CPUs that have it
        compiled = openvino.Core().compile_model(str(ir), self.settings.openvino_device, config)
        request = compiled.create_infer_request()
        output = compiled.output(0)
        return lambda array: request.infer({0: array}, share_inputs=True)[output]

    def _ir(self, openvino: Any, size: tuple[int, int]) -> Path:
        onnx_path = self.onnx_file(size)
        # An IR is built from this verified file only: its digest is part of the IR's key.
        key = self._key(size, openvino=openvino.__version__, precision=self.precision,
                        onnx_sha256=recorded_digest(onnx_path.parent, onnx_path.name))
        if self.precision == "int8":
            nncf = require("nncf", "openvino", "int8 quantization")
            calibration = self.settings.calibration
            key.update(nncf=nncf.__version__, calibration_frames=self.settings.calibration_frames,
                       calibration_sha256=synthetic_world_digest() if is_synthetic(calibration) else frames_digest(self._frames(size)))

        def build(folder: Path) -> None:
            model = openvino.convert_model(str(onnx_path))
            if self.precision == "int8":
                model = self._quantize(model, size)
            openvino.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)

        return self._entry(f"openvino-{self.precision}", size, key, build) / "model.xml"

    def _frames(self, size: tuple[int, int]) -> list[np.ndarray]:
        """The int8 calibration frames at ``size``, read once per process."""
        if size not in self._calibration:
            self._calibration[size] = calibration_frames(
                self.settings.calibration or None, self.settings.calibration_frames, size, self.warn
            )
        return self._calibration[size]

    def _quantize(self, model: Any, size: tuple[int, int]) -> Any:
        nncf = require("nncf", "openvino", "int8 quantization")
        count = self.settings.calibration_frames
        source = self.settings.calibration or "the synthetic world"
        frames = self._frames(size)
        self.log(f"calibrating int8 on {len(frames)} of {count} frames asked of {source} at {size[0]}x{size[1]} (NNCF)")
        batches = [self._normalised([frame]).numpy() for frame in frames]
        return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches), fast_bias_correction=True)


def make_backend(
    name: str, model: nn.Module, identity: EngineIdentity, precision: str, settings: BackendSettings,
    log: Callable[[str], None], warn: Callable[[str], None],
) -> TorchBackend | ExportedBackend:
    """The backend ``name`` (not ``auto``: see ``choose_backend``) for a network already built;
    ``log`` hears about exports, ``warn`` about cache entries that failed their check."""
    if name == "torch":
        return TorchBackend(model, settings.compile)
    if not installed(name):
        extra = EXPORTED[name]
        raise DenseASPPError(
            f"the {name} backend is not installed: pip install 'denseaspp_ros[{extra}]' "
            f"(or pip install -e '.[{extra}]' in a clone)"
        )
    backend = {"openvino": OpenVINOBackend, "onnxruntime": OnnxRuntimeBackend}[name]
    return backend(model, identity, precision, settings, log, warn)

"""Reading and writing DenseASPP weights files: the original release's pickles, this project's
checkpoints (training states included) and ``.safetensors``.

File I/O and key layouts only: which network a file is for, and loading it into one, is
``variants``' business. A checkpoint is untrusted input: pickles are only ever read with
``weights_only`` semantics, so a file that would execute code is refused rather than run.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors_file
from safetensors.torch import safe_open, save_file as save_safetensors_file
from torch import nn

from ..atomic import atomic_write
from ..declarations import format_size, parse_size
from ..errors import CheckpointError

PROJECT_FORMAT = "denseaspp_ros"
PROJECT_FORMAT_VERSION = 1
MAX_INPUT_SIDE = 8192  # the longest network input side a header may declare, as the node's model.input_height/width
# DataParallel, which the release trained with, prefixed every key with "module.".
DATA_PARALLEL_PREFIX = "module."
# The release named layers "norm.1"/"conv.2", which modern PyTorch refuses as module names;
# like torchvision's DenseNet loader, rename them with one rule each way.
_ORIGINAL_LAYER_NAME = re.compile(r"(denselayer\d+|ASPP_\d+)\.(norm|conv)\.([12])\.")
_PROJECT_LAYER_NAME = re.compile(r"(denselayer\d+|ASPP_\d+)\.(norm|conv)([12])\.")


@dataclass
class Checkpoint:
    """Tensors in this project's key layout plus whatever the file said about them."""

    state_dict: dict[str, torch.Tensor]
    source_format: str  # "original", "project" or "safetensors"
    metadata: dict[str, Any] = field(default_factory=dict)


def from_original_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map release key names (``module.`` prefix, dotted layer names) to this project's layout."""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith(DATA_PARALLEL_PREFIX):
            key = key[len(DATA_PARALLEL_PREFIX):]
        renamed[_ORIGINAL_LAYER_NAME.sub(r"\1.\2\3.", key)] = value
    return renamed


def to_original_state_dict(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    """The model's tensors named and ordered as a checkpoint of the original release stores them."""
    return OrderedDict(
        (DATA_PARALLEL_PREFIX + _PROJECT_LAYER_NAME.sub(r"\1.\2.\3.", key), value)
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported weights file into the project's key layout, without building a model."""
    path = _existing_file(path)
    checkpoint = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickle(path)
    _require_finite(checkpoint.state_dict, path)
    return checkpoint


def read_training_state(path: str | Path) -> dict[str, Any]:
    """A project checkpoint with a training run's state beside the weights (``OUTPUT/last.pt``), as one dict.

    Read as untrusted as any checkpoint, so that resuming is not the one place where a planted
    file runs code: a training state holds only tensors and plain Python values.
    """
    path = _existing_file(path)
    payload = _unpickle(path)
    if not isinstance(payload, Mapping) or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a training state: no state_dict in it")
    _require_finite(_tensors_only(payload["state_dict"], path), path)
    return dict(payload)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist" if not path.exists() else f"{path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    return path


def _require_finite(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse NaN/inf anywhere: one NaN weight makes every pixel one class (e.g. road = free space)."""
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            nans = int(torch.isnan(tensor).sum())
            raise CheckpointError(
                f"{path}: tensor {key} holds {bad} non-finite values ({nans} NaN, {bad - nans} inf) of "
                f"{tensor.numel()}: a corrupt file or a diverged training run; refusing to load it"
            )


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        tensors = load_safetensors_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable .safetensors file (truncated or corrupt?): {error}") from None
    if "num_classes" in metadata:
        try:
            metadata["num_classes"] = int(metadata["num_classes"])
        except ValueError:
            raise CheckpointError(
                f"{path}: the header's num_classes is {metadata['num_classes']!r}, not a whole number"
            ) from None
    return Checkpoint(tensors, "safetensors", metadata)


def _read_pickle(path: Path) -> Checkpoint:
    payload = _unpickle(path)
    if isinstance(payload, Mapping) and payload.get("format") == PROJECT_FORMAT:
        metadata = {k: v for k, v in payload.items() if k != "state_dict"}
        return Checkpoint(dict(_tensors_only(payload.get("state_dict"), path)), "project", metadata)
    if isinstance(payload, Mapping) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]  # the common {"state_dict": ...} wrapper of training scripts
    return Checkpoint(from_original_keys(_tensors_only(payload, path)), "original")


def _unpickle(path: Path) -> Any:
    """``torch.load`` with ``weights_only``: tensors and plain values, never code; errors say which."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        refused = _UNSAFE_GLOBAL.search(str(error))
        if refused:
            raise CheckpointError(
                f"refusing to load {path}: it contains a pickled object ({refused.group(1) or refused.group(2)}) "
                "that would run code when loaded; a weights file holds only tensors. Do not use this file."
            ) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {_load_failure_reason(error)}"
        ) from None
    return payload


# torch's weights_only unpickler names a refused global in one of two ways: modules it blocks
# outright (os, sys, posix, nt) and globals merely absent from its allowlist.
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)|unsupported GLOBAL (\S+) whose module")
_WEIGHTS_ONLY_BOILERPLATE = ("Weights only load failed", "Check the documentation of torch.load")


def _load_failure_reason(error: Exception) -> str:
    """The specific cause inside torch's error, without its advice to retry with ``weights_only=False``.

    For a corrupt file that advice is wrong (it cannot succeed) and for an untrusted one unsafe.
    """
    paragraphs = [p.strip() for p in str(error).split("\n\n") if p.strip()]
    details = [p for p in paragraphs if not p.startswith(_WEIGHTS_ONLY_BOILERPLATE)]
    reason = details[0].splitlines()[0] if details else ""
    if isinstance(error, (RuntimeError, pickle.UnpicklingError)) and reason:
        return reason
    # EOFError, KeyError, IndexError, ... from garbled pickle opcodes say little without their type.
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


def _tensors_only(payload: Any, path: Path) -> Mapping[str, torch.Tensor]:
    if not isinstance(payload, Mapping) or not payload:
        raise CheckpointError(f"{path} holds no state dict (found {type(payload).__name__})")
    for key, value in payload.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path} is not a state dict: entry {key!r} is a {type(value).__name__}")
    return payload


def _model_metadata(model: nn.Module) -> dict[str, Any]:
    metadata = {
        "format": PROJECT_FORMAT,
        "version": PROJECT_FORMAT_VERSION,
        "model": getattr(model, "variant_name", type(model).__name__),
        "num_classes": getattr(model, "num_classes", None),
    }
    input_size = getattr(model, "input_size", None)
    if input_size is not None:
        metadata["input_size"] = format_size(input_size)
    if getattr(model, "align_corners", True) is False:  # absent: the release's corner-aligned upsampling
        metadata["align_corners"] = "false"
    return metadata


def align_corners_of(checkpoint: Checkpoint, path: str | Path) -> bool:
    """Whether a checkpoint's weights expect corner-aligned upsampling (the release's, and the default)."""
    text = str(checkpoint.metadata.get("align_corners", "true")).lower()
    if text not in ("true", "false"):
        raise CheckpointError(f"{path}: the header's align_corners is {text!r}, not true or false")
    return text == "true"


def input_size_of(checkpoint: Checkpoint, path: str | Path) -> tuple[int, int] | None:
    """The input size a checkpoint's header says its weights run at (None: the camera's own)."""
    text = checkpoint.metadata.get("input_size")
    if text is None:
        return None
    try:
        height, width = parse_size(str(text))
    except ValueError as error:
        raise CheckpointError(f"{path}: the header's input_size: {error}") from None
    if max(height, width) > MAX_INPUT_SIDE:
        raise CheckpointError(f"{path}: the header's input_size {text} exceeds {MAX_INPUT_SIDE} pixels a side")
    return height, width


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> None:
    """Save in the project's format: a dict with metadata and the state dict (``extra`` for training state)."""
    payload = {**_model_metadata(model), **extra, "state_dict": model.state_dict()}
    atomic_write(Path(path), lambda target: torch.save(payload, target))


def save_safetensors(model: nn.Module, path: str | Path, **metadata: str) -> None:
    """Save the weights as ``.safetensors`` with the model name and class count as metadata."""
    header = {k: str(v) for k, v in {**_model_metadata(model), **metadata}.items()}
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda target: save_safetensors_file(tensors, target, metadata=header))

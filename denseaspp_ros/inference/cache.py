"""Where exported engines are kept between runs, and what they are keyed by.

An engine (an ONNX file, an OpenVINO IR, a TensorRT cache) is a function of the weights, the
network, the input size, the precision and the runtime's version: the key hashes all of them, so
a change of any one builds a new engine and a second start with the same ones loads the old. An
entry is built in a temporary folder beside its place and renamed into it: it is whole or absent,
even when two processes build it at once or one is killed half-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

CACHE_ENV = "DENSEASPP_CACHE"


def cache_root(configured: str | Path = "") -> Path:
    """``configured``, else ``$DENSEASPP_CACHE``, else the user's cache folder (XDG)."""
    if str(configured):
        return Path(configured).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "denseaspp_ros"


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the network's tensors (names, types, shapes and values): the same for the same
    weights whatever file format they came from, and different for any other weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (BatchNorm counters) too
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def entry_path(root: Path, label: str, key: dict[str, object]) -> Path:
    """The folder of one engine: a readable label and the hash of everything it depends on."""
    text = json.dumps(key, sort_keys=True, default=str)
    return root / f"{label}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def build_entry(path: Path, build: Callable[[Path], None], key: dict[str, object]) -> tuple[Path, bool]:
    """The entry at ``path``, built by ``build(folder)`` when absent; (path, whether it was built).

    ``key`` is written beside the files (key.json) so a user can tell what an entry holds.
    """
    if (path / "key.json").is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        build(building)
        (building / "key.json").write_text(json.dumps(key, sort_keys=True, indent=1, default=str) + "\n")
        try:
            os.replace(building, path)
        except OSError:
            if not (path / "key.json").is_file():  # not another process's complete entry: a real failure
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return path, True

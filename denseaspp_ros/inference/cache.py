"""Where exported engines are kept between runs, what they are keyed by, and how a load trusts them.

An engine (an ONNX file, an OpenVINO IR, a TensorRT cache) is a function of the weights, the
network, the input size, the precision and the runtime's version: the key hashes all of them, so
a change of any one builds a new engine and a second start with the same ones loads the old.

A cache folder is not trusted: anyone who can write it can plant another network's engine, and a
disk can corrupt one. So ``key.json`` records the key (the weights' digest among it) and the
SHA-256 of every file of the entry, and every load checks both, plus whatever the caller can
check in the files themselves (an ONNX file's own metadata), before anything runs. An entry that
fails is reported and rebuilt. An entry is built in a temporary folder beside its place and
renamed into it: it is whole or absent, even when two processes build it at once or one is
killed half-way; the temporary folders of builds whose process is gone are removed.
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

from ..atomic import share_as_umask_allows
from ..errors import DenseASPPError

CACHE_ENV = "DENSEASPP_CACHE"
KEY_FILE = "key.json"
_CHUNK = 1 << 20


class CacheError(DenseASPPError):
    """The engine cache cannot hold a needed engine (a folder this user cannot write)."""


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
    return root / f"{label}-{hashlib.sha256(_canonical(key).encode()).hexdigest()[:16]}"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks (an engine can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entry_problem(path: Path, key: dict[str, object]) -> str | None:
    """Why the entry at ``path`` cannot be trusted for ``key``, or None when its key and every
    file it lists check out."""
    try:
        record = json.loads((path / KEY_FILE).read_text())
    except FileNotFoundError:
        return f"has no {KEY_FILE}"
    except (OSError, ValueError) as error:
        return f"has an unreadable {KEY_FILE} ({error})"
    if not isinstance(record, dict) or record.get("key") != json.loads(_canonical(key)):
        return f"was built for another key than its {KEY_FILE} gives"
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return f"lists no files in its {KEY_FILE}"
    for name, expected in sorted(files.items()):
        try:
            actual = file_sha256(path / name)
        except OSError as error:
            return f"cannot read {name} ({error.strerror or error})"
        if actual != expected:
            return f"holds a {name} that is not the file it was built with (SHA-256 {actual[:12]}, built {str(expected)[:12]})"
    return None


def recorded_digest(path: Path, name: str) -> str:
    """The SHA-256 ``key.json`` records for file ``name`` of a checked entry."""
    return str(json.loads((path / KEY_FILE).read_text())["files"][name])


def build_entry(
    path: Path, build: Callable[[Path], None], key: dict[str, object], *,
    check: Callable[[Path], str | None] = lambda path: None, warn: Callable[[str], None] = lambda message: None,
) -> tuple[Path, bool]:
    """The entry at ``path``, checked, or built by ``build(folder)``; (path, whether it was built).

    ``check(folder)`` says what is wrong with a folder whose files are the ones recorded (None:
    nothing), for what the files themselves declare. A present entry that fails either check is
    reported through ``warn`` and replaced. The new entry's ``key.json`` records ``key`` and the
    SHA-256 of every file ``build`` wrote; it is checked the same way before it is used.
    """
    problem = _problem(path, key, check) if path.exists() else None
    if path.exists() and problem is None:
        return path, False
    if problem is not None:
        warn(f"engine cache entry {path} {problem}: not used, rebuilding it")
    building = _start_build(path)
    try:
        build(building)
        files = {
            str(file.relative_to(building)): file_sha256(file) for file in sorted(building.rglob("*")) if file.is_file()
        }
        record = {"key": json.loads(_canonical(key)), "files": files}
        (building / KEY_FILE).write_text(json.dumps(record, sort_keys=True, indent=1) + "\n")
        share_as_umask_allows(building)
        _install(building, path, key, check)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    problem = _problem(path, key, check)
    if problem is not None:  # another process installed something else at the same moment
        raise CacheError(f"engine cache entry {path} {problem} right after it was built: is another program writing it?")
    return path, True


def _canonical(key: dict[str, object]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _problem(path: Path, key: dict[str, object], check: Callable[[Path], str | None]) -> str | None:
    return entry_problem(path, key) or check(path)


def _start_build(path: Path) -> Path:
    """A new private folder beside ``path`` (named after this process), once the leftovers of
    builds whose process has gone are removed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in path.parent.glob(f".{path.name}.*"):
            if not _alive(leftover.name[len(path.name) + 2 :].split(".")[0]):
                shutil.rmtree(leftover, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent))
    except OSError as error:
        raise CacheError(
            f"the engine cache {path.parent} cannot be written ({error.strerror or error}) and holds no valid "
            f"{path.name}: point the cache at a folder this user can write (the cache_dir setting, --cache-dir, "
            f"or ${CACHE_ENV}), or build the engine there once as a user who can write it"
        ) from None


def _alive(pid: str) -> bool:
    """Whether the process that named a build folder still runs (a folder with no pid: no)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _install(building: Path, path: Path, key: dict[str, object], check: Callable[[Path], str | None]) -> None:
    """Rename the built folder into place; a bad entry there is first moved aside, then removed."""
    try:
        os.replace(building, path)
        return
    except OSError:
        if not path.exists():
            raise
    if _problem(path, key, check) is None:  # another process installed a good entry meanwhile: keep it
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent))
    os.replace(path, aside / "replaced")
    try:
        os.replace(building, path)
    finally:
        shutil.rmtree(aside, ignore_errors=True)

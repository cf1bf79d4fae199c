"""Atomic file writes: outputs are complete or absent, never half-written."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(umask)
    return umask


def _new_file_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` would leave: the old file's, else 0o666 minus the umask.

    ``mkstemp`` creates its files 0o600, which would make every output private to its owner.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def share_as_umask_allows(folder: Path) -> None:
    """Give ``folder`` and everything in it the permissions plain ``mkdir``/``open`` would have.

    ``mkdtemp`` and ``mkstemp`` make private folders and files; a folder built that way and then
    renamed into a shared place (an engine cache built at image build time and read by the
    node's user) must follow the umask like any other file.
    """
    umask = current_umask()
    for root, folders, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~umask)
        for name in folders:
            os.chmod(os.path.join(root, name), 0o777 & ~umask)


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so a crash, a full disk or an exception leaves the old file
    (or none) at ``path`` and no temporary file behind. The result gets the permissions a plain
    write would have given it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            os.fchmod(handle, _new_file_mode(path))
        finally:
            os.close(handle)
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

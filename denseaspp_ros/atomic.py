"""Atomic file writes: outputs are complete or absent, never half-written."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def _new_file_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` would leave: the old file's, else 0o666 minus the umask.

    ``mkstemp`` creates its files 0o600, which would make every output private to its owner.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # Linux: reads the umask without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(umask)
    return 0o666 & ~umask


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

"""Files named by settings and flags: regular files only, read with a size bound.

A parameter can be set at run time over the parameter service, and a flag to anything: naming
``/dev/zero`` must not read gigabytes, and naming a FIFO must not hang configure forever with no
word. So a named file is opened without blocking, must be a regular file, and is read up to a
bound; anything else is refused saying what the path is.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DenseASPPError

MAX_SETTINGS_FILE_BYTES = 1 << 20  # a label set or a cost table is a few KB
MAX_IMAGE_FILE_BYTES = 1 << 28  # 256 MB: far above any camera frame, far below what /dev/zero would give

_KINDS = (
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
)


class FileRefused(DenseASPPError, ValueError):
    """A named file that is absent, not a regular file, or too large."""


def kind_of(mode: int) -> str:
    """What a path that is not a regular file is, in words."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def check_regular_file(path: str | Path, what: str) -> os.stat_result:
    """The file's status, or ``FileRefused`` saying why ``path`` cannot be read as ``what``."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise FileRefused(f"{what} {path} does not exist{_relative(path)}") from None
    except OSError as error:
        raise FileRefused(f"{what} {path}: cannot read ({error.strerror or error})") from None
    if not stat.S_ISREG(status.st_mode):
        raise FileRefused(f"{what} {path} is {kind_of(status.st_mode)}, not a regular file")
    return status


def read_bounded(path: str | Path, what: str, max_bytes: int = MAX_SETTINGS_FILE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, refused beyond ``max_bytes``.

    Opened non-blocking and checked on the open descriptor, so a FIFO swapped in after a check
    cannot hang the reader.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileRefused(f"{what} {path} does not exist{_relative(path)}") from None
    except OSError as error:
        raise FileRefused(f"{what} {path}: cannot read ({error.strerror or error})") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise FileRefused(f"{what} {path} is {kind_of(mode)}, not a regular file")
    with os.fdopen(descriptor, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileRefused(f"{what} {path} is larger than {max_bytes} bytes: is it the right file?")
    return data


def _relative(path: str | Path) -> str:
    """Where a relative path was looked for; nothing for an absolute one."""
    return "" if Path(path).is_absolute() else f" (relative to {Path.cwd()})"

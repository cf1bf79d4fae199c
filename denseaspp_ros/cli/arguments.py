"""Option types and checks that several commands share."""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import suppress
from pathlib import Path

from ..atomic import atomic_write
from ..declarations import parse_size
from ..errors import DenseASPPError


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(minimum: int):
    """An argparse type for integers >= ``minimum`` (a zero-iteration benchmark has no timings to report)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` and a file in it, then remove what this made: an unwritable destination fails
    before any work. Permission bits cannot tell (root, read-only mounts, a file where a folder goes)."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder).close()
    except OSError as error:
        raise DenseASPPError(f"{option}: cannot write into {folder}: {error.strerror or error}") from None
    finally:
        for path in made:
            with suppress(OSError):
                path.rmdir()


def write_json(path: Path, document: object) -> None:
    """``document`` as indented JSON, atomically (a report is whole or absent)."""
    text = json.dumps(document, indent=2) + "\n"
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))

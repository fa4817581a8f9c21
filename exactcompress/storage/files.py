"""Local files written atomically: a temp file beside the target, then a rename (or a link, to create only)."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: the end of every temporary file's name (``~`` is never part of a key)
TEMP_SUFFIX = "~tmp"


@contextmanager
def temp_beside(path: Path) -> Iterator[Path]:
    """A new empty file beside ``path`` (parents created; mode from the umask), removed on exit.
    The ``~`` in its name is never part of a key, so listings skip it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name[:64]}.{secrets.token_hex(6)}{TEMP_SUFFIX}")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def probe_writable(folder: Path) -> None:
    """Create and remove a file in ``folder``: raises the OSError of a folder (or file system) that refuses one."""
    with temp_beside(folder / "exactcompress-probe"):
        pass


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists (a broken link counts), else its nearest existing parent."""
    return next(candidate for candidate in (path, *path.parents) if os.path.lexists(candidate))


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(temp)`` on a temp file beside ``path``, then rename it over ``path``."""
    with temp_beside(path) as temp:
        write(temp)
        os.replace(temp, path)


def write_bytes_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())

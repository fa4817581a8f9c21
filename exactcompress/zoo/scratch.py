"""Scratch folders of zoo tasks that a killed worker does not leak.

A task's downloaded model, domain file and outputs live in ``<temp dir>/exactcompress-scratch/<pid>-<random>/``
(the temp dir is the worker's ``TMPDIR``) while it runs and are removed when it ends. A worker killed with
SIGKILL (``kill -9``, the OOM killer) cannot remove its folder, so every new scratch folder first removes the
folders of processes that no longer exist on this machine. A folder whose pid was reused by another process
is kept until that process is gone too: never a live task's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCRATCH_ROOT = "exactcompress-scratch"


def scratch_root() -> Path:
    """``<temp dir>/exactcompress-scratch`` (created, mode 0700)."""
    root = Path(tempfile.gettempdir()) / SCRATCH_ROOT
    root.mkdir(mode=0o700, exist_ok=True)
    return root


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A fresh scratch folder of this process, removed on exit; orphaned folders are removed first."""
    root = scratch_root()
    remove_orphans(root)
    path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphans(root: Path) -> list[Path]:
    """Remove the folders under ``root`` whose process (the pid their name starts with) is gone; returns them."""
    removed = []
    for folder in root.iterdir():
        pid = folder.name.partition("-")[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True

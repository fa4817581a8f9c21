"""Scratch folders of zoo tasks: a dead process's folder is removed by the next one, a live one's never."""

from __future__ import annotations

import os
import subprocess
import sys

from exactcompress.zoo.scratch import SCRATCH_ROOT, remove_orphans, scratch_dir


def test_a_new_scratch_folder_removes_dead_processes_folders_and_keeps_live_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    root = tmp_path / SCRATCH_ROOT
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = root / f"{int(dead.stdout)}-abc"
    (orphan / "out").mkdir(parents=True)
    (orphan / "out" / "model.pt").write_bytes(b"x" * 1000)
    live = root / f"{os.getppid()}-def"  # the test runner's parent: alive
    live.mkdir()
    not_ours = root / "notes"
    not_ours.mkdir()

    with scratch_dir() as scratch:
        assert scratch.parent == root and scratch.name.startswith(f"{os.getpid()}-")
        assert not orphan.exists() and live.is_dir() and not_ours.is_dir()
    assert not scratch.exists()
    assert remove_orphans(root) == []

"""``exactcompress compress`` on a model its loader fails on with an unexpected exception: one line and the exit
code of an internal error, as the pipeline reports one, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

import exactcompress.io
from exactcompress.cli import app
from exactcompress.errors import ExitCode


def test_an_unexpected_loader_exception_is_one_line_and_exit_1(tmp_path: Path, monkeypatch) -> None:
    model = tmp_path / "m.pt"
    torch.save({"0.weight": torch.ones(2, 2)}, model)

    def broken_loader(path):
        raise RuntimeError("Promotion for Float8 Types is not supported,\n  attempted to promote")

    monkeypatch.setattr(exactcompress.io, "load_network", broken_loader)
    result = CliRunner().invoke(app, ["compress", str(model), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == ExitCode.FAILED == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: internal error while loading {model} (RuntimeError: Promotion for Float8 Types is not "
                     "supported, attempted to promote)"], result.output
    assert not (tmp_path / "out").exists()

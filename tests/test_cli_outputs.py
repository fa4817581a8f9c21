"""The command line in this process (``CliRunner``), where a test needs a seam: folders that cannot be written,
jobs on a cluster, what the commands print and their exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from nets import random_net
from typer.testing import CliRunner

from exactcompress.cli import app, job_exit_code

QUICK = ("--quiet", "--verify-samples", "10")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    from exactcompress.io import to_sequential

    path = tmp_path / "a.pt"
    torch.save(to_sequential(random_net(4, 3, [6, 5]), "float64").state_dict(), path)
    return path


@pytest.fixture
def no_analysis(monkeypatch):
    import exactcompress.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("analysed although --out cannot be written")

    monkeypatch.setattr(pipeline, "analyze", never)


@pytest.mark.parametrize("out,message", [
    ("/sys/kernel", "/sys/kernel: cannot be written: Permission denied"),  # sysfs refuses new files, even to root
    ("/sys/exactcompress-out",
     "/sys/exactcompress-out: cannot be written: no file can be created in /sys (Permission denied)"),
])
def test_an_out_that_cannot_be_written_is_refused_before_any_analysis(model_file, no_analysis, out, message):
    result = invoke("compress", str(model_file), "--out", out, "--force", *QUICK)
    assert result.exit_code == 2, result.output
    assert lines(result.output) == [f"error: {message}"]


def test_an_earlier_output_that_cannot_be_written_is_refused_before_any_analysis(tmp_path, model_file, monkeypatch):
    import exactcompress.pipeline as pipeline
    import exactcompress.storage.files as files

    out = tmp_path / "out"
    assert invoke("compress", str(model_file), "--out", str(out), *QUICK).exit_code == 0
    probe = files.probe_writable

    def read_only_out(folder: Path) -> None:
        if folder == out:
            raise PermissionError(13, "Permission denied")
        probe(folder)

    monkeypatch.setattr(files, "probe_writable", read_only_out)
    monkeypatch.setattr(pipeline, "analyze", lambda *args, **kwargs: pytest.fail("analysed"))
    result = invoke("compress", str(model_file), "--out", str(out), *QUICK)
    assert result.exit_code == 2 and lines(result.output) == [f"error: {out}: cannot be written: Permission denied"]


@pytest.mark.parametrize("refused", ["moving the earlier output aside", "moving the new output in"])
def test_a_refused_swap_is_one_line_and_leaves_the_earlier_output_and_no_temporary_folder(tmp_path, model_file,
                                                                                         monkeypatch, refused):
    out = tmp_path / "out"
    assert invoke("compress", str(model_file), "--out", str(out), *QUICK).exit_code == 0
    earlier = {path.name: path.read_bytes() for path in out.iterdir()}
    replace = os.replace

    def refusing_replace(source, target) -> None:
        if Path(source) == out if refused.endswith("aside") else Path(source).name.startswith(".out.new-"):
            raise PermissionError(13, "Permission denied")
        replace(source, target)

    monkeypatch.setattr(os, "replace", refusing_replace)
    result = invoke("compress", str(model_file), "--out", str(out), *QUICK)
    assert result.exit_code == 2, result.output
    assert lines(result.output) == [f"error: {out}: cannot be written: Permission denied"]
    assert {path.name: path.read_bytes() for path in out.iterdir()} == earlier
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.pt", "out"]  # no .out.new-* nor .out.old-*


@pytest.mark.parametrize("command", [["demo"], ["zoo", "digits"]])
def test_an_out_that_is_a_file_is_one_line_and_exit_2(tmp_path, command):
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    result = invoke(*command, "--out", str(a_file))
    assert result.exit_code == 2, result.output
    assert lines(result.output) == [f"error: {a_file}: exists and is not a directory; --out needs a directory for "
                                    f"the {command[-1].replace('digits', 'zoo')}"]
    assert a_file.read_text() == "keep me"


RAY_FAILED = "Job entrypoint command failed with exit code {}, last available logs (truncated to 20,000 chars):\n..."


@pytest.mark.parametrize("status,message,code", [
    ("PENDING", None, 0), ("RUNNING", None, 0), ("SUCCEEDED", None, 0),
    ("FAILED", RAY_FAILED.format(3), 3),  # some models failed
    ("FAILED", RAY_FAILED.format(2), 2),  # a bad spec or input, found on the cluster
    ("FAILED", RAY_FAILED.format(1), 1),
    ("FAILED", RAY_FAILED.format(137), 1),  # killed: not an exit code of this tool
    ("FAILED", "runtime env setup failed", 1),
    ("STOPPED", "Job was intentionally stopped.", 1),
])
def test_a_jobs_status_gives_the_exit_code_of_its_run(status, message, code):
    assert job_exit_code(status, message) == code


@pytest.fixture
def failed_job(monkeypatch):
    """A cluster whose job ``raysubmit_x`` ended FAILED with exit code 3 (some models failed)."""
    from ray.job_submission import JobStatus

    import exactcompress.distributed.submit as submit

    info = submit.JobStatusInfo(submission_id="raysubmit_x", status=JobStatus.FAILED, message=RAY_FAILED.format(3))
    monkeypatch.setattr(submit, "job_status", lambda address, job_id: info)
    monkeypatch.setattr(submit, "job_logs", lambda address, job_id, follow=False: iter(["line 1\n", "line 2\n"]))


@pytest.mark.parametrize("group", ["zoo", "study"])
def test_status_and_followed_logs_of_a_failed_job_exit_with_its_code(failed_job, group):
    status = invoke(group, "status", "raysubmit_x", "--address", "http://head:8265")
    assert status.exit_code == 3, status.output
    assert status.output == ("raysubmit_x: FAILED — Job entrypoint command failed with exit code 3 (its log: "
                             f"exactcompress {group} logs raysubmit_x --address http://head:8265)\n")
    followed = invoke(group, "logs", "raysubmit_x", "--address", "http://head:8265", "--follow")
    assert followed.exit_code == 3 and followed.output == "line 1\nline 2\n"
    assert invoke(group, "logs", "raysubmit_x", "--address", "http://head:8265").exit_code == 0  # not followed


def test_the_submit_hint_is_one_line_however_long(tmp_path, monkeypatch):
    import exactcompress.distributed.submit as submit

    spec = tmp_path / "zoo.yaml"
    spec.write_text("source: models\noutput: out\n")
    monkeypatch.setattr(submit, "submit_zoo_job", lambda *args, **kwargs: "raysubmit_umAyhD91Dqe5jhuC")
    address = "http://a-long-head-node-name.cluster.example.internal:8265"
    result = invoke("zoo", "submit", str(spec), "--address", address)
    assert result.exit_code == 0, result.output
    assert (f"follow it: exactcompress zoo logs raysubmit_umAyhD91Dqe5jhuC --address {address} --follow"
            in result.stderr.splitlines())


def test_schema_manifest_prints_the_manifests_json_schema():
    from exactcompress.schema import Manifest

    schema = json.loads(invoke("schema", "manifest").output)
    assert schema["title"] == "Manifest" and set(schema["properties"]) == {"root", "models"}
    assert "models" in schema["required"]
    Manifest.model_validate({"models": [{"key": "a.pt"}, {"key": "b.pt", "domain": {"lower": 0, "upper": 0.5}}]})

"""The files a zoo spec names (``data``, ``domain: {file: …}``) are checked before any work: a missing one is a bad
spec (one line naming the spec file and the field, exit code 2). A model whose failure stems from such an input is
never reused by a later run whose spec names other inputs, and the reason never names a scratch copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml
from zoo_files import write_good

from exactcompress.distributed.zoo_job import run_zoo_job
from exactcompress.errors import ExitCode, InputError
from exactcompress.schema import ZooJobSpec
from exactcompress.zoo.plan import check_inputs, plan_tasks
from exactcompress.zoo.task import run_model_task

SCRIPT = shutil.which("exactcompress", path=str(Path(sys.executable).parent))


@pytest.fixture
def zoo(tmp_path) -> Path:
    write_good(tmp_path / "zoo" / "a.pt", seed=1)
    write_good(tmp_path / "zoo" / "b.pt", seed=2)
    return tmp_path / "zoo"


@pytest.mark.parametrize("field, fields", [
    ("data", {"data": "missing_data.npy"}),
    ("domain.file", {"domain": {"file": "missing_dom.npy"}}),
    ("domain.file", {"domain": {"file": "/nowhere/missing_dom.npy"}}),
])
def test_a_missing_data_or_domain_file_stops_the_job_before_any_work(zoo, tmp_path, field, fields):
    spec = ZooJobSpec(source=str(zoo), output=str(tmp_path / "out"), **fields)
    with pytest.raises(InputError) as raised:
        run_zoo_job(spec, spec_file="zoo.yaml")
    message = str(raised.value)
    missing = Path(fields.get("data") or fields["domain"]["file"]).name
    assert message.startswith(f"zoo.yaml: field '{field}': ") and missing in message and "\n" not in message
    assert raised.value.exit_code == ExitCode.USAGE
    assert not ray.is_initialized() and not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("output, reason", [
    ("afile", "{output} exists and is not a directory"),
    ("afile/results", "{output} cannot be created: {tmp}/afile is not a directory"),
    ("/sys/exactcompress-out", "{output} cannot be written: "),  # sysfs refuses new files, even to root
])
def test_an_output_that_cannot_be_written_stops_the_job_before_any_work(zoo, tmp_path, output, reason):
    if output.startswith("/sys") and not os.path.isdir("/sys/kernel"):
        pytest.skip("no sysfs here")
    (tmp_path / "afile").write_text("not a folder")
    output = str(tmp_path / output)  # an absolute path stays itself
    with pytest.raises(InputError) as raised:
        run_zoo_job(ZooJobSpec(source=str(zoo), output=output), spec_file="zoo.yaml")
    expected = "zoo.yaml: field 'output': " + reason.format(output=output, tmp=tmp_path)
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value), str(raised.value)
    assert raised.value.exit_code == ExitCode.USAGE and not ray.is_initialized()


def test_an_output_folder_yet_to_be_created_passes(zoo, tmp_path):
    spec = ZooJobSpec(source=str(zoo), output=str(tmp_path / "new" / "out"))
    check_inputs(spec, plan_tasks(spec), "zoo.yaml")
    assert os.listdir(tmp_path) == ["zoo"]  # nothing created, nothing left behind


def test_files_that_exist_pass_and_relative_keys_resolve_from_the_source(zoo, tmp_path):
    np.save(zoo / "data.npy", np.zeros((3, 4)))
    np.save(tmp_path / "dom.npy", np.array([[0.0] * 4, [1.0] * 4]))
    spec = ZooJobSpec(source=str(zoo), output=str(tmp_path / "out"), data="data.npy",
                      domain={"file": str(tmp_path / "dom.npy")})
    check_inputs(spec, plan_tasks(spec), "zoo.yaml")
    with pytest.raises(InputError, match=r"field 'data': .*/zoo/dom.npy does not exist \(a relative key"):
        moved = spec.model_copy(update={"data": "dom.npy"})  # beside the spec, not in the source
        check_inputs(moved, plan_tasks(moved), "zoo.yaml")


def test_a_manifest_entrys_own_missing_domain_is_left_to_that_model(zoo, tmp_path):
    """A manifest entry's domain file is that model's input: its task fails alone, the rest go on."""
    manifest = zoo / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"models": [{"key": "a.pt"}, {"key": "b.pt", "domain": {"file": "gone.npy"}}]}))
    spec = ZooJobSpec(source={"manifest": str(manifest)}, output=str(tmp_path / "out"))
    check_inputs(spec, plan_tasks(spec), "zoo.yaml")


def test_files_are_looked_for_in_the_storage_the_spec_addresses(tmp_path, s3_storage):
    source = s3_storage.child("zoo")
    source.put_bytes("a.pt", b"PK not really a model")  # planning reads names, not bytes
    source.put_bytes("data.npy", b"x")
    spec = ZooJobSpec(source=source.url(), output=s3_storage.url("out"), data="data.npy",
                      domain={"file": s3_storage.url("domains/dom.npy")})
    domain = s3_storage.url("domains/dom.npy")
    with pytest.raises(InputError, match=rf"zoo.yaml: field 'domain.file': {domain} does not exist$"):
        check_inputs(spec, plan_tasks(spec), "zoo.yaml")
    s3_storage.put_bytes("domains/dom.npy", b"x")
    check_inputs(spec, plan_tasks(spec), "zoo.yaml")
    with pytest.raises(InputError, match=rf"field 'data': {source.url('gone.npy')} does not exist \(a relative key"):
        check_inputs(spec.model_copy(update={"data": "gone.npy"}), plan_tasks(spec), "zoo.yaml")


def test_the_cli_refuses_a_missing_data_file_with_one_line_and_exit_2(zoo, tmp_path):
    spec = tmp_path / "zoo.yaml"
    spec.write_text(f"source: {zoo}\noutput: {tmp_path / 'out'}\ndata: missing_data.npy\n")
    result = subprocess.run([SCRIPT, "zoo", "run", str(spec), "--quiet"], capture_output=True, text=True, timeout=120)
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "field 'data'" in lines[0] and "missing_data.npy does not exist" in lines[0], lines
    assert not (tmp_path / "out" / "runs").exists()


def _run_all(spec: ZooJobSpec):
    return [run_model_task(task) for task in plan_tasks(spec)]


def test_a_failure_from_one_specs_inputs_is_not_reused_by_a_spec_naming_others(zoo, tmp_path):
    """Run 1 names a missing data file, run 2 (a changed spec) a missing domain file: run 2's rows say why run 2
    failed, not why run 1 did. (The tasks run directly here: a file deleted after the driver's check.)"""
    output = str(tmp_path / "out")
    first = _run_all(ZooJobSpec(source=str(zoo), output=output, data="missing_data.npy"))
    assert all(o.analysed and "missing_data.npy" in o.result.error for o in first)

    second = _run_all(ZooJobSpec(source=str(zoo), output=output, domain={"file": "missing_dom.npy"}))
    assert all(o.analysed for o in second), [o.result.error for o in second]
    assert all("missing_dom.npy" in o.result.error and "missing_data" not in o.result.error for o in second)

    again = _run_all(ZooJobSpec(source=str(zoo), output=output, data="missing_data.npy"))
    assert [o.result for o in again] == [o.result for o in first] and not any(o.analysed for o in again)


def test_a_corrupt_domain_files_failure_names_it_not_a_scratch_copy_and_is_reused(zoo, tmp_path):
    (zoo / "bad.npy").write_bytes(b"not an array")
    spec = ZooJobSpec(source=str(zoo), output=str(tmp_path / "out"), domain={"file": "bad.npy"})
    first = _run_all(spec)
    assert all(o.analysed and o.result.error.startswith(f"{zoo / 'bad.npy'}: ") for o in first)
    assert not any("scratch" in o.result.error for o in first)
    assert not any(o.analysed for o in _run_all(spec))  # the same failure on the same inputs is reused


class _RayWouldStart(Exception):
    """Raised in place of starting Ray: the run got past every up-front check."""


@pytest.fixture
def no_ray(monkeypatch):
    """``connect`` (the first thing that starts Ray) raises ``_RayWouldStart`` instead."""
    import exactcompress.distributed.zoo_job as zoo_job

    def refuse(*args, **kwargs):
        raise _RayWouldStart

    monkeypatch.setattr(zoo_job, "connect", refuse)


def test_an_s3_output_bucket_that_does_not_exist_stops_the_job_before_any_work(zoo, s3_storage, s3_server, no_ray):
    spec = ZooJobSpec(source=str(zoo), output="s3://reslts/zoo")
    with pytest.raises(InputError) as raised:
        run_zoo_job(spec, spec_file="zoo.yaml")
    assert str(raised.value) == f"zoo.yaml: field 'output': bucket 'reslts' does not exist at {s3_server.endpoint.url}"
    assert raised.value.exit_code == ExitCode.USAGE
    buckets = [bucket["Name"] for bucket in s3_server.endpoint.client().list_buckets()["Buckets"]]
    assert "reslts" not in buckets  # the check created nothing


def test_an_existing_s3_output_bucket_passes_and_nothing_is_left_in_it(zoo, s3_storage, s3_server, no_ray):
    with pytest.raises(_RayWouldStart):  # every check passed: the next step would start Ray
        run_zoo_job(ZooJobSpec(source=str(zoo), output=s3_storage.url("results")), spec_file="zoo.yaml")
    # listed raw: list_keys would hide a probe left behind (its key holds a "~")
    assert s3_server.endpoint.client().list_objects_v2(Bucket=s3_storage.bucket).get("Contents", []) == []


@pytest.mark.parametrize("credentials, reason", [
    ("a wrong secret", "bucket {bucket!r} is not accessible with these credentials at "),
    ("read-only", "{output} cannot be written: the job writes its results there, but a PUT was refused"),
])
def test_an_s3_output_these_credentials_cannot_write_stops_the_job(zoo, s3_storage, reader_endpoint, use_s3_endpoint,
                                                                  monkeypatch, no_ray, credentials, reason):
    if credentials == "read-only":
        use_s3_endpoint(reader_endpoint)
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + os.environ["AWS_SECRET_ACCESS_KEY"][6:])
    output = s3_storage.url("results")
    with pytest.raises(InputError) as raised:
        run_zoo_job(ZooJobSpec(source=str(zoo), output=output), spec_file="zoo.yaml")
    message = str(raised.value)
    expected = reason.format(bucket=s3_storage.bucket, output=output)
    assert message.startswith(f"zoo.yaml: field 'output': {expected}") and "\n" not in message, message
    assert raised.value.exit_code == ExitCode.USAGE


def test_an_unreachable_s3_output_stops_the_job_naming_the_field(zoo, monkeypatch, no_ray):
    import socket

    import exactcompress.storage.s3 as s3
    from exactcompress.errors import StorageUnavailable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "y"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(s3, "CONNECTION_RETRY_SECONDS", 1.0)
    with pytest.raises(StorageUnavailable) as raised:
        run_zoo_job(ZooJobSpec(source=str(zoo), output="s3://results/zoo"), spec_file="zoo.yaml")
    message = str(raised.value)
    assert message.startswith("zoo.yaml: field 'output': s3://results/zoo: cannot reach the storage server at "
                              f"http://127.0.0.1:{port}") and "\n" not in message, message
    assert raised.value.exit_code == ExitCode.USAGE


def test_the_cli_refuses_a_missing_s3_output_bucket_with_one_line_and_exit_2(zoo, tmp_path, s3_server):
    spec = tmp_path / "zoo.yaml"
    spec.write_text(f"source: {zoo}\noutput: s3://reslts/zoo\n")
    unrelated = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
    environment = {**{k: v for k, v in os.environ.items() if k not in unrelated}, **s3_server.endpoint.env()}
    result = subprocess.run([SCRIPT, "zoo", "run", str(spec), "--quiet"], capture_output=True, text=True, timeout=120,
                            env=environment)
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: {spec}: field 'output': bucket 'reslts' does not exist at {s3_server.endpoint.url}"], lines

"""The zoo job under faults: a worker node lost mid-job, the S3 server restarted mid-job, the job killed
and started again, and the CLI's exit codes. Real Ray (a multi-node ``Cluster`` or an embedded local Ray),
real SeaweedFS, real SCIP; each test starts and stops its own Ray.

The slow models (``write_slow``) take about ``time_limit_s`` + 0.5 s each, so faults land while tasks run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
import ray
import yaml
from ray.cluster_utils import Cluster
from zoo_files import write_good, write_mixed_zoo, write_slow

from exactcompress.distributed.zoo_job import connect, run_zoo_job
from exactcompress.errors import StorageUnavailable
from exactcompress.schema import CompressionReport, ZooJobSpec, ZooSummary
from exactcompress.storage import Storage, open_storage
from exactcompress.storage.local_s3 import LocalS3Server

pytestmark = pytest.mark.slow

SCRIPT = shutil.which("exactcompress", path=str(Path(sys.executable).parent))
SUMMARY_FILES = {"summary.json", "summary.md", "summary.html"}
SLOW_SPEC = {"method": "per-neuron", "time_limit_s": 3.0, "fallback_tasks": 1}


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """A short private RAY_TMPDIR (Ray's unix socket paths under it must stay under 107 bytes)."""
    assert not ray.is_initialized(), "an earlier test left Ray running"
    directory = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(directory))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.05)


def processes_with_env(name: str, value: str) -> dict[int, str]:
    """{pid: command line} of this user's live processes started with ``name=value`` in their environment."""
    marker = f"{name}={value}".encode() + b"\0"
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found[int(entry.name)] = (entry / "cmdline").read_text("utf-8", "replace").replace("\0", " ")
            except OSError:
                continue  # gone, or not ours
    return found


def kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def add_node(cluster: Cluster, scratch: Path):
    """A 1-CPU worker node whose processes make their temp folders (a model's scratch) under ``scratch``."""
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(scratch))
        return cluster.add_node(num_cpus=1)


def committed_reports(output: Storage, incomplete_allowed: bool = False) -> dict[str, CompressionReport]:
    """{report URL: validated report} for every ``runs/<sha>/<run>/report.json`` under ``output``; also checks
    that every object there belongs to a run folder holding a report, or is a summary file or the ledger of
    incremental runs. ``incomplete_allowed`` (after a fault): a run folder may also hold outputs without its
    report (a task stopped between its uploads and its report, which is written last: not committed)."""
    keys = output.list_keys()
    reports = {key for key in keys if key.startswith("runs/") and key.endswith("/report.json")}
    run_folders = {key.rsplit("/", 1)[0] for key in reports}
    if incomplete_allowed:
        run_folders |= {key.rsplit("/", 1)[0] for key in keys if key.startswith("runs/") and key.count("/") == 3}
    for key in keys:
        parts = key.split("/")
        assert key in SUMMARY_FILES or key == "ledger.json" or (len(parts) == 3 and parts[0] == "ledger") or (len(parts) == 1 and key.startswith("summary_") and key.endswith(".png")) or (
            len(parts) == 4 and parts[0] == "runs" and "/".join(parts[:3]) in run_folders), f"stray object {key}"
    return {output.url(key): CompressionReport.model_validate_json(output.get_bytes(key)) for key in sorted(reports)}


def assert_every_model_done_once(output: Storage, summary: ZooSummary, source_urls: set[str]) -> None:
    """One validated report per model, the summary's rows are exactly those reports, every model counted once,
    and no model failed."""
    reports = committed_reports(output)
    assert len(reports) == len(source_urls)
    rows = summary.models
    assert sorted(row.source_key for row in rows) == sorted(source_urls)
    assert {row.report_key for row in rows} == set(reports)
    for row in rows:
        assert row.status in ("exact", "partial"), (row.source_key, row.error)
        assert reports[row.report_key].status == row.status and reports[row.report_key].model_path == row.source_key
    totals = summary.totals
    assert totals.models == len(source_urls) == totals.exact + totals.partial and totals.failed == 0
    assert ZooSummary.model_validate_json(output.get_bytes("summary.json")) == summary


# ------------------------------------------------------------------------------------------ Ray / S3 faults


def slow_zoo(root: Storage, tmp_path: Path, count: int) -> ZooJobSpec:
    """``count`` slow models uploaded under ``root``/zoo, and the spec compressing them into ``root``/out."""
    root.ensure_bucket()
    for seed in range(count):
        root.upload(write_slow(tmp_path / f"zoo/net{seed}.pt", seed), f"zoo/net{seed}.pt")
    return ZooJobSpec(source=root.url("zoo"), output=root.url("out"), **SLOW_SPEC)


def start_until_first_report(pool: ThreadPoolExecutor, spec: ZooJobSpec):
    """The job started in ``pool``, once its first model's report is committed (or it ended); its future."""
    output = open_storage(spec.output)
    job = pool.submit(run_zoo_job, spec)
    wait_for(lambda: any(key.endswith("/report.json") for key in output.list_keys()) or job.done(), 90,
             "the first report")
    return job


def test_a_worker_node_lost_mid_job_is_retried_elsewhere(tmp_path, ray_tmpdir):
    """Head with no CPUs and two 1-CPU worker nodes, so every model runs on a worker; the node running a
    model is killed (raylet and its workers, as when a machine dies) and a fresh node joins."""
    for seed in range(6):
        write_slow(tmp_path / f"zoo/net{seed}.pt", seed)
    spec = ZooJobSpec(source=str(tmp_path / "zoo"), output=str(tmp_path / "out"), **SLOW_SPEC)
    scratch = {name: tmp_path / f"node-{name}" for name in ("first", "victim", "fresh")}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        add_node(cluster, scratch["first"])
        victim = add_node(cluster, scratch["victim"])
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(run_zoo_job, spec)
            wait_for(lambda: any(scratch["victim"].glob("exactcompress-*")) or job.done(), 90, "a model on the victim")
            time.sleep(0.5)
            cluster.remove_node(victim, allow_graceful=False)
            kill_all(processes_with_env("TMPDIR", str(scratch["victim"])))
            add_node(cluster, scratch["fresh"])
            run = job.result(timeout=120)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert list(scratch["victim"].glob("exactcompress-*")), "no model was cut off on the lost node"
    failed = [(model.source_key, model.error) for model in run.summary.models if model.status == "failed"]
    assert run.exit_code == 0 and run.reused == 0, f"failed models: {failed}"
    models = {str(path) for path in (tmp_path / "zoo").iterdir()}
    assert_every_model_done_once(open_storage(spec.output), run.summary, models)


def serves_a_round_trip(storage: Storage) -> bool:
    """Whether ``storage`` stores and returns an object now (a restarted server may answer health checks
    before its filer serves writes)."""
    try:
        storage.put_bytes("probe/round-trip", b"ok")
        return storage.get_bytes("probe/round-trip") == b"ok"
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False


@contextlib.contextmanager
def slow_zoo_on_own_s3(tmp_path: Path, use_s3_endpoint, prefix: str, count: int):
    """A local S3 server of this test's own (started before Ray, whose workers inherit the endpoint),
    ``slow_zoo`` under ``prefix`` on it and an embedded 2-CPU Ray; yields (server, root, spec). Ray and the
    server are stopped on exit."""
    server = LocalS3Server(tmp_path / "s3")
    use_s3_endpoint(server.start())
    try:
        root = open_storage(prefix)
        spec = slow_zoo(root, tmp_path, count)
        connect(None, num_cpus=2)
        yield server, root, spec
    finally:
        ray.shutdown()
        server.stop()


def test_the_s3_server_restarted_mid_job(tmp_path, ray_tmpdir, use_s3_endpoint):
    """The server goes away for longer than one model takes, so commits and downloads meet the outage."""
    with slow_zoo_on_own_s3(tmp_path, use_s3_endpoint, "s3://faults/job", 6) as (server, root, spec):
        with ThreadPoolExecutor(1) as pool:
            job = start_until_first_report(pool, spec)
            server.stop()
            time.sleep(SLOW_SPEC["time_limit_s"] + 1)
            server.restart()
            run = job.result(timeout=120)
        assert run.exit_code == 0 and run.reused == 0
        assert_every_model_done_once(open_storage(spec.output), run.summary,
                                     {root.url(f"zoo/net{seed}.pt") for seed in range(6)})


def test_a_storage_outage_longer_than_the_retries_stops_the_job_fast_and_a_rerun_resumes(tmp_path, ray_tmpdir,
                                                                                         use_s3_endpoint, monkeypatch):
    """The server goes away for good: the job stops with one line soon after (not after every task's retries),
    what was committed stays valid, and with the server back a new run resumes without redoing it."""
    import exactcompress.storage.s3 as s3

    retry_s = 4.0
    monkeypatch.setenv("EXACTCOMPRESS_STORAGE_RETRY_S", str(retry_s))  # Ray's workers inherit it
    monkeypatch.setattr(s3, "CONNECTION_RETRY_SECONDS", retry_s)  # this process imported it already
    with slow_zoo_on_own_s3(tmp_path, use_s3_endpoint, "s3://outage/job", 8) as (server, root, spec):
        output = open_storage(spec.output)
        with ThreadPoolExecutor(1) as pool:
            job = start_until_first_report(pool, spec)
            server.stop()
            stopped = time.monotonic()
            with pytest.raises(StorageUnavailable, match="the job stopped: .*cannot reach the storage server") as caught:
                job.result(timeout=120)
            assert time.monotonic() - stopped < 8 * retry_s + SLOW_SPEC["time_limit_s"] + 30
        assert "\n" not in str(caught.value) and "run it again to resume" in str(caught.value)
        ray.shutdown()
        server.restart()
        wait_for(lambda: serves_a_round_trip(root), 30, "the restarted server to store and return an object")
        connect(None, num_cpus=2)
        committed = committed_reports(output, incomplete_allowed=True)
        assert committed  # what was done before the outage is intact (a task cut mid-upload left no report)
        run = run_zoo_job(spec)
        assert run.exit_code == 0 and run.reused >= len(committed), [
            (row.source_key, row.error) for row in run.summary.models if row.status == "failed"]
        assert_every_model_done_once(output, run.summary, {root.url(f"zoo/net{seed}.pt") for seed in range(8)})


# -------------------------------------------------------------------------------------------- the CLI


def zoo_run(spec: Path, env: dict[str, str], timeout: float = 180, extra: tuple[str, ...] | list[str] = ()
            ) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, "zoo", "run", str(spec), *extra, "--num-cpus", "2", "--quiet"], env=env,
                          capture_output=True, text=True, timeout=timeout, start_new_session=True)


def write_spec(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


def test_a_killed_job_started_again_reuses_what_was_committed(tmp_path, ray_tmpdir):
    for index in range(2):
        write_good(tmp_path / f"zoo/a_fast{index}.pt", seed=index)
        write_slow(tmp_path / f"zoo/b_slow{index}.pt", seed=index)
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "spec.yaml", source=str(tmp_path / "zoo"), output=f"file://{out}", **SLOW_SPEC)
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}
    first = subprocess.Popen([SCRIPT, "zoo", "run", str(spec), "--num-cpus", "2", "--quiet"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: any(out.glob("runs/*/*/report.json")) or first.poll() is not None, 90, "the first report")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (out / "summary.json").exists(), "the job had finished before it was killed"
    survivors = processes_with_env("RAY_TMPDIR", str(ray_tmpdir))
    kill_all(survivors)  # Ray workers have process groups of their own (they would exit on seeing the raylet gone)
    assert not [line for line in survivors.values() if "raylet" in line or "gcs_server" in line], survivors

    again = zoo_run(spec, env)

    assert again.returncode == 0, again.stderr
    reused = next(line for line in again.stdout.splitlines() if "models reused from earlier runs" in line)
    assert int(reused.split()[0]) >= 1 and " of 4 models" in reused
    summary = ZooSummary.model_validate_json((out / "summary.json").read_bytes())
    assert_every_model_done_once(open_storage(str(out)), summary, {str(path) for path in (tmp_path / "zoo").iterdir()})
    assert not processes_with_env("RAY_TMPDIR", str(ray_tmpdir))


def test_a_killed_incremental_run_leaves_no_scratch_and_its_leases_are_reported_then_taken_over(tmp_path, ray_tmpdir):
    for index in range(2):
        write_slow(tmp_path / f"zoo/slow{index}.pt", seed=index)
    out, temp = tmp_path / "out", tmp_path / "tmp"
    temp.mkdir()
    spec = write_spec(tmp_path / "spec.yaml", source=str(tmp_path / "zoo"), output=f"file://{out}", **SLOW_SPEC)
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir), "TMPDIR": str(temp)}  # workers' scratch goes under temp
    scratch = temp / "exactcompress-scratch"
    first = subprocess.Popen([SCRIPT, "zoo", "run", str(spec), "--incremental", "--num-cpus", "2", "--quiet"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: (any(out.glob("leases/*/*.json")) and scratch.is_dir() and any(scratch.iterdir()))
                 or first.poll() is not None, 90, "a model under lease")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        kill_all(processes_with_env("RAY_TMPDIR", str(ray_tmpdir)))
    leaked = set(scratch.iterdir())
    assert leaked and any(out.glob("leases/*/*.json")), "the run had finished its models before it was killed"

    waiting = zoo_run(spec, env, extra=["--incremental"])

    assert waiting.returncode == 0, waiting.stderr
    assert "in progress in another run" in waiting.stdout and "--take-over-leases" in waiting.stdout
    held = ZooSummary.model_validate_json((out / "summary.json").read_bytes()).leases_elsewhere
    assert held and all(lease.expires_at > time.time() + 60 for lease in held)
    assert not set(scratch.iterdir()) & leaked  # the killed workers' scratch is gone, and no new one stays
    assert list(scratch.iterdir()) == []

    taken = zoo_run(spec, env, extra=["--incremental", "--take-over-leases"])

    assert taken.returncode == 0, taken.stderr
    assert "in progress in another run" not in taken.stdout
    summary = ZooSummary.model_validate_json((out / "summary.json").read_bytes())
    assert_every_model_done_once(open_storage(str(out)), summary, {str(path) for path in (tmp_path / "zoo").iterdir()})
    assert not list(out.glob("leases/*/*.json"))
    plain = zoo_run(spec, env, extra=["--take-over-leases"])
    assert plain.returncode == 2 and "only applies with --incremental" in plain.stderr


def test_cli_partial_failure_exits_3_with_every_reason(tmp_path, ray_tmpdir):
    expected = write_mixed_zoo(tmp_path / "zoo")
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "spec.yaml", source=str(tmp_path / "zoo"), output=str(out), max_model_bytes=20_000,
                      time_limit_s=60)

    result = zoo_run(spec, {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)})

    assert result.returncode == 3, result.stderr
    assert "partial failure" in result.stderr and "4 of 7 models failed" in result.stderr
    summary = ZooSummary.model_validate_json((out / "summary.json").read_bytes())
    rows = {row.source_key.removeprefix(f"{tmp_path / 'zoo'}/"): row for row in summary.models}
    assert set(rows) == set(expected) and len(committed_reports(open_storage(str(out)))) == len(expected)
    for key, want in expected.items():
        status, _, reason = want.partition(":")
        assert rows[key].status == status and reason in (rows[key].error or ""), (key, rows[key].error)


@pytest.mark.parametrize("case", ["misspelt field", "key leaving the manifest's folder"])
def test_cli_bad_spec_exits_2_naming_the_problem_and_writes_nothing(tmp_path, ray_tmpdir, case):
    write_good(tmp_path / "zoo/a.pt", seed=1)
    out = tmp_path / "out"
    if case == "misspelt field":
        spec = write_spec(tmp_path / "spec.yaml", source=str(tmp_path / "zoo"), output=str(out), metod="milp")
        names = [str(spec), "field 'metod'"]
    else:
        (tmp_path / "zoo/manifest.yaml").write_text(yaml.safe_dump({"models": [{"key": "a.pt"}, {"key": "../x.pt"}]}))
        spec = write_spec(tmp_path / "spec.yaml", source={"manifest": str(tmp_path / "zoo/manifest.yaml")},
                          output=str(out))
        names = ["'../x.pt'", "'..' segments are not allowed"]

    result = zoo_run(spec, {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}, timeout=60)

    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error:"), message
    for name in names:
        assert name in message, message
    assert not out.exists()
    assert not processes_with_env("RAY_TMPDIR", str(ray_tmpdir))  # no Ray was started


@pytest.mark.slow
def test_sigterm_stops_a_zoo_run_in_one_line_and_leaves_no_ray_process(tmp_path, ray_tmpdir):
    """ray.init installed a SIGTERM handler that printed a stack dump and exited 1; a scheduler's stop is now the
    CLI's clean one: 'terminated', status 143, the embedded Ray shut down, and a rerun resumes."""
    write_slow(tmp_path / "zoo/slow.pt", seed=0)
    out = tmp_path / "out"
    spec = write_spec(tmp_path / "spec.yaml", source=str(tmp_path / "zoo"), output=str(out),
                      **{**SLOW_SPEC, "time_limit_s": 120.0})
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir)}
    job = subprocess.Popen([SCRIPT, "zoo", "run", str(spec), "--num-cpus", "1", "--quiet"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: any("raylet" in line for line in processes_with_env("RAY_TMPDIR", str(ray_tmpdir)).values()),
                 90, "the job's Ray")
        time.sleep(5)  # the model's task under way
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 143 and stderr.strip().splitlines()[-1] == "terminated", stderr[-3000:]
    assert "SIGTERM received" not in stderr
    wait_for(lambda: not processes_with_env("RAY_TMPDIR", str(ray_tmpdir)), 30, "Ray's processes to end")

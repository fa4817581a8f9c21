"""A tiny Ray actor that counts started model tasks, so the driver can show how many are running, and hears
from a task that cannot reach the storage, so the driver can check it at once.

Its own module, importing only Ray: the actor's worker process does not pay for torch and SCIP imports.
"""

from __future__ import annotations

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Keys of the model tasks that have started (a retried task counts once)."""

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.outage: str | None = None

    def start(self, key: str) -> None:
        self.started.add(key)

    def count(self) -> int:
        return len(self.started)

    def report_outage(self, reason: str | None) -> None:
        """A task could not reach the storage (``reason``), or the driver found it reachable again (None)."""
        self.outage = reason

    def storage_outage(self) -> str | None:
        return self.outage

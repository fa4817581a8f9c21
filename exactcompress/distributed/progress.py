"""A tiny Ray actor that counts started model tasks, so the driver can show how many are running.

Its own module, importing only Ray: the actor's worker process does not pay for torch and SCIP imports.
"""

from __future__ import annotations

import ray


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Keys of the model tasks that have started (a retried task counts once)."""

    def __init__(self) -> None:
        self.started: set[str] = set()

    def start(self, key: str) -> None:
        self.started.add(key)

    def count(self) -> int:
        return len(self.started)

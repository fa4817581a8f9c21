"""The zoo job on Ray: one task per model, each pulling its model from storage and writing its outputs
itself (the driver passes keys, never bytes); per-neuron fallback solves fan out as further Ray tasks;
the driver shows live progress and writes the summary last.

Where it runs: ``ray.init(address="local")`` (embedded, the default), or ``address`` for an existing
cluster (``ray://…`` or ``HOST:PORT``). Task retries (``spec.retries``) cover system failures only — a
lost worker or node, or storage still unreachable after the client's own retries; a bad model is not an
exception, it commits a ``failed`` report once.

Exit codes of ``exactcompress zoo run``: 0 every model exact or partial; 3 some models failed (partial
failure); 2 a bad spec (nothing ran).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import ray
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from exactcompress.batch import TaskOutcome, failed_result, plan_tasks, run_model_task, summarize, write_summary
from exactcompress.schema import ModelTask, ZooJobSpec, ZooModelResult, ZooSummary
from exactcompress.storage import open_storage
from jobs.progress import ProgressBoard

EXIT_OK = 0
EXIT_PARTIAL_FAILURE = 3
POLL_SECONDS = 0.5
#: storage failures that outlived the client's own retries: the task is retried like a lost worker
STORAGE_FAILURES = (ConnectionError, HTTPClientError, ClientError)


@dataclass(frozen=True)
class ZooRun:
    """What one run of the job did: the summary, where its HTML is, and the run's own figures."""

    summary: ZooSummary
    summary_html: str
    wall_seconds: float
    reused: int

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL_FAILURE if self.summary.totals.failed else EXIT_OK


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


def _compress_task(task: ModelTask, board) -> TaskOutcome:
    board.start.remote(task.key)
    return run_model_task(task, parallel_map=ray_parallel_map)


def _reason(error: ray.exceptions.RayError) -> str:
    """One line: the exception raised inside the task, or the system failure."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {' '.join(str(cause).split())}"[:400]


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address`` or start an embedded local Ray (dashboard off, quiet); no-op if already connected."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        return
    os.environ.setdefault("RAY_TMPDIR", tempfile.gettempdir())
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")


def run_zoo_job(spec: ZooJobSpec, *, address: str | None = None, num_cpus: int | None = None,
                console: Console | None = None) -> ZooRun:
    """Compress every model of ``spec`` on Ray and write ``summary.json`` last at the output prefix.

    Raises InputError before any work if the source is empty or a key is unsafe. ``console``: where the
    progress bar goes (None: no bar).
    """
    started = time.monotonic()
    tasks = plan_tasks(spec)
    connect(address, num_cpus)
    # The board lives on the driver's node, so losing a worker node never takes the job's display with it.
    board = ProgressBoard.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ).remote()
    remote = ray.remote(_compress_task).options(num_cpus=spec.cpus_per_task, max_retries=spec.retries,
                                                retry_exceptions=list(STORAGE_FAILURES))
    pending = {remote.remote(task, board): task for task in tasks}
    results: list[ZooModelResult] = []
    reused = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=console is None, transient=False) as bar:
        progress = bar.add_task("compressing", total=len(tasks))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            done = ray.wait(list(pending), num_returns=len(pending), timeout=0)[0] if ready else []
            for ref in done:
                task = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as error:  # retries exhausted, or storage still unreachable
                    outcome = TaskOutcome(failed_result(task, f"task failed: {_reason(error)}"), True)
                results.append(outcome.result)
                reused += not outcome.analysed
            failed = sum(result.status == "failed" for result in results)
            running = max(0, ray.get(board.count.remote()) - len(results))
            bar.update(progress, completed=len(results),
                       description=f"done {len(results) - failed} · failed {failed} · running {running}")
    ray.kill(board)
    summary = summarize(spec, results)
    html = write_summary(open_storage(spec.output), summary)
    return ZooRun(summary=summary, summary_html=html, wall_seconds=time.monotonic() - started, reused=reused)

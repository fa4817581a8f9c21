"""The zoo job on Ray: one task per model, each pulling its model from storage and writing its outputs
itself (the driver passes keys, never bytes); per-neuron fallback solves fan out as further Ray tasks;
the driver shows live progress and writes the summary last.

Where it runs: ``ray.init(address="local")`` (embedded, the default), or ``address`` for an existing
cluster (``ray://…`` or ``HOST:PORT``). Task retries (``spec.retries``) cover system failures only — a
lost worker or node, or storage still unreachable after the client's own retries; a bad model is not an
exception, it commits a ``failed`` report once.

Incremental runs (``incremental=True``, ``zoo run --incremental``) skip the models that the ledger records as
done for their current source version, without downloading them (``zoo.incremental``), take a lease
on each model before analysing it, so concurrent runs never both analyse one (``zoo.leases``), record
what they finish (``zoo.ledger``) and rewrite ``ledger.json`` before the summary. The summary keeps
every model: skipped ones with their committed reports; models another run holds are listed in
``in_progress_elsewhere`` (not failures).

Exit codes of ``exactcompress zoo run``: 0 every model exact or partial (or in progress elsewhere); 3 some models
failed (partial failure); 2 a bad spec (nothing ran).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import ray
from rich.console import Console

from ..errors import ExitCode, StorageError, StorageUnavailable
from ..schema import ModelTask, ZooJobSpec, ZooModelResult, ZooSummary
from ..storage import open_storage
from ..zoo.incremental import plan_incremental
from ..zoo.leases import LeaseTerms
from ..zoo.ledger import consolidate
from ..zoo.plan import check_inputs, plan_tasks
from ..zoo.summary import SUMMARY, domain_overrides, failed_result, summarize, write_summary
from ..zoo.task import TaskOutcome, run_model_task
from .cluster import check_cpus, connect, ray_parallel_map
from .gather import driver_board, gather

#: storage failures that outlived the client's own retries: the task is retried like a lost worker
STORAGE_FAILURES = (StorageError,)


@dataclass(frozen=True)
class ZooRun:
    """What one run of the job did: the summary, where its HTML is, and the run's own figures. ``reused``
    counts models whose committed report was reused; ``unchanged``, those of them an incremental run skipped
    by the ledger without downloading."""

    summary: ZooSummary
    summary_html: str
    wall_seconds: float
    reused: int
    unchanged: int = 0

    @property
    def analysed(self) -> int:
        """Models this run analysed (or whose task failed)."""
        return self.summary.totals.models - self.reused

    @property
    def exit_code(self) -> int:
        return ExitCode.PARTIAL_FAILURE if self.summary.totals.failed else ExitCode.OK


def _compress_task(task: ModelTask, board, lease: LeaseTerms | None) -> TaskOutcome:
    board.start.remote(task.key)
    try:
        return run_model_task(task, parallel_map=ray_parallel_map, lease=lease)
    except StorageUnavailable as error:  # the driver checks the storage itself and stops the job if it is down
        board.report_outage.remote(str(error))
        raise


def _storage_down(output: str) -> bool:
    """Whether the job's output storage stays unreachable through the client's retry window."""
    try:
        open_storage(output).exists(SUMMARY)
        return False
    except StorageUnavailable:
        return True


def _describe(outcome: TaskOutcome) -> str:
    """One model's outcome for a log line: its key, status and seconds (or whose lease kept it)."""
    if outcome.result is None:  # an incremental run left it to the run that holds its lease
        return f"{outcome.elsewhere.source_key}: in progress in another run"
    row = outcome.result
    what = f"{row.status} in {row.seconds:.1f} s" if outcome.analysed else f"{row.status} (reused)"
    return f"{row.source_key}: {what}" + (f" ({row.error})" if row.error else "")


def run_zoo_job(spec: ZooJobSpec, *, address: str | None = None, num_cpus: int | None = None,
                console: Console | None = None, incremental: bool = False, take_over_leases: bool = False,
                spec_file: str | None = None) -> ZooRun:
    """Compress every model of ``spec`` on Ray and write ``summary.json`` last at the output prefix.

    Raises InputError before any work if the source is empty, a key is unsafe, a local output cannot be written
    or an S3 output's bucket does not exist or cannot be reached with these credentials,
    the spec's data file or a domain file does not exist (naming ``spec_file``, the spec's path, and the field),
    nothing answers at ``address``, or (embedded Ray) ``cpus_per_task`` exceeds its CPUs.
    ``console``: where the progress bar goes (None: no bar). ``incremental``: use the ledger and leases (module
    docstring); ``take_over_leases``: take over the leases of other runs too (only when those runs are known to
    be dead).
    """
    started = time.monotonic()
    tasks = plan_tasks(spec, spec_file)
    check_inputs(spec, tasks, spec_file)
    plan = plan_incremental(spec, tasks, run_id=uuid.uuid4().hex, take_over_leases=take_over_leases) if incremental else None
    results: list[ZooModelResult] = list(plan.unchanged) if plan else []
    connect(address, num_cpus)
    if address is None:  # the embedded Ray never grows; a cluster may still add nodes (autoscaling)
        check_cpus(spec.cpus_per_task, spec_file or "job spec")
    remote = ray.remote(_compress_task).options(num_cpus=spec.cpus_per_task, max_retries=spec.retries,
                                                retry_exceptions=list(STORAGE_FAILURES))
    board = driver_board()
    lease = plan.lease if plan else None
    pending = {remote.remote(task, board, lease): task for task in (plan.tasks if plan else tasks)}
    unchanged = len(results)
    outcomes = gather(
        pending, board, label="compressing", console=console, done_before=unchanged,
        on_failure=lambda task, reason: TaskOutcome(failed_result(task, reason), True),
        is_failed=lambda outcome: outcome.result is not None and outcome.result.status == "failed",
        storage_down=lambda: _storage_down(spec.output), describe=_describe,
    )
    elsewhere = [outcome.elsewhere for outcome in outcomes if outcome.elsewhere is not None]
    redone = [outcome.redone for outcome in outcomes if outcome.redone is not None]
    finished = [outcome for outcome in outcomes if outcome.result is not None]
    results += [outcome.result for outcome in finished]
    reused = unchanged + sum(not outcome.analysed for outcome in finished)
    output = open_storage(spec.output)
    if plan:
        consolidate(output)
    summary = summarize(spec, results, elsewhere, redone, domain_overrides(spec, tasks))
    html = write_summary(output, summary)
    return ZooRun(summary=summary, summary_html=html, wall_seconds=time.monotonic() - started, reused=reused,
                  unchanged=unchanged)

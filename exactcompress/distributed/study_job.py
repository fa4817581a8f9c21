"""A hyperparameter study on Ray: one task per configuration, each training its model (torch on one thread)
and compressing it through the zoo job's task path, writing everything to storage itself; the driver shows
live progress and writes the study files last.

Where it runs and what is retried are as for the zoo job (``jobs/compress_zoo.py``): embedded local Ray by
default, ``address`` for a cluster; ``spec.retries`` re-runs a task after a lost worker or unreachable
storage, never after a bad data set (that configuration's row is ``failed``, with the reason).

Exit codes of ``exactcompress study run``: 0 every configuration exact or partial; 3 some failed; 2 a bad
spec (nothing ran).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ray
from rich.console import Console

from ..errors import ExitCode
from ..reports.study import setting_text, varying_settings
from ..schema import StudyConfig, StudyResult, StudySpec
from ..storage import open_storage
from ..training.study import (
    ConfigOutcome,
    config_hash,
    failed_row,
    plan_configs,
    run_config,
    checked_study_domain,
    summarize_study,
    write_study,
)
from ..zoo.plan import check_output
from .cluster import check_cpus, connect, ray_parallel_map
from .gather import driver_board, gather
from .zoo_job import STORAGE_FAILURES


@dataclass(frozen=True)
class StudyRun:
    """What one run of a study did: the result, where its HTML is, and how much work this run did."""

    result: StudyResult
    study_html: str
    wall_seconds: float
    trained: int
    analysed: int

    @property
    def exit_code(self) -> int:
        return ExitCode.PARTIAL_FAILURE if any(row.status == "failed" for row in self.result.rows) else ExitCode.OK


def _config_task(spec: StudySpec, config: StudyConfig, board) -> ConfigOutcome:
    board.start.remote(config_hash(config))
    return run_config(spec, config, parallel_map=ray_parallel_map)


def _describe(outcome: ConfigOutcome, shown: frozenset[tuple[str, str]]) -> str:
    """One configuration's outcome for a log line: its settings as the tables name them (``setting_text``), seed,
    status, accuracy."""
    row = outcome.row
    accuracy = "" if row.test_accuracy is None else f", test accuracy {row.test_accuracy:.3f}"
    return (f"{setting_text(row, shown)} seed {row.seed}: {row.status}{accuracy}"
            + (f" ({row.error})" if row.error else ""))


def run_study(spec: StudySpec, *, address: str | None = None, num_cpus: int | None = None,
              console: Console | None = None, spec_file: str | None = None) -> StudyRun:
    """Train and compress every configuration of ``spec`` on Ray; write ``study.json`` last at the output.

    An output that cannot take its files (``zoo.plan.output_problem``: a local folder that cannot be written, an
    S3 output that does not exist or that these credentials cannot reach or write) is refused first; then the data set and
    the domain are checked and the default domain resolved (an .npz data set is read here), then ``cpus_per_task``
    against the embedded Ray's CPUs: InputError before any work, one line naming ``spec_file`` (the spec's path;
    default "study spec") and the field. ``console``: where the progress bar goes (None: no bar).
    """
    started = time.monotonic()
    where = spec_file or "study spec"
    check_output(spec.output, where)
    spec = spec.model_copy(update={"domain": checked_study_domain(spec, where)})
    configs = plan_configs(spec)
    connect(address, num_cpus)
    if address is None:  # the embedded Ray never grows; a cluster may still add nodes (autoscaling)
        check_cpus(spec.cpus_per_task, where)
    shown = varying_settings(spec)
    board = driver_board()
    remote = ray.remote(_config_task).options(num_cpus=spec.cpus_per_task, max_retries=spec.retries,
                                              retry_exceptions=list(STORAGE_FAILURES))
    outcomes = gather(
        {remote.remote(spec, config, board): config for config in configs}, board, label="training + compressing",
        console=console, on_failure=lambda config, reason: ConfigOutcome(failed_row(spec, config, reason), False, False),
        is_failed=lambda outcome: outcome.row.status == "failed", describe=lambda outcome: _describe(outcome, shown),
    )
    result = summarize_study(spec, [outcome.row for outcome in outcomes])
    html = write_study(open_storage(spec.output), result)
    return StudyRun(result=result, study_html=html, wall_seconds=time.monotonic() - started,
                    trained=sum(outcome.trained for outcome in outcomes),
                    analysed=sum(outcome.analysed for outcome in outcomes))

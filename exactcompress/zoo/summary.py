"""A zoo job's summary: a pure function of the spec and the models' rows, written as figures,
``summary.md``, ``summary.html`` and, last, ``summary.json``."""

from __future__ import annotations

from typing import Sequence

from ..pipeline import versions
from ..reports.summary import (
    render_summary_html,
    render_summary_markdown,
    summary_figures,
)
from ..schema import (
    LeaseElsewhere,
    ModelTask,
    RedoneModel,
    ZooJobSpec,
    ZooModelResult,
    ZooSummary,
    ZooTotals,
)
from ..storage import Storage, open_storage

#: written last: its presence means the job finished
SUMMARY = "summary.json"


def domain_overrides(spec: ZooJobSpec, tasks: Sequence[ModelTask]) -> list[str]:
    """Source keys (URLs) of the tasks whose domain is not the spec's (a manifest entry's own)."""
    return [open_storage(task.source_root).url(task.key) for task in tasks if task.domain != spec.domain]


def summarize(spec: ZooJobSpec, results: list[ZooModelResult], elsewhere: Sequence[LeaseElsewhere] = (),
              redone: Sequence[RedoneModel] = (), overrides: Sequence[str] = ()) -> ZooSummary:
    """The job's summary: rows sorted by source key, totals; a pure function of its arguments.
    ``elsewhere``: models another run holds (incremental runs), listed with their leases, not rows;
    ``redone``: models whose committed report did not count, with why; ``overrides``: source keys of the models
    with a domain of their own (``domain_overrides``)."""
    rows = sorted(results, key=lambda row: row.source_key)
    totals = ZooTotals(
        models=len(rows),
        exact=sum(row.status == "exact" for row in rows),
        partial=sum(row.status == "partial" for row in rows),
        failed=sum(row.status == "failed" for row in rows),
        neurons_before=sum(row.neurons_before for row in rows),
        neurons_after=sum(row.neurons_after for row in rows),
        parameters_before=sum(row.parameters_before for row in rows),
        parameters_after=sum(row.parameters_after for row in rows),
        engine_seconds=sum(row.seconds for row in rows),
        in_progress_elsewhere=len(elsewhere),
    )
    held = sorted(elsewhere, key=lambda lease: lease.source_key)
    return ZooSummary(spec=spec, versions=versions(), models=rows, totals=totals,
                      in_progress_elsewhere=[lease.source_key for lease in held], leases_elsewhere=held,
                      redone=sorted(redone, key=lambda model: model.source_key), domain_overrides=sorted(overrides))


def write_summary(output: Storage, summary: ZooSummary) -> str:
    """Write the figures, ``summary.md``, ``summary.html`` and, last, ``summary.json``; returns the URL of
    ``summary.html``. The same summary gives byte-identical files."""
    figures = summary_figures(summary)
    for name, png in figures.items():
        output.put_bytes(name, png)
    output.put_bytes("summary.md", render_summary_markdown(summary, {name: name for name in figures}).encode())
    output.put_bytes("summary.html", render_summary_html(summary).encode())
    output.put_bytes(SUMMARY, summary.model_dump_json(indent=2).encode())
    return output.url("summary.html")


def failed_result(task: ModelTask, reason: str) -> ZooModelResult:
    """The row of a model whose task itself failed (after retries); no report was committed."""
    return ZooModelResult(source_key=open_storage(task.source_root).url(task.key), status="failed", error=reason)

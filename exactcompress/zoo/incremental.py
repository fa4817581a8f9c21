"""The driver's half of an incremental zoo run: which models need a task at all.

A model is skipped without being downloaded when the ledger (``ledger``) has an entry for its source key and
the source object's current fingerprint (``storage``: S3 ETag + size + Last-Modified, read from one listing;
local: sha256) whose report key is where this run's settings would put that model, and that report is still
committed. Everything else — new keys, changed bytes, other settings, models done by non-incremental runs —
becomes a task; the task downloads and hashes the model, and its committed ``report.json`` (one HEAD) is the
authoritative "done" check from there on. S3 ETags are not sha256s, so they never stand in for the model's
hash: an entry maps one object version, as a task read it, to the sha256 the task computed.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import InputError, KeyNotFound
from ..reports.report import REPORT_JSON
from ..schema import ModelTask, ZooJobSpec, ZooLedger, ZooModelResult
from ..storage import open_storage
from .leases import LeaseTerms, lease_terms
from .ledger import READ_THREADS, read_ledger
from .task import committed_report, domain_digest, result_from_report, run_prefix


@dataclass(frozen=True)
class IncrementalPlan:
    """``unchanged``: rows of the models skipped (from their committed reports); ``tasks``: the rest."""

    unchanged: list[ZooModelResult]
    tasks: list[ModelTask]
    lease: LeaseTerms


def plan_incremental(spec: ZooJobSpec, tasks: list[ModelTask], run_id: str) -> IncrementalPlan:
    """Split ``tasks`` into models the ledger shows done (unchanged) and models to hand to workers."""
    output = open_storage(spec.output)
    done = _done_reports(read_ledger(output))
    urls = [open_storage(task.source_root).url(task.key) for task in tasks]
    fingerprints = _fingerprints([task for task, url in zip(tasks, urls) if url in done])
    digests: dict[tuple[str, str], str | None] = {}
    expected = [_recorded_report(task, done.get(url, {}).get(fingerprints.get((task.source_root, task.key)), set()),
                                 digests) for task, url in zip(tasks, urls)]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        reports = list(pool.map(lambda key: committed_report(output, key) if key else None, expected))
    unchanged, remaining = [], []
    for task, url, key, report in zip(tasks, urls, expected, reports):
        if report is None:
            remaining.append(task)
        else:
            unchanged.append(result_from_report(url, output, key.removesuffix(f"/{REPORT_JSON}"), report))
    return IncrementalPlan(unchanged=unchanged, tasks=remaining, lease=lease_terms(spec, run_id))


def _done_reports(ledger: ZooLedger) -> dict[str, dict[str, set[tuple[str, str]]]]:
    """source key → fingerprint → {(sha256, report key)}."""
    done: dict[str, dict[str, set[tuple[str, str]]]] = defaultdict(lambda: defaultdict(set))
    for entry in ledger.entries:
        if entry.source_fingerprint:
            done[entry.source_key][entry.source_fingerprint].add((entry.sha256, entry.report_key))
    return done


def _fingerprints(tasks: list[ModelTask]) -> dict[tuple[str, str], str]:
    """(source root, key) → the object's current fingerprint, for every task's model that exists."""
    keys_by_root: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        keys_by_root[task.source_root].append(task.key)
    return {(root, key): fingerprint for root, keys in keys_by_root.items()
            for key, fingerprint in open_storage(root).fingerprints(keys).items()}


def _recorded_report(task: ModelTask, recorded: set[tuple[str, str]],
                     digests: dict[tuple[str, str], str | None]) -> str | None:
    """The recorded report key that this run's settings give one of the recorded hashes, if any."""
    digest = _cached_digest(task, digests) if recorded else None
    if digest is None:
        return None
    return next((key for sha256, key in sorted(recorded) if key == f"{run_prefix(task, sha256, digest)}/{REPORT_JSON}"), None)


def _cached_digest(task: ModelTask, digests: dict[tuple[str, str], str | None]) -> str | None:
    """The task's domain digest, resolved once per distinct domain; None if it does not resolve (its task
    then commits the failure)."""
    cache_key = (task.source_root, task.domain.model_dump_json())
    if cache_key not in digests:
        try:
            digests[cache_key] = domain_digest(task.domain, task.source_root)
        except (InputError, KeyNotFound):
            digests[cache_key] = None
    return digests[cache_key]

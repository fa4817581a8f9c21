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

from ..engine.domain import Domain
from ..errors import InputError, KeyNotFound
from ..reports.report import REPORT_JSON
from ..schema import CompressionReport, ModelTask, ZooJobSpec, ZooLedger, ZooModelResult
from ..storage import open_storage
from .committed import read_committed
from .layout import run_prefix, settings_digest
from .leases import LeaseTerms, lease_terms
from .ledger import READ_THREADS, read_ledger
from .task import arch_key, joined_fingerprint, resolve_domain, result_from_report


@dataclass(frozen=True)
class IncrementalPlan:
    """``unchanged``: rows of the models skipped (from their committed reports); ``tasks``: the rest."""

    unchanged: list[ZooModelResult]
    tasks: list[ModelTask]
    lease: LeaseTerms


def plan_incremental(spec: ZooJobSpec, tasks: list[ModelTask], run_id: str, take_over_leases: bool = False) -> IncrementalPlan:
    """Split ``tasks`` into models the ledger shows done (unchanged) and models to hand to workers, whose leases
    this run (``run_id``) takes; ``take_over_leases``: also those other runs hold (``leases.LeaseTerms``)."""
    output = open_storage(spec.output)
    done = _done_reports(read_ledger(output))
    urls = [open_storage(task.source_root).url(task.key) for task in tasks]
    fingerprints = _fingerprints([task for task, url in zip(tasks, urls) if url in done])
    domains: dict[tuple[str, str], Domain | None] = {}
    expected = [_recorded_report(task, done.get(url, {}).get(fingerprints.get((task.source_root, task.key)), set()),
                                 domains) for task, url in zip(tasks, urls)]

    def counted(task: ModelTask, key: str | None) -> CompressionReport | None:
        return read_committed(output, key, spec, _cached_domain(task, domains)).report if key else None

    with ThreadPoolExecutor(READ_THREADS) as pool:
        reports = list(pool.map(counted, tasks, expected))
    unchanged, remaining = [], []
    for task, url, key, report in zip(tasks, urls, expected, reports):
        if report is None:
            remaining.append(task)  # its task finds the report again and says why it did not count
        else:
            unchanged.append(result_from_report(url, output, key.removesuffix(f"/{REPORT_JSON}"), report))
    return IncrementalPlan(unchanged=unchanged, tasks=remaining, lease=lease_terms(spec, run_id, take_over_leases))


Recorded = set[tuple[str, str | None, str]]  # {(model sha256, architecture file sha256 or None, report key)}


def _done_reports(ledger: ZooLedger) -> dict[str, dict[str, Recorded]]:
    """source key → fingerprint → the recorded (sha256, arch sha256, report key)."""
    done: dict[str, dict[str, Recorded]] = defaultdict(lambda: defaultdict(set))
    for entry in ledger.entries:
        if entry.source_fingerprint:
            done[entry.source_key][entry.source_fingerprint].add((entry.sha256, entry.arch_sha256, entry.report_key))
    return done


def _fingerprints(tasks: list[ModelTask]) -> dict[tuple[str, str], str]:
    """(source root, key) → the model's current version, for every task's model that exists: its object's
    fingerprint, joined with its architecture file's where it has one (as the task records it)."""
    keys_by_root: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        keys_by_root[task.source_root] += [key for key in (task.key, arch_key(task.key)) if key is not None]
    found = {(root, key): fingerprint for root, keys in keys_by_root.items()
             for key, fingerprint in open_storage(root).fingerprints(keys).items()}
    versions = {}
    for task in tasks:
        model = found.get((task.source_root, task.key))
        beside = found.get((task.source_root, arch_key(task.key) or ""))
        if model is not None:
            versions[(task.source_root, task.key)] = model if beside is None else joined_fingerprint(model, beside)
    return versions


def _recorded_report(task: ModelTask, recorded: Recorded, domains: dict[tuple[str, str], Domain | None]) -> str | None:
    """The recorded report key that this run's settings give one of the recorded models, if any."""
    domain = _cached_domain(task, domains) if recorded else None
    if domain is None:
        return None
    return next((key for sha256, arch_sha256, key in sorted(recorded, key=str)
                 if key == f"{run_prefix(task, sha256, settings_digest(domain, arch_sha256))}/{REPORT_JSON}"), None)


def _cached_domain(task: ModelTask, domains: dict[tuple[str, str], Domain | None]) -> Domain | None:
    """The task's domain, resolved once per distinct domain; None if it does not resolve (its task then
    commits the failure)."""
    cache_key = (task.source_root, task.domain.model_dump_json())
    if cache_key not in domains:
        try:
            domains[cache_key] = resolve_domain(task.domain, task.source_root)
        except (InputError, KeyNotFound):
            domains[cache_key] = None
    return domains[cache_key]

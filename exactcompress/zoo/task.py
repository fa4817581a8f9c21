"""One model of a zoo job, end to end against storage: download, compress, commit its outputs.
``distributed.zoo_job`` only moves ``ModelTask``s to workers and calls ``run_model_task``.

Outputs go to ``runs/<sha16>/<run folder>/`` (``layout``). A model is done when its ``report.json`` counts
(``committed``: it validates, its outputs are intact, it matches its folder's settings); the report is written
last with a conditional put, so a report that counts (from an earlier or a concurrent run) is never replaced.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from ..engine.domain import Domain, point_shape_fits
from ..engine.progress import Progress
from ..engine.prove.parallel import ParallelMap
from ..errors import InputError, KeyNotFound
from ..io import FORMAT_BY_SUFFIX, STATE_DICT_FORMATS, load_network
from ..io.architecture import arch_path
from ..io.domain_files import from_bounds, from_file, load_points
from ..pipeline import compress_model, versions
from ..reports.report import PAGES, REPORT_JSON, write_report_json, write_reports
from ..schema import (
    BoxDomainSpec,
    CompressionReport,
    DomainSpec,
    LeaseElsewhere,
    ModelTask,
    RedoneModel,
    ZooJobSpec,
    ZooModelResult,
)
from ..storage import Storage, open_storage, safe_key
from .committed import read_committed
from .layout import failure_digest, run_prefix, settings_digest
from .leases import LeaseTerms, holding, lease_key, read_lease
from .ledger import new_entry, record
from .plan import resolve_reference
from .scratch import scratch_dir


def _domain(domain: DomainSpec, source_root: str, scratch: Path) -> Domain:
    if isinstance(domain, BoxDomainSpec):
        return from_bounds(domain.lower, domain.upper, source=f"spec domain {{lower: {domain.lower}, upper: {domain.upper}}}")
    storage, key = resolve_reference(domain.file, source_root)
    local = scratch / ("domain" + PurePosixPath(key).suffix)
    storage.download(key, local)
    with _named_as(storage.url(key), local):
        loaded = from_file(local)
    return replace(loaded, source=storage.url(key))


def resolve_domain(domain: DomainSpec, source_root: str) -> Domain:
    """The domain a spec names (a domain file is downloaded); InputError or KeyNotFound if it does not resolve."""
    with scratch_dir() as scratch:
        return _domain(domain, source_root, scratch)


def result_from_report(source_url: str, output: Storage, prefix: str, report: CompressionReport) -> ZooModelResult:
    """The summary row of one model, from its committed report."""
    counts = report.counts()
    settled: dict[str, int] = {}
    for layer in report.layers:
        for settler, neurons in layer.settled_by.items():
            settled[settler] = settled.get(settler, 0) + len(neurons)
    compressed = report.outputs.compressed[0] if report.outputs and report.outputs.compressed else None
    convs = [layer.conv for layer in report.layers if layer.conv is not None]
    return ZooModelResult(
        source_key=source_url,
        sha256=report.model.sha256 if report.model else None,
        status=report.status,
        error=report.error,
        report_key=output.url(f"{prefix}/{REPORT_JSON}"),
        compressed_key=output.url(f"{prefix}/{compressed}") if compressed else None,
        seconds=report.seconds.get("total", 0.0),
        neurons_before=report.neurons_before,
        neurons_after=report.neurons_after,
        parameters_before=report.parameters_before,
        parameters_after=report.parameters_after,
        settled_by=settled,
        undecided=counts["undecided"],
        neurons_after_if_settled=(report.if_undecided_settled.neurons_after if report.if_undecided_settled
                                  else None),
        channels_before=sum(len(conv.channels) for conv in convs) if convs else None,
        channels_after=sum(conv.channels_after for conv in convs) if convs else None,
    )


def _failed_report(task: ModelTask, source_url: str, reason: str) -> CompressionReport:
    return CompressionReport(
        status="failed", error=reason, error_kind="input", model_path=source_url, method=task.spec.method,
        time_limit_s=task.spec.time_limit_s, versions=versions(),
    )


@dataclass(frozen=True)
class TaskOutcome:
    """One model's summary row, and whether this run did the work (False: a committed report was reused).
    In an incremental run, a model whose lease another run holds has no row: ``result`` is None and
    ``elsewhere`` says whose lease it is. ``redone``: a committed report that did not count, done again."""

    result: ZooModelResult | None
    analysed: bool
    elsewhere: LeaseElsewhere | None = None
    redone: RedoneModel | None = None


@dataclass(frozen=True)
class _Place:
    """Where one model's outputs go and what decides whether a report there counts."""

    task: ModelTask
    output: Storage
    source_url: str
    prefix: str
    domain: Domain | None  # None: the domain never resolved

    @property
    def report_key(self) -> str:
        return f"{self.prefix}/{REPORT_JSON}"

    def reused(self) -> TaskOutcome:
        """The committed report's row (``result`` None if none counts; ``redone`` says why one did not)."""
        committed = read_committed(self.output, self.report_key, self.task.spec, self.domain)
        if committed.report is not None:
            return TaskOutcome(result_from_report(self.source_url, self.output, self.prefix, committed.report), False)
        redone = None if committed.rejected is None else RedoneModel(
            source_key=self.source_url, report_key=self.output.url(self.report_key), reason=committed.rejected)
        return TaskOutcome(None, analysed=False, redone=redone)

    def commit(self, out_dir: Path, report: CompressionReport) -> ZooModelResult:
        """Upload every output file and the report's pages, then ``report.json`` last and only if no report that
        counts is there yet; the row of the report committed there (ours, or the one found). Where another task's
        report counts (an identical model), its pages are written again from it, as ours replaced them."""
        for path in sorted(out_dir.iterdir()):
            if path.is_file() and path.name != REPORT_JSON:
                self.output.upload(path, f"{self.prefix}/{path.name}")
        data = (out_dir / REPORT_JSON).read_bytes()
        if not self.output.put_if_absent(self.report_key, data):
            existing = read_committed(self.output, self.report_key, self.task.spec, self.domain).report
            if existing is None:
                self.output.put_bytes(self.report_key, data)  # what was there does not count: replace it
            else:
                pages = out_dir / "committed"
                write_reports(existing, pages)
                for name in PAGES:
                    if (pages / name).is_file():
                        self.output.upload(pages / name, f"{self.prefix}/{name}")
                    elif (out_dir / name).is_file():  # a figure of ours that the committed report has not
                        self.output.delete(f"{self.prefix}/{name}")
                report = existing
        return result_from_report(self.source_url, self.output, self.prefix, report)

    def elsewhere(self) -> TaskOutcome:
        """The outcome of a model another run holds: its lease, as read now."""
        lease = read_lease(self.output, lease_key(self.prefix))
        held = LeaseElsewhere(source_key=self.source_url, holder=lease.holder if lease else "(released since)",
                              expires_at=lease.expires_at if lease else time.time())
        return TaskOutcome(None, analysed=False, elsewhere=held)


def run_model_task(task: ModelTask, *, parallel_map: ParallelMap | None = None, progress: Progress | None = None,
                   lease: LeaseTerms | None = None) -> TaskOutcome:
    """Pull one model from storage, compress it, push its outputs (report.json last) and return its row.

    A model whose committed report counts (``committed``) is not analysed again. Bad input (unreadable,
    corrupt, too large, non-ReLU, NaN weights, bad domain) gives a committed ``failed`` report with a one-line
    reason. Storage errors that survive the client's retries raise (the zoo job retries such a task).
    ``lease`` (incremental runs): the model is analysed only under its lease (``leases``: another run's live
    lease gives ``result=None``), and its committed report is recorded in the ledger (``ledger``).
    """
    spec = task.spec
    source = open_storage(task.source_root)
    output = open_storage(spec.output)
    source_url = source.url(task.key)
    with scratch_dir() as scratch:
        unread = hashlib.sha256(source_url.encode()).hexdigest()  # stands for the sha256 of a model never read
        try:
            size = source.size(task.key)
        except InputError as error:  # e.g. a symbolic link out of a local source
            return _commit_failure(task, output, source_url, unread, error.reason, scratch)
        if size > spec.max_model_bytes:
            reason = f"model file is {size} bytes, over the job's max_model_bytes {spec.max_model_bytes}"
            return _commit_failure(task, output, source_url, unread, reason, scratch)
        local_model = scratch / ("model" + PurePosixPath(task.key).suffix.lower())
        fingerprint = source.download(task.key, local_model)
        model_sha256 = hashlib.sha256(local_model.read_bytes()).hexdigest()
        arch = _download_arch_file(source, task.key, local_model)
        arch_sha256 = arch[0] if arch else None
        if arch:  # the version as read is the pair: a changed architecture file is a changed model
            fingerprint = joined_fingerprint(fingerprint, arch[1])
        try:
            domain = _domain(task.domain, task.source_root, scratch)
            data = _data(spec, task.source_root, scratch)
        except (InputError, KeyNotFound) as error:  # a bad or missing domain or data file fails this model
            return _commit_failure(task, output, source_url, model_sha256, str(error), scratch)
        place = _Place(task, output, source_url, run_prefix(task, model_sha256, settings_digest(domain, arch_sha256)),
                       domain)

        def analyse(found: TaskOutcome) -> TaskOutcome:
            if found.result is not None:
                return found
            analysed = _analyse(place, local_model, data, scratch / "out", parallel_map, progress)
            return replace(analysed, redone=found.redone)

        outcome = place.reused()
        if lease is None:
            return analyse(outcome)
        if outcome.result is None:
            with holding(output, lease_key(place.prefix), model_sha256, lease) as held:
                if not held:
                    return place.elsewhere()
                outcome = analyse(place.reused())  # another run may have just finished it
        record(output, new_entry(model_sha256, source_url, place.report_key, outcome.result.status, fingerprint,
                                 arch_sha256))
        return outcome


#: model files that may have an architecture file ``NAME.arch.json`` beside them (state dicts)
STATE_DICT_SUFFIXES = tuple(suffix for suffix, kind in FORMAT_BY_SUFFIX.items() if kind in STATE_DICT_FORMATS)


def arch_key(key: str) -> str | None:
    """The key of the architecture file ``NAME.arch.json`` that a state dict ``NAME.pt`` / ``.pth`` / ``.ckpt`` /
    ``.safetensors`` may have beside it; None for other model files, and where that key would be invalid
    (a name near the 255-byte limit: no such file can exist)."""
    path = PurePosixPath(key)
    if path.suffix.lower() not in STATE_DICT_SUFFIXES:
        return None
    try:
        return safe_key(str(arch_path(path)))
    except InputError:
        return None


def joined_fingerprint(model_fingerprint: str, arch_fingerprint: str) -> str:
    """The source version of a model with an architecture file: both files' fingerprints."""
    return f"{model_fingerprint}|arch:{arch_fingerprint}"


def _download_arch_file(source: Storage, key: str, local_model: Path) -> tuple[str, str] | None:
    """For a state dict, download its architecture file (``arch_key``; when there) to beside ``local_model``;
    returns its (sha256, fingerprint), or None when the model has none."""
    beside = arch_key(key)
    if beside is None or not source.exists(beside):
        return None
    local = arch_path(local_model)
    fingerprint = source.download(beside, local)
    return hashlib.sha256(local.read_bytes()).hexdigest(), fingerprint


def _analyse(place: _Place, local_model: Path, data: tuple[np.ndarray, tuple[int, ...] | None] | None, out_dir: Path,
             parallel_map: ParallelMap | None, progress: Progress | None) -> TaskOutcome:
    """Load and compress the downloaded model (or record why it cannot be loaded), commit, return its row."""
    task, spec = place.task, place.task.spec
    try:
        network, info = load_network(local_model)
    except InputError as error:
        report = _failed_report(task, place.source_url, error.reason)  # the row names its own file
        write_reports(report, out_dir)
        write_report_json(report, out_dir)
    else:
        model = (network, info.model_copy(update={"name": PurePosixPath(task.key).stem, "path": place.source_url}))
        rows, point_shape = data if data is not None else (None, None)
        fits = rows is not None and rows.shape[1] == network.input_dim and point_shape_fits(point_shape,
                                                                                           network.input_shape)
        points = rows if fits else None  # the spec's data serves the models it fits
        report = compress_model(
            model, out_dir, domain=place.domain, data=points, method=spec.method, time_limit=spec.time_limit_s,
            workers=spec.fallback_tasks, threads=max(1, int(spec.cpus_per_task)), parallel_map=parallel_map,
            formats=spec.formats, seed=spec.seed, device=spec.device, verify_samples=spec.verify_samples,
            progress=progress,
        )
    return TaskOutcome(place.commit(out_dir, report), analysed=True)


def _commit_failure(task: ModelTask, output: Storage, source_url: str, digest: str, reason: str, scratch: Path) -> TaskOutcome:
    prefix = run_prefix(task, digest, failure_digest(task, reason))  # never one that another failure's reason shares
    place = _Place(task, output, source_url, prefix, None)
    found = place.reused()
    if found.result is not None:
        return found
    report = _failed_report(task, source_url, reason)
    out_dir = scratch / "failed"
    write_reports(report, out_dir)
    write_report_json(report, out_dir)
    return TaskOutcome(place.commit(out_dir, report), analysed=True, redone=found.redone)


def _data(spec: ZooJobSpec, source_root: str, scratch: Path) -> tuple[np.ndarray, tuple[int, ...] | None] | None:
    """The spec's data rows (n, features) and the shape of one point as the file has it (``load_points``)."""
    if spec.data is None:
        return None
    storage, key = resolve_reference(spec.data, source_root)
    local = scratch / "data.npy"
    storage.download(key, local)
    with _named_as(storage.url(key), local):
        return load_points(local)


@contextmanager
def _named_as(url: str, local: Path) -> Iterator[None]:
    """An InputError about the scratch copy ``local`` of a downloaded file, re-raised naming ``url`` instead (a
    scratch path means nothing to the user, and differs on every run)."""
    try:
        yield
    except InputError as error:
        raise InputError(url, error.reason.replace(str(local), url)) from None


# ------------------------------------------------------------------------------------------ summary

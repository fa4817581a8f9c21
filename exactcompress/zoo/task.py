"""One model of a zoo job, end to end against storage: download, compress, commit its outputs.
``distributed.zoo_job`` only moves ``ModelTask``s to workers and calls ``run_model_task``.

Output layout under the job's ``output`` prefix (content addressed, so the same input always maps to the
same place and a re-run finds it):

    runs/<sha256 of the model file, 16 hex>/<method>-<settings hash, 12 hex>-v<package version>/
        compressed.pt …, witnesses.npz, report.md, report.html, report_layers.png, report.json (last)
    summary_*.png, summary.md, summary.html, summary.json (last)

The settings hash covers the domain's bounds, the time limit, the formats and the seed. A model is done
when its ``report.json`` exists and validates; it is written last with a conditional put, so a report that
is already there (from an earlier or a concurrent run) is never replaced.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from pydantic import ValidationError

from .. import __version__
from ..engine.domain import Domain
from ..engine.progress import Progress
from ..engine.prove.parallel import ParallelMap
from ..engine.verify import DEFAULT_SAMPLES
from ..errors import InputError, KeyNotFound
from ..io import load_network
from ..io.domain_files import from_bounds, from_file, load_data
from ..pipeline import compress_model, versions
from ..reports.report import REPORT_JSON, write_report_json
from ..schema import (
    BoxDomainSpec,
    CompressionReport,
    DomainSpec,
    ModelTask,
    ZooJobSpec,
    ZooModelResult,
)
from ..storage import Storage, open_storage, safe_key
from .leases import LeaseTerms, holding, lease_key
from .ledger import new_entry, record
from .plan import resolve_reference

# --------------------------------------------------------------------------------------------- specs


# --------------------------------------------------------------------------------------- one model


def _domain(domain: DomainSpec, source_root: str, scratch: Path) -> Domain:
    if isinstance(domain, BoxDomainSpec):
        return from_bounds(domain.lower, domain.upper, source=f"spec domain {{lower: {domain.lower}, upper: {domain.upper}}}")
    storage, key = resolve_reference(domain.file, source_root)
    local = scratch / ("domain" + PurePosixPath(key).suffix)
    storage.download(key, local)
    loaded = from_file(local)
    return Domain(loaded.kind, loaded.boxes, storage.url(key), loaded.margin, loaded.epsilon)


def _domain_digest(domain: Domain) -> str:
    digest = hashlib.sha256(f"{domain.kind}|{domain.epsilon}|{domain.margin}".encode())
    for box in domain.boxes:
        digest.update(box.lower.tobytes())
        digest.update(box.upper.tobytes())
    return digest.hexdigest()


def run_prefix(task: ModelTask, model_sha256: str, domain_digest: str) -> str:
    """``runs/<sha16>/<method>-<settings12>-v<version>``: where one model's outputs go (a non-default
    ``verify_samples`` is part of the settings; the default keeps the prefixes of earlier versions)."""
    spec = task.spec
    settings = json.dumps(
        {"domain": domain_digest, "time_limit_s": spec.time_limit_s, "formats": spec.formats, "seed": spec.seed,
         **({"verify_samples": spec.verify_samples} if spec.verify_samples != DEFAULT_SAMPLES else {})},
        sort_keys=True,
    )
    settings_hash = hashlib.sha256(settings.encode()).hexdigest()[:12]
    return safe_key("runs", model_sha256[:16], f"{spec.method}-{settings_hash}-v{__version__}")


def domain_digest(domain: DomainSpec, source_root: str) -> str:
    """The domain's part of ``run_prefix``'s settings hash (a domain file is downloaded); InputError if the
    domain does not resolve."""
    with tempfile.TemporaryDirectory(prefix="exactcompress-") as scratch:
        return _domain_digest(_domain(domain, source_root, Path(scratch)))


def committed_report(output: Storage, key: str) -> CompressionReport | None:
    """The valid report at ``key`` whose output files are all there as it records them (size and sha256 in
    ``outputs.files``); None otherwise (no report, one that does not validate, or a file missing, truncated or
    changed): the model is then done again."""
    if not output.exists(key):
        return None
    try:
        report = CompressionReport.model_validate_json(output.get_bytes(key))
    except ValidationError:
        return None  # a damaged report does not count: the model is done again
    folder = key.rpartition("/")[0]
    for name, digest in (report.outputs.files.items() if report.outputs else ()):
        file_key = f"{folder}/{name}" if folder else name
        if not output.exists(file_key) or output.size(file_key) != digest.bytes:
            return None
        if hashlib.sha256(output.get_bytes(file_key)).hexdigest() != digest.sha256:
            return None
    return report


def result_from_report(source_url: str, output: Storage, prefix: str, report: CompressionReport) -> ZooModelResult:
    """The summary row of one model, from its committed report."""
    counts = report.counts()
    settled: dict[str, int] = {}
    for layer in report.layers:
        for settler, neurons in layer.settled_by.items():
            settled[settler] = settled.get(settler, 0) + len(neurons)
    compressed = report.outputs.compressed[0] if report.outputs and report.outputs.compressed else None
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
    )


def _commit(output: Storage, prefix: str, out_dir: Path, report: CompressionReport) -> CompressionReport:
    """Upload every output file, then ``report.json`` last and only if no valid report is there yet.
    Returns the report that is committed at ``prefix`` (ours, or the one found there)."""
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.name != REPORT_JSON:
            output.upload(path, f"{prefix}/{path.name}")
    key = f"{prefix}/{REPORT_JSON}"
    data = (out_dir / REPORT_JSON).read_bytes()
    if output.put_if_absent(key, data):
        return report
    existing = committed_report(output, key)
    if existing is not None:
        return existing
    output.put_bytes(key, data)  # what was there did not validate: replace it
    return report


def _failed_report(task: ModelTask, source_url: str, reason: str) -> CompressionReport:
    return CompressionReport(
        status="failed", error=reason, error_kind="input", model_path=source_url, method=task.spec.method,
        time_limit_s=task.spec.time_limit_s, versions=versions(),
    )


@dataclass(frozen=True)
class TaskOutcome:
    """One model's summary row, and whether this run did the work (False: a committed report was reused).
    In an incremental run, a model whose lease another run holds has no row: ``result`` is None and
    ``elsewhere`` its source URL."""

    result: ZooModelResult | None
    analysed: bool
    elsewhere: str | None = None


def _reused(output: Storage, source_url: str, prefix: str) -> TaskOutcome | None:
    existing = committed_report(output, f"{prefix}/{REPORT_JSON}")
    if existing is None:
        return None
    return TaskOutcome(result_from_report(source_url, output, prefix, existing), analysed=False)


def run_model_task(task: ModelTask, *, parallel_map: ParallelMap | None = None, progress: Progress | None = None,
                   lease: LeaseTerms | None = None) -> TaskOutcome:
    """Pull one model from storage, compress it, push its outputs (report.json last) and return its row.

    A model whose valid report already exists is not analysed again. Bad input (unreadable, corrupt,
    too large, non-ReLU, NaN weights, bad domain) gives a committed ``failed`` report with a one-line
    reason. Storage errors that survive the client's retries raise (the zoo job retries such a task).
    ``lease`` (incremental runs): the model is analysed only under its lease (``leases``: another run's live
    lease gives ``result=None``), and its committed report is recorded in the ledger (``ledger``).
    """
    spec = task.spec
    source = open_storage(task.source_root)
    output = open_storage(spec.output)
    source_url = source.url(task.key)
    with tempfile.TemporaryDirectory(prefix="exactcompress-") as scratch_name:
        scratch = Path(scratch_name)
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
        try:
            domain = _domain(task.domain, task.source_root, scratch)
            data = _data(spec, task.source_root, scratch)
        except (InputError, KeyNotFound) as error:  # a bad or missing domain or data file fails this model
            return _commit_failure(task, output, source_url, model_sha256, str(error), scratch)
        prefix = run_prefix(task, model_sha256, _domain_digest(domain))

        def analyse() -> TaskOutcome:
            return _analyse(task, output, prefix, source_url, local_model, domain, data, scratch / "out",
                            parallel_map, progress)

        outcome = _reused(output, source_url, prefix)
        if lease is None:
            return outcome or analyse()
        if outcome is None:
            with holding(output, lease_key(prefix), model_sha256, lease) as held:
                if not held:
                    return TaskOutcome(None, analysed=False, elsewhere=source_url)
                outcome = _reused(output, source_url, prefix) or analyse()  # another run may have just finished it
        record(output, new_entry(model_sha256, source_url, f"{prefix}/{REPORT_JSON}", outcome.result.status, fingerprint))
        return outcome


def _analyse(task: ModelTask, output: Storage, prefix: str, source_url: str, local_model: Path, domain: Domain,
             data: np.ndarray | None, out_dir: Path, parallel_map: ParallelMap | None,
             progress: Progress | None) -> TaskOutcome:
    """Load and compress the downloaded model (or record why it cannot be loaded), commit, return its row."""
    spec = task.spec
    try:
        network, info = load_network(local_model)
    except InputError as error:
        report = _failed_report(task, source_url, f"{source_url}: {error.reason}")
        write_report_json(report, out_dir)
    else:
        model = (network, info.model_copy(update={"name": PurePosixPath(task.key).stem, "path": source_url}))
        points = data if data is not None and data.shape[1] == network.input_dim else None
        report = compress_model(
            model, out_dir, domain=domain, data=points, method=spec.method, time_limit=spec.time_limit_s,
            workers=spec.fallback_tasks, parallel_map=parallel_map, formats=spec.formats, seed=spec.seed,
            device=spec.device, verify_samples=spec.verify_samples, progress=progress,
        )
    committed = _commit(output, prefix, out_dir, report)
    return TaskOutcome(result_from_report(source_url, output, prefix, committed), analysed=True)


def _commit_failure(task: ModelTask, output: Storage, source_url: str, digest: str, reason: str, scratch: Path) -> TaskOutcome:
    prefix = run_prefix(task, digest, "unresolved")
    reused = _reused(output, source_url, prefix)
    if reused is not None:
        return reused
    report = _failed_report(task, source_url, reason)
    out_dir = scratch / "failed"
    write_report_json(report, out_dir)
    return TaskOutcome(result_from_report(source_url, output, prefix, _commit(output, prefix, out_dir, report)), analysed=True)


def _data(spec: ZooJobSpec, source_root: str, scratch: Path) -> np.ndarray | None:
    if spec.data is None:
        return None
    storage, key = resolve_reference(spec.data, source_root)
    local = scratch / "data.npy"
    storage.download(key, local)
    return load_data(local)


# ------------------------------------------------------------------------------------------ summary

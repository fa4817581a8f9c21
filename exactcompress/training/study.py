"""Hyperparameter studies without Ray: read a study spec, list its configurations, train one, compress it
through the zoo job's task path, and summarise. ``jobs/study.py`` only moves configurations to workers.

Output layout under the spec's ``output`` prefix (keyed by the hash of each configuration's settings, so a
re-run finds what is done and a killed study resumes):

    configs/<config hash, 16 hex>/model.pt (a CNN also model.arch.json), training.json (last)
    compressed/runs/…/report.json …       the zoo job's layout (see ``batch``), source configs/<hash>
    study_*.png, study.csv, study.md, study.html, study.json (last)
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch
from pydantic import ValidationError

from ..engine.prove.parallel import ParallelMap
from ..engine.torch_threads import torch_threads
from ..errors import InputError, naming_field
from ..io.architecture import arch_path
from ..io.domain_files import from_bounds
from ..pipeline import versions
from ..reports.study import (
    render_study_csv,
    render_study_html,
    render_study_markdown,
    study_figures,
)
from ..schema import (
    BoxDomainSpec,
    CnnArchitecture,
    CompressionReport,
    DomainSpec,
    ModelTask,
    NpzDataset,
    StudyConfig,
    StudyResult,
    StudyRow,
    StudySpec,
    TrainingRecord,
    ZooJobSpec,
)
from ..storage import Storage, open_storage, safe_key
from ..zoo.plan import split_url
from ..zoo.task import resolve_domain, run_model_task
from .datasets import UPSAMPLED, load_dataset
from .trainer import (
    PenaltyKind,
    Regularization,
    accuracy,
    cnn,
    save_state_dict,
    train_mlp,
    train_network,
)

CONFIGS = "configs"
COMPRESSED = "compressed"
MODEL = "model.pt"
TRAINING = "training.json"
STUDY = "study.json"
#: box of the bundled image data sets (pixels in [0, 1])
IMAGE_BOX = BoxDomainSpec(lower=0.0, upper=1.0)


def plan_configs(spec: StudySpec) -> list[StudyConfig]:
    """Every architecture × regulariser strength × seed (``none`` has the one strength 0), without
    duplicates, in spec order."""
    dataset = spec.dataset.npz if isinstance(spec.dataset, NpzDataset) else spec.dataset
    digest = _npz_sha256(spec.dataset.npz) if isinstance(spec.dataset, NpzDataset) else None
    configs: dict[str, StudyConfig] = {}
    for architecture in spec.architectures:
        cnn_architecture = architecture if isinstance(architecture, CnnArchitecture) else None
        hidden = cnn_architecture.dense if cnn_architecture else architecture
        for regularizer in spec.regularizers:
            parameters = regularizer.model_dump(exclude={"kind", "strengths"})
            for strength in getattr(regularizer, "strengths", [0.0]):
                for seed in spec.seeds:
                    config = StudyConfig(
                        dataset=dataset, dataset_sha256=digest, hidden=hidden, cnn=cnn_architecture, regularizer=regularizer.kind,
                        strength=strength, seed=seed,
                        epochs=spec.epochs, batch_size=spec.batch_size, learning_rate=spec.learning_rate, **parameters,
                    )
                    configs.setdefault(config_hash(config), config)
    return list(configs.values())


def _npz_sha256(url: str) -> str:
    """sha256 of an .npz data set's bytes; InputError naming it when it cannot be read."""
    storage, name = split_url(url)
    if not storage.exists(name):
        raise InputError(url, "no such .npz data set")
    return hashlib.sha256(storage.get_bytes(name)).hexdigest()


def config_hash(config: StudyConfig) -> str:
    """sha256 (16 hex) of the configuration's canonical JSON (sorted keys, no spaces; an MLP's ``cnn: null`` and
    a bundled data set's ``dataset_sha256: null`` are left out, so those configurations keep the hashes of study
    schema 1.0)."""
    unset = {name for name in ("cnn", "dataset_sha256") if getattr(config, name) is None}
    settings = config.model_dump(mode="json", exclude=unset)
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _config_storage(spec: StudySpec, config: StudyConfig) -> Storage:
    return open_storage(spec.output).child(safe_key(CONFIGS, config_hash(config)))


def committed_record(spec: StudySpec, config: StudyConfig) -> TrainingRecord | None:
    """The configuration's ``training.json`` if it exists, validates, is for ``config`` and its ``model.pt`` is
    the one it records (records before study schema 1.3 record none); else None."""
    storage = _config_storage(spec, config)
    if not storage.exists(TRAINING):
        return None
    try:
        record = TrainingRecord.model_validate_json(storage.get_bytes(TRAINING))
    except ValidationError:
        return None  # a damaged record does not count: the configuration is trained again
    if record.config != config:
        return None
    if record.model_sha256 is not None and (
            not storage.exists(MODEL) or hashlib.sha256(storage.get_bytes(MODEL)).hexdigest() != record.model_sha256):
        return None  # its model was replaced or damaged since
    return record


def train_config(spec: StudySpec, config: StudyConfig) -> TrainingRecord:
    """Train ``config`` on one torch thread and write ``configs/<hash>/model.pt``, then ``training.json``;
    a configuration whose record is committed is not trained again. Raises InputError for a bad data set."""
    existing = committed_record(spec, config)
    if existing is not None:
        return existing
    storage = _config_storage(spec, config)
    with tempfile.TemporaryDirectory(prefix="exactcompress-study-") as scratch:
        X_train, y_train, X_test, y_test = load_dataset(spec.dataset, Path(scratch))
        started = time.monotonic()
        regularization = Regularization(config.regularizer, config.strength, config.p, config.smoothing, config.a)
        n_classes = int(max(y_train.max(), y_test.max())) + 1
        input_shape = image_shape(config.dataset) if config.cnn else None
        if input_shape:
            X_train, X_test = X_train.reshape(-1, *input_shape), X_test.reshape(-1, *input_shape)
            cnn_architecture = config.cnn
            model, losses = train_network(
                lambda: cnn(input_shape, cnn_architecture.channels, cnn_architecture.conv_strides,
                            cnn_architecture.dense, n_classes, cnn_architecture.kernel_size),
                X_train, y_train, regularization=regularization, seed=config.seed, epochs=config.epochs,
                batch_size=config.batch_size, lr=config.learning_rate)
        else:
            model, losses = train_mlp(
                X_train, y_train, config.hidden, regularization=regularization, seed=config.seed,
                epochs=config.epochs, batch_size=config.batch_size, lr=config.learning_rate, n_classes=n_classes,
            )
        seconds = time.monotonic() - started
        with torch_threads(1):
            train_accuracy, test_accuracy = accuracy(model, X_train, y_train), accuracy(model, X_test, y_test)
        save_state_dict(model, Path(scratch) / MODEL, input_shape=input_shape)
        if input_shape:  # the architecture file goes first: a model.pt is never there without it
            storage.upload(arch_path(Path(scratch) / MODEL), arch_path(Path(MODEL)).name)
        storage.upload(Path(scratch) / MODEL, MODEL)
        model_sha256 = hashlib.sha256((Path(scratch) / MODEL).read_bytes()).hexdigest()
    record = TrainingRecord(
        config=config, config_hash=config_hash(config), model_key=storage.url(MODEL), model_sha256=model_sha256,
        train_accuracy=train_accuracy, test_accuracy=test_accuracy, loss_curve=losses, seconds=seconds,
        torch=torch.__version__,
    )
    data = record.model_dump_json(indent=2).encode()
    if storage.put_if_absent(TRAINING, data):
        return record
    committed = committed_record(spec, config)  # a concurrent run committed first: its record, if it still counts
    if committed is None:
        storage.put_bytes(TRAINING, data)  # what was there does not count (its model.pt is ours now): replace it
    return committed or record


def study_domain(spec: StudySpec) -> DomainSpec:
    """The spec's domain, else ``checked_study_domain``'s."""
    return spec.domain if spec.domain is not None else checked_study_domain(spec)


def checked_study_domain(spec: StudySpec, spec_file: str = "study spec") -> DomainSpec:
    """The spec's domain, else ``[0, 1]`` for the digits sets, else the bounding box of the .npz's X_train (per
    feature). An .npz is read and checked even when the spec has a domain, and a domain (a box, or a file named
    by a full URL or absolute path) must have the data's features: otherwise an error before any work, one line
    ``"<spec_file>: field '<field>': <reason>"`` (InputError; the loader's own kind where a file is missing or
    storage fails)."""
    if isinstance(spec.dataset, NpzDataset):
        with tempfile.TemporaryDirectory(prefix="exactcompress-study-") as scratch, \
                naming_field(spec_file, "dataset.npz"):
            X_train = load_dataset(spec.dataset, Path(scratch))[0]
        features = X_train.shape[1]
        default = BoxDomainSpec(lower=X_train.min(axis=0).tolist(), upper=X_train.max(axis=0).tolist())
    else:
        features, default = math.prod(image_shape(spec.dataset)), IMAGE_BOX
    if spec.domain is None:
        return default
    domain = spec.domain
    if isinstance(domain, BoxDomainSpec):
        with naming_field(spec_file, "domain"):
            resolved = from_bounds(domain.lower, domain.upper, source="domain")
    elif "://" in domain.file or domain.file.startswith("/"):
        with naming_field(spec_file, "domain.file"):
            resolved = resolve_domain(domain, spec.output)
    else:
        return domain  # a key relative to each configuration's folder: checked by its task
    if resolved.dim not in (1, features):
        raise InputError(spec_file, f"field 'domain': has {resolved.dim} features but the data set has {features}")
    return domain


def compress_config(
    spec: StudySpec, config: StudyConfig, record: TrainingRecord, parallel_map: ParallelMap | None = None
) -> tuple[StudyRow, bool]:
    """Compress the configuration's model as the zoo job would (source ``configs/<hash>``, output
    ``compressed``), so a committed report is reused without solving. Returns its row and whether this
    call solved (False: the report was already there)."""
    output = open_storage(spec.output)
    source_root = _config_storage(spec, config).url()
    job = ZooJobSpec(
        source=source_root, output=output.child(COMPRESSED).url(), domain=study_domain(spec), method=spec.method,
        time_limit_s=spec.time_limit_s, fallback_tasks=spec.fallback_tasks, cpus_per_task=spec.cpus_per_task,
    )
    outcome = run_model_task(ModelTask(source_root=source_root, key=MODEL, domain=job.domain, spec=job),
                             parallel_map=parallel_map)
    result = outcome.result
    reports, report_key = split_url(result.report_key)
    counts = CompressionReport.model_validate_json(reports.get_bytes(report_key)).counts()
    row = StudyRow(
        **_identity(config), test_accuracy=record.test_accuracy, stably_active=counts["stably_active"],
        stably_inactive=counts["stably_inactive"], neurons_before=result.neurons_before,
        neurons_after=result.neurons_after, parameters_before=result.parameters_before,
        parameters_after=result.parameters_after, status=result.status, error=result.error, method=spec.method,
        solve_seconds=result.seconds, training_seconds=record.seconds, model_key=record.model_key,
        report_key=result.report_key, neurons_after_if_settled=result.neurons_after_if_settled,
    )
    return row, outcome.analysed


def _identity(config: StudyConfig) -> dict:
    return dict(config_hash=config_hash(config), regularizer=config.regularizer, strength=config.strength,
                hidden=config.hidden, seed=config.seed, architecture=config.cnn.label if config.cnn else None,
                p=config.p, smoothing=config.smoothing, a=config.a,
                kernel_size=config.cnn.kernel_size if config.cnn else None)


def image_shape(dataset: str) -> tuple[int, int, int]:
    """(C, H, W) of one image of a bundled digits data set (ValueError for another data set)."""
    shapes = {"digits": (1, 8, 8), **{name: (channels, side, side) for name, (side, channels) in UPSAMPLED.items()}}
    if dataset not in shapes:
        raise ValueError(f"no image shape for data set {dataset!r}")
    return shapes[dataset]


@dataclass(frozen=True)
class ConfigOutcome:
    """One configuration's row, and what this run did for it (False: reused from storage)."""

    row: StudyRow
    trained: bool
    analysed: bool


def run_config(spec: StudySpec, config: StudyConfig, parallel_map: ParallelMap | None = None) -> ConfigOutcome:
    """Train (unless committed), then compress (unless committed) one configuration."""
    record = committed_record(spec, config)
    trained = record is None
    row, analysed = compress_config(spec, config, record or train_config(spec, config), parallel_map)
    return ConfigOutcome(row=row, trained=trained, analysed=analysed)


def failed_row(spec: StudySpec, config: StudyConfig, reason: str) -> StudyRow:
    """The row of a configuration whose task failed (after retries)."""
    return StudyRow(**_identity(config), status="failed", error=reason, method=spec.method)


def _row_order(row: StudyRow) -> tuple:
    settings = tuple(value or 0.0 for value in (row.p, row.smoothing, row.a))  # each > 0 where set
    return (get_args(PenaltyKind).index(row.regularizer), settings, row.strength, row.architecture or "", row.hidden,
            row.seed, row.config_hash)


def summarize_study(spec: StudySpec, rows: list[StudyRow]) -> StudyResult:
    """The study's result: rows sorted by regulariser (none, l1, lp, tl1, group-l1) and its p, smoothing or a,
    strength, architecture and seed."""
    return StudyResult(spec=spec, versions=versions(), rows=sorted(rows, key=_row_order))


def write_study(storage: Storage, result: StudyResult) -> str:
    """Write the figures, ``study.csv``, ``study.md``, ``study.html`` and, last, ``study.json`` into
    ``storage``; returns the URL of ``study.html``. The same result gives byte-identical files."""
    figures = study_figures(result)
    for name, png in figures.items():
        storage.put_bytes(name, png)
    storage.put_bytes("study.csv", render_study_csv(result).encode())
    storage.put_bytes("study.md", render_study_markdown(result, list(figures)).encode())
    storage.put_bytes("study.html", render_study_html(result, figures).encode())
    storage.put_bytes(STUDY, result.model_dump_json(indent=2).encode())
    return storage.url("study.html")

"""Zoo jobs: the spec file (``ZooJobSpec``), manifests, the task handed to a worker, ``summary.json``
(``ZooSummary``), and the ledger and leases of incremental runs."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from .common import (
    JOB_SCHEMA_VERSION,
    SUMMARY_SCHEMA_VERSION,
    Device,
    Method,
    SaveFormat,
    Status,
    Strict,
    checked_location,
)
from .report import Versions

#: the longest time limit or lease a spec may give (30 days): larger values would not survive a lease's expiry
MAX_SECONDS = 30 * 24 * 3600.0
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: a storage location (s3://…, file://… or a local path); s3:// URLs name a valid bucket
Location = Annotated[str, AfterValidator(checked_location)]


class BoxDomainSpec(Strict):
    """A box: scalars apply to every input feature, lists give one bound per feature (finite, lower <= upper)."""

    lower: FiniteFloat | list[FiniteFloat] = 0.0
    upper: FiniteFloat | list[FiniteFloat] = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> "BoxDomainSpec":
        lower = self.lower if isinstance(self.lower, list) else [self.lower]
        upper = self.upper if isinstance(self.upper, list) else [self.upper]
        if len(lower) > 1 and len(upper) > 1 and len(lower) != len(upper):
            raise ValueError(f"lower has {len(lower)} entries but upper has {len(upper)}")
        width = max(len(lower), len(upper))
        lower, upper = (side * width if len(side) == 1 else side for side in (lower, upper))
        if any(low > high for low, high in zip(lower, upper)):
            raise ValueError("lower must not exceed upper")
        return self


class FileDomainSpec(Strict):
    """A per-feature domain file: .npy (2, d) lower/upper rows, JSON {lower, upper} or JSON {points, epsilon}."""

    file: Location = Field(description="s3://…, file://… or a local path; relative keys are read from the job's source")


def _domain_kind(value: Any) -> str:
    fields = value if isinstance(value, dict) else vars(value)
    return "file" if "file" in fields else "box"


DomainSpec = Annotated[
    Union[Annotated[BoxDomainSpec, Tag("box")], Annotated[FileDomainSpec, Tag("file")]],
    Discriminator(_domain_kind),
]


class ManifestEntry(Strict):
    key: str = Field(description="model key relative to the manifest's root")
    domain: DomainSpec | None = Field(None, description="overrides the job's default domain for this model")


class Manifest(Strict):
    """A manifest file (YAML or JSON): the models of a job, each with an optional domain override."""

    root: Location | None = Field(None, description="prefix the keys are relative to (default: the manifest's folder)")
    models: list[ManifestEntry] = Field(min_length=1, description="each key at most once")

    @model_validator(mode="after")
    def _unique_keys(self) -> "Manifest":
        keys = [entry.key for entry in self.models]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"keys listed more than once: {repeated}")
        return self


class ManifestSource(Strict):
    manifest: Location = Field(description="s3://…, file://… or local path of a Manifest file")


class ZooJobSpec(Strict):
    """A zoo job: compress every model of ``source`` and write results under ``output``."""

    schema_version: str = JOB_SCHEMA_VERSION
    source: Location | ManifestSource = Field(
        description="a prefix (s3://bucket/prefix, file://… or a local path): every .pt, .pth, .ckpt (since 1.4), "
        ".safetensors and .onnx under it is a model; or {manifest: …}"
    )
    output: Location = Field(description="prefix the results are written under (s3://…, file://… or a local path)")
    domain: DomainSpec = Field(default_factory=BoxDomainSpec, description="default input domain of every model")
    method: Method = "auto"
    device: Device = Field("auto", description="where branch and bound computes its batched bounds: auto (cuda when "
                           "a GPU is visible to the task), cpu or cuda; proofs are float64 either way (since 1.2)")
    time_limit_s: float | None = Field(300.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False,
                                       description="analysis seconds per model (at most 30 days); null: no limit")
    verify_samples: int = Field(100_000, ge=0, description="uniform random inputs on which each compressed model is "
                                "checked against its original, besides box corners, witnesses and data rows (since 1.3)")
    retries: int = Field(2, ge=0, le=20, description="re-runs of a model's task after a system failure (lost worker)")
    cpus_per_task: float = Field(1.0, gt=0, description="Ray CPUs reserved by each model's task")
    fallback_tasks: int = Field(
        2, ge=1, le=256, description="per-neuron solves of one layer fan out over this many Ray tasks"
    )
    formats: list[SaveFormat] = Field(default_factory=lambda: ["torch"], min_length=1)
    max_model_bytes: int = Field(256 * 2**20, gt=0, description="larger model files fail with a clear reason")
    data: Location | None = Field(
        None, description="extra witness candidates, .npy (n, d), used for models with d inputs (speed only; "
        "relative keys are read from the job's source)"
    )
    seed: int = 0
    lease_s: float | None = Field(
        None, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="incremental runs: seconds a run holds a model before another run may take it "
        "over; null: 2 × time_limit_s + 600, or 24 h without a time limit (since 1.1)"
    )


class ModelTask(Strict):
    """What the driver hands one worker: where the model is and how to analyse it (keys, never bytes)."""

    source_root: str = Field(description="URL of the prefix the model key is relative to")
    key: str
    domain: DomainSpec
    spec: ZooJobSpec


class ZooModelResult(Strict):
    """One model of a zoo job, as summarised from its report."""

    source_key: str = Field(description="the model's key (URL) in the source")
    sha256: str | None = Field(None, description="sha256 of the model file's bytes")
    status: Status
    error: str | None = None
    report_key: str | None = Field(None, description="URL of report.json (absent only if the task never wrote one)")
    compressed_key: str | None = Field(None, description="URL of the compressed model (first requested format)")
    seconds: float = Field(0.0, description="the engine's wall seconds for this model (report's seconds.total)")
    neurons_before: int = 0
    neurons_after: int = 0
    parameters_before: int = 0
    parameters_after: int = 0
    settled_by: dict[str, int] = Field(default_factory=dict, description="neurons settled by each step")
    undecided: int = 0
    neurons_after_if_settled: int | None = Field(
        None, description="the report's if_undecided_settled.neurons_after: neurons left had every undecided one "
        "been settled as its open question asks (the most a longer run could remove); null when none is undecided "
        "or the report predates report schema 1.9 (since 1.3)")
    channels_before: int | None = Field(None, description="a CNN's conv output channels, summed over its conv layers "
                                        "(None for an MLP) (since 1.2)")
    channels_after: int | None = Field(None, description="the same after compression (channels stably inactive at "
                                       "every position removed) (since 1.2)")


class ZooTotals(Strict):
    models: int
    exact: int
    partial: int
    failed: int
    neurons_before: int
    neurons_after: int
    parameters_before: int
    parameters_after: int
    engine_seconds: float
    in_progress_elsewhere: int = Field(
        0, description="incremental runs: models another run was compressing (not failures; not in `models`) (since 1.1)"
    )


class LeaseElsewhere(Strict):
    """A model an incremental run left alone because another run held its lease (since summary 1.2)."""

    source_key: str = Field(description="the model's key (URL) in the source")
    holder: str = Field(description="the run that holds the lease (random id)")
    expires_at: float = Field(description="when the lease expires, epoch seconds (UTC); after it, a run takes the "
                              "model over (or at once with `zoo run --incremental --take-over-leases`)")


class RedoneModel(Strict):
    """A model whose committed report did not count and was done again (since summary 1.2)."""

    source_key: str = Field(description="the model's key (URL) in the source")
    report_key: str = Field(description="URL of the report that did not count (now replaced)")
    reason: str = Field(description="why: e.g. an output missing or changed, a report that does not validate or "
                        "that claims other settings than its folder stands for")


class ZooSummary(Strict):
    """``summary.json``: written last at the output prefix; a pure function of the spec and the reports."""

    schema_version: str = SUMMARY_SCHEMA_VERSION
    spec: ZooJobSpec
    versions: Versions
    models: list[ZooModelResult]
    totals: ZooTotals
    in_progress_elsewhere: list[str] = Field(
        default_factory=list, description="source keys of the models another run was compressing; that run's or "
        "the next run's summary has their rows (since 1.1)"
    )
    leases_elsewhere: list[LeaseElsewhere] = Field(
        default_factory=list, description="the same models with the lease that kept this run off them (since 1.2)")
    redone: list[RedoneModel] = Field(
        default_factory=list, description="models whose committed report did not count and that this run did "
        "again, with why (since 1.2)")
    domain_overrides: list[str] = Field(
        default_factory=list, description="source keys of the models whose manifest entry names a domain other than "
        "the spec's `domain` (each report records the domain it used) (since 1.4)")


# --- incremental zoo runs ------------------------------------------------------------------------------

LEDGER_SCHEMA_VERSION = "1.1"


class LedgerEntry(Strict):
    """One model an incremental run finished (its report is committed)."""

    sha256: str = Field(description="sha256 of the model file's bytes")
    source_key: str = Field(description="the model's key (URL) in the source")
    report_key: str = Field(description="its committed report, relative to the output prefix: runs/…/report.json")
    status: Status
    finished_at: str = Field(description="UTC time, ISO 8601")
    source_fingerprint: str | None = Field(
        None, description="the source object's version as read (S3: ETag, size, Last-Modified; local: sha256): "
        "a later run skips that version without downloading it (with an architecture file: both files' versions)"
    )
    arch_sha256: str | None = Field(
        None, description="sha256 of the architecture file NAME.arch.json read with a state dict, if any "
        "(since ledger 1.1)"
    )


class ZooLedger(Strict):
    """``ledger.json`` at the output prefix: the content hashes done by incremental runs (append-only)."""

    schema_version: str = LEDGER_SCHEMA_VERSION
    entries: list[LedgerEntry] = Field(default_factory=list)


class Lease(Strict):
    """``leases/<sha16>/<run folder>.json``: a run holds a model until ``expires_at`` (epoch seconds, UTC)."""

    holder: str = Field(description="the run that holds the lease (random id)")
    sha256: str
    expires_at: float

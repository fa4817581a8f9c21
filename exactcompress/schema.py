"""Every pydantic model at a boundary of the tool: reports, job specs, summaries.

``CompressionReport`` is the contract of ``report.json``, ``ZooJobSpec`` of a zoo job spec file and
``ZooSummary`` of ``summary.json``: fields are only ever added, never renamed, and each schema version
changes with every addition (minor) or incompatible change (major).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

REPORT_SCHEMA_VERSION = "1.1"
JOB_SCHEMA_VERSION = "1.1"
SUMMARY_SCHEMA_VERSION = "1.1"
MODEL_SUFFIXES = (".pt", ".pth", ".safetensors", ".onnx")

Method = Literal["auto", "per-neuron", "milp"]
Status = Literal["exact", "partial", "failed"]
SaveFormat = Literal["torch", "safetensors", "onnx"]
Settler = Literal["bounds", "witnesses", "per-neuron", "single-milp"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(Strict):
    """The analysed network as loaded."""

    name: str
    path: str
    sha256: str = Field(description="sha256 of the model file's bytes (or of the float64 weights for in-memory networks)")
    format: str = Field(description="torch | safetensors | onnx | sequential")
    dtype: str
    input_dim: int
    hidden_widths: list[int]
    output_dim: int


class BoxRecord(Strict):
    lower: list[float]
    upper: list[float]


class DomainRecord(Strict):
    """The input domain the results hold on: a union of boxes."""

    kind: Literal["box", "data", "linf-balls"]
    source: str = Field(description="the CLI flags or file the domain came from")
    n_boxes: int
    margin: float | None = None
    epsilon: float | None = None
    union_semantics: str
    scalar_lower: float | None = Field(None, description="set when every feature of every box has the same lower bound")
    scalar_upper: float | None = None
    boxes: list[BoxRecord] = Field(description="every box; at most 16 are listed in full (see n_boxes)")


class LayerReport(Strict):
    """One hidden layer of the *original* network, 0-based; neuron indices are 0-based."""

    index: int
    width: int
    stably_active: list[int]
    stably_inactive: list[int]
    unstable: list[int]
    undecided: list[int]
    settled_by: dict[Settler, list[int]] = Field(
        default_factory=dict, description="which step settled each stable or unstable neuron"
    )


class VerificationReport(Strict):
    """Original vs compressed network on sampled inputs, float64."""

    n_inputs: int
    max_abs_error: float
    max_rel_error: float = Field(description="max |y - y'| / (1 + |y|) over inputs and outputs")
    tolerance: float = Field(description="passes when every |y - y'| <= tolerance * (1 + |y|)")
    passed: bool
    saved_dtype: str
    max_abs_error_saved_dtype: float | None = Field(
        None, description="the same comparison after casting the compressed weights to the saved dtype"
    )


class SolverStats(Strict):
    """SCIP work over the whole analysis (per-neuron solves and the single MILP together)."""

    solves: int = 0
    nodes: int = 0
    lp_iterations: int = 0
    seconds: float = 0.0
    solutions_harvested: int = Field(0, description="single MILP: candidate solutions evaluated in float64 (since 1.1)")
    lp_points_harvested: int = Field(0, description="single MILP: LP / heuristic points evaluated in float64 (since 1.1)")
    states_fixed: int = Field(0, description="single MILP: neuron states removed from the objective once seen (since 1.1)")
    open_states: int = Field(0, description="single MILP: neuron states it started with (since 1.1)")
    single_milp_finished: bool | None = Field(None, description="single MILP: its dual bound proved every open state impossible (since 1.1)")
    dual_trace: list[tuple[float, float]] = Field(
        default_factory=list, description="single MILP: (seconds, dual bound) pairs, thinned (since 1.1)"
    )


class Tolerances(Strict):
    """Every numerical threshold that a decision depends on."""

    witness_margin: float = Field(description="a witness shows a sign only if sign * g(x) > witness_margin (float64)")
    bound_margin: float = Field(description="a bound proves stability only if U <= -bound_margin or L >= bound_margin")
    milp_margin: float = Field(description="a MILP proves stability only if its dual bound is beyond -milp_margin")
    scip_feastol: float
    scip_dualfeastol: float
    rank_rtol: float = Field(description="singular values below rank_rtol * s_max count as zero")
    fold_atol: float = Field(description="a fold is applied only if max |W_D - K W_I| <= fold_atol * (1 + max |W|)")


class Versions(Strict):
    exactcompress: str
    python: str
    numpy: str
    torch: str
    pyscipopt: str
    scip: str


class Outputs(Strict):
    compressed: list[str] = Field(description="compressed model file names in the output directory")
    witnesses: str | None = None
    report_md: str | None = None
    report_html: str | None = None


class CompressionReport(Strict):
    """Everything one ``exactcompress compress`` run found and wrote."""

    schema_version: str = REPORT_SCHEMA_VERSION
    model: ModelInfo | None = None
    model_path: str
    domain: DomainRecord | None = None
    method: Method
    status: Status
    error: str | None = Field(None, description="one-line reason when status is 'failed'")
    time_limit_s: float | None = None
    policy: str | None = Field(None, description="what --method auto chose for this network and why (since 1.1)")
    time_limit_reached: bool = Field(False, description="some MILP was cut by --time-limit (its neurons are undecided)")
    workers: int = 1
    layers: list[LayerReport] = Field(default_factory=list)
    neurons_before: int = 0
    neurons_after: int = 0
    parameters_before: int = 0
    parameters_after: int = 0
    hidden_widths_after: list[int] = Field(default_factory=list)
    verification: VerificationReport | None = None
    seconds: dict[str, float] = Field(default_factory=dict, description="wall seconds per stage and 'total'")
    milp: SolverStats = Field(default_factory=SolverStats)
    tolerances: Tolerances | None = None
    versions: Versions
    outputs: Outputs | None = None

    def counts(self) -> dict[str, int]:
        """Neurons per state over all hidden layers."""
        keys = ("stably_active", "stably_inactive", "unstable", "undecided")
        return {key: sum(len(getattr(layer, key)) for layer in self.layers) for key in keys}


# --- zoo jobs ------------------------------------------------------------------------------------------


class BoxDomainSpec(Strict):
    """A box: scalars apply to every input feature, lists give one bound per feature."""

    lower: float | list[float] = 0.0
    upper: float | list[float] = 1.0


class FileDomainSpec(Strict):
    """A per-feature domain file: .npy (2, d) lower/upper rows, JSON {lower, upper} or JSON {points, epsilon}."""

    file: str = Field(description="s3://…, file://… or a local path; relative keys are read from the job's source")


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

    root: str | None = Field(None, description="prefix the keys are relative to (default: the manifest's folder)")
    models: list[ManifestEntry] = Field(min_length=1)


class ManifestSource(Strict):
    manifest: str = Field(description="s3://…, file://… or local path of a Manifest file")


class ZooJobSpec(Strict):
    """A zoo job: compress every model of ``source`` and write results under ``output``."""

    schema_version: str = JOB_SCHEMA_VERSION
    source: str | ManifestSource = Field(
        description="a prefix (s3://bucket/prefix, file://… or a local path): every .pt, .pth, .safetensors and "
        ".onnx under it is a model; or {manifest: …}"
    )
    output: str = Field(description="prefix the results are written under (s3://…, file://… or a local path)")
    domain: DomainSpec = Field(default_factory=BoxDomainSpec, description="default input domain of every model")
    method: Method = "auto"
    time_limit_s: float | None = Field(300.0, gt=0, description="analysis seconds per model; null: no limit")
    retries: int = Field(2, ge=0, le=20, description="re-runs of a model's task after a system failure (lost worker)")
    cpus_per_task: float = Field(1.0, gt=0, description="Ray CPUs reserved by each model's task")
    fallback_tasks: int = Field(
        2, ge=1, le=256, description="per-neuron solves of one layer fan out over this many Ray tasks"
    )
    formats: list[SaveFormat] = Field(default_factory=lambda: ["torch"], min_length=1)
    max_model_bytes: int = Field(256 * 2**20, gt=0, description="larger model files fail with a clear reason")
    data: str | None = Field(
        None, description="extra witness candidates, .npy (n, d), used for models with d inputs (speed only; "
        "relative keys are read from the job's source)"
    )
    seed: int = 0
    lease_s: float | None = Field(
        None, gt=0, description="incremental runs: seconds a run holds a model before another run may take it "
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


# --- incremental zoo runs ------------------------------------------------------------------------------

LEDGER_SCHEMA_VERSION = "1.0"


class LedgerEntry(Strict):
    """One model an incremental run finished (its report is committed)."""

    sha256: str = Field(description="sha256 of the model file's bytes")
    source_key: str = Field(description="the model's key (URL) in the source")
    report_key: str = Field(description="its committed report, relative to the output prefix: runs/…/report.json")
    status: Status
    finished_at: str = Field(description="UTC time, ISO 8601")
    source_fingerprint: str | None = Field(
        None, description="the source object's version as read (S3: ETag, size, Last-Modified; local: sha256): "
        "a later run skips that version without downloading it"
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


# --- hyperparameter studies ----------------------------------------------------------------------------

STUDY_SCHEMA_VERSION = "1.0"


class NoRegularizer(Strict):
    kind: Literal["none"]


class L1Regularizer(Strict):
    """strength · Σ|w| over the weight matrices (not biases)."""

    kind: Literal["l1"]
    strengths: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)


class LpRegularizer(Strict):
    """strength · Σ (|w| + smoothing)^p, 0 < p < 1 (smoothed near 0 so its gradient stays finite)."""

    kind: Literal["lp"]
    strengths: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)
    p: float = Field(0.5, gt=0, lt=1)
    smoothing: float = Field(1e-3, gt=0)


class TransformedL1Regularizer(Strict):
    """strength · Σ (a + 1)|w| / (a + |w|) (transformed L1)."""

    kind: Literal["tl1"]
    strengths: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)
    a: float = Field(1.0, gt=0)


RegularizerSpec = Annotated[
    Union[NoRegularizer, L1Regularizer, LpRegularizer, TransformedL1Regularizer], Field(discriminator="kind")
]


class NpzDataset(Strict):
    """A user data set: .npz with X_train, y_train, X_test, y_test (X: (n, d) floats, y: integer labels)."""

    npz: str = Field(description="s3://…, file://… or local path")


class StudySpec(Strict):
    """A study: every architecture × regulariser strength × seed is trained, then compressed exactly."""

    schema_version: str = STUDY_SCHEMA_VERSION
    dataset: Literal["digits", "digits-784"] | NpzDataset = "digits"
    architectures: list[list[Annotated[int, Field(ge=1)]]] = Field(min_length=1, description="hidden widths")
    regularizers: list[RegularizerSpec] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(1e-2, gt=0)
    output: str = Field(description="prefix for models, training records, reports and the study files")
    domain: DomainSpec | None = Field(None, description="default: the data's box ([0, 1] for the digits sets)")
    method: Method = "auto"
    time_limit_s: float | None = Field(120.0, gt=0)
    retries: int = Field(2, ge=0, le=20)
    cpus_per_task: float = Field(1.0, gt=0)
    fallback_tasks: int = Field(1, ge=1, le=256)


class StudyConfig(Strict):
    """One configuration; its hash (``config_hash``) keys everything it writes."""

    dataset: str = Field(description="digits | digits-784 | the .npz URL")
    hidden: list[int]
    regularizer: Literal["none", "l1", "lp", "tl1"]
    strength: float
    p: float | None = None
    smoothing: float | None = None
    a: float | None = None
    seed: int
    epochs: int
    batch_size: int
    learning_rate: float


class TrainingRecord(Strict):
    """``configs/<hash>/training.json``, written after the model: the configuration's training run."""

    config: StudyConfig
    config_hash: str
    model_key: str
    train_accuracy: float
    test_accuracy: float
    loss_curve: list[float] = Field(description="mean training loss (with the penalty) per epoch")
    seconds: float
    torch: str


class StudyRow(Strict):
    """One configuration in ``study.json`` / ``study.csv``."""

    config_hash: str
    regularizer: str
    strength: float
    hidden: list[int]
    seed: int
    test_accuracy: float | None = None
    stably_active: int = 0
    stably_inactive: int = 0
    neurons_before: int = 0
    neurons_after: int = 0
    parameters_before: int = 0
    parameters_after: int = 0
    status: Status
    error: str | None = None
    method: Method
    solve_seconds: float = 0.0
    training_seconds: float = 0.0
    model_key: str | None = None
    report_key: str | None = None


class StudyResult(Strict):
    """``study.json``: written last at the output prefix."""

    schema_version: str = STUDY_SCHEMA_VERSION
    spec: StudySpec
    versions: Versions
    rows: list[StudyRow]

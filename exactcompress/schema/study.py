"""Hyperparameter studies: the spec file (``StudySpec``), one configuration, its training record, and
``study.json`` (``StudyResult``)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .common import Method, Status, Strict
from .job import DomainSpec
from .report import Versions

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
    dataset: Literal["digits", "digits-784", "digits-3072"] | NpzDataset = "digits"
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

    dataset: str = Field(description="digits | digits-784 | digits-3072 | the .npz URL")
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

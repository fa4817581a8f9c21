"""Hyperparameter studies: the spec file (``StudySpec``), one configuration, its training record, and
``study.json`` (``StudyResult``)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .common import Method, Status, Strict
from .job import DomainSpec
from .report import Versions

STUDY_SCHEMA_VERSION = "1.4"


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


class GroupL1Regularizer(Strict):
    """strength · (Σ over conv output channels of the filter's L2 norm + Σ|w| over Linear weights): it empties
    whole filters, which makes whole channels stably inactive (since 1.1; on an MLP it is plain L1)."""

    kind: Literal["group-l1"]
    strengths: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)


RegularizerSpec = Annotated[
    Union[NoRegularizer, L1Regularizer, LpRegularizer, TransformedL1Regularizer, GroupL1Regularizer],
    Field(discriminator="kind"),
]


class CnnArchitecture(Strict):
    """A CNN: a ``kernel_size`` convolution (padding ``kernel_size // 2``) per entry of ``channels`` with the
    matching stride, each followed by a ReLU, then Flatten and dense ReLU layers of widths ``dense`` (since 1.1).
    Its input is one digits image (1×8×8, 1×28×28, or 3×32×32 for digits-3072)."""

    kind: Literal["cnn"]
    channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, description="output channels per conv layer")
    strides: list[Annotated[int, Field(ge=1)]] | None = Field(None, description="per conv layer; default all 1")
    kernel_size: int = Field(3, ge=1, le=7)
    dense: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list, description="dense widths after Flatten")

    @model_validator(mode="after")
    def _strides_match(self) -> "CnnArchitecture":
        if self.strides is not None and len(self.strides) != len(self.channels):
            raise ValueError(f"strides has {len(self.strides)} entries, channels {len(self.channels)}")
        return self

    @property
    def conv_strides(self) -> list[int]:
        return self.strides if self.strides is not None else [1] * len(self.channels)

    @property
    def label(self) -> str:
        """``conv8s1-conv16s2-64``: what tables and figures call it; a kernel size other than 3 is named too
        (``conv8k5s1-64``, since study schema 1.4)."""
        kernel = "" if self.kernel_size == 3 else f"k{self.kernel_size}"
        return "-".join([*(f"conv{c}{kernel}s{s}" for c, s in zip(self.channels, self.conv_strides)),
                         *map(str, self.dense)])


Architecture = Union[list[Annotated[int, Field(ge=1)]], CnnArchitecture]


class NpzDataset(Strict):
    """A user data set: .npz with X_train, y_train, X_test, y_test (X: (n, d) floats, y: integer labels)."""

    npz: str = Field(description="s3://…, file://… or local path")


class StudySpec(Strict):
    """A study: every architecture × regulariser strength × seed is trained, then compressed exactly."""

    schema_version: str = STUDY_SCHEMA_VERSION
    dataset: Literal["digits", "digits-784", "digits-3072"] | NpzDataset = "digits"
    architectures: list[Architecture] = Field(
        min_length=1, description="hidden widths of an MLP, or a CNN ({kind: cnn, channels, strides, dense}, since 1.1)")
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

    @model_validator(mode="after")
    def _cnn_needs_images(self) -> "StudySpec":
        if isinstance(self.dataset, NpzDataset) and any(isinstance(a, CnnArchitecture) for a in self.architectures):
            raise ValueError("a cnn architecture needs an image data set (digits, digits-784, digits-3072), "
                             "not an .npz of flat features")
        return self


class StudyConfig(Strict):
    """One configuration; its hash (``config_hash``) keys everything it writes."""

    dataset: str = Field(description="digits | digits-784 | digits-3072 | the .npz URL")
    dataset_sha256: str | None = Field(
        None, description="an .npz data set's sha256 when the study was planned: a changed file is another "
        "configuration, trained again (since 1.3)")
    hidden: list[int] = Field(description="hidden widths (a CNN: its dense widths after Flatten)")
    cnn: CnnArchitecture | None = Field(None, description="set for a CNN (since 1.1)")
    regularizer: Literal["none", "l1", "lp", "tl1", "group-l1"]
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
    model_sha256: str | None = Field(
        None, description="sha256 of model.pt as written: a record whose model.pt no longer matches does not count, "
        "and the configuration is trained again (since 1.3)")
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
    architecture: str | None = Field(None, description="a CNN's label (conv8s1-conv16s2-64); None for an MLP, "
                                     "named by hidden (since 1.1)")
    neurons_after_if_settled: int | None = Field(
        None, description="for a partial configuration: neurons left had every undecided neuron been settled as "
        "its open question asks, so neurons_after is what was proved and this the most a longer run could reach "
        "(the report's if_undecided_settled; since 1.2)")
    p: float | None = Field(None, description="the lp regulariser's p (since 1.4)")
    smoothing: float | None = Field(None, description="the lp regulariser's smoothing (since 1.4)")
    a: float | None = Field(None, description="the tl1 regulariser's a (since 1.4)")
    kernel_size: int | None = Field(None, description="a CNN's kernel size; None for an MLP (since 1.4)")


class StudyResult(Strict):
    """``study.json``: written last at the output prefix."""

    schema_version: str = STUDY_SCHEMA_VERSION
    spec: StudySpec
    versions: Versions
    rows: list[StudyRow]

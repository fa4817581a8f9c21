"""Every pydantic model at a boundary of the tool: reports, job specs, summaries.

``CompressionReport`` is the contract of ``report.json``, ``ZooJobSpec`` of a zoo job spec file and
``ZooSummary`` of ``summary.json``: fields are only ever added, never renamed, and each schema version
changes with every addition (minor) or incompatible change (major).
"""

from __future__ import annotations

from .arch import ARCH_SCHEMA_VERSION, ARCH_SUFFIX, ArchFile
from .common import (
    JOB_SCHEMA_VERSION,
    MODEL_SUFFIXES,
    REPORT_SCHEMA_VERSION,
    SUMMARY_SCHEMA_VERSION,
    Device,
    ErrorKind,
    Method,
    SaveFormat,
    Settler,
    Status,
    Strict,
)
from .job import (
    LEDGER_SCHEMA_VERSION,
    BoxDomainSpec,
    DomainSpec,
    FileDomainSpec,
    Lease,
    LeaseElsewhere,
    LedgerEntry,
    Manifest,
    ManifestEntry,
    ManifestSource,
    ModelTask,
    RedoneModel,
    ZooJobSpec,
    ZooLedger,
    ZooModelResult,
    ZooSummary,
    ZooTotals,
)
from .report import (
    BabStats,
    BoxRecord,
    ChannelReport,
    CompressionReport,
    ConvLayerReport,
    DomainRecord,
    FileDigest,
    IfUndecidedSettled,
    LayerCompression,
    LayerReport,
    ModelInfo,
    Outputs,
    SolverStats,
    Tolerances,
    UndecidedNeuron,
    VerificationReport,
    Versions,
)
from .study import (
    STUDY_SCHEMA_VERSION,
    CnnArchitecture,
    GroupL1Regularizer,
    L1Regularizer,
    LpRegularizer,
    NoRegularizer,
    NpzDataset,
    RegularizerSpec,
    StudyConfig,
    StudyResult,
    StudyRow,
    StudySpec,
    TrainingRecord,
    TransformedL1Regularizer,
)

__all__ = [
    "ARCH_SCHEMA_VERSION", "ARCH_SUFFIX", "ArchFile",
    "BabStats", "BoxDomainSpec", "BoxRecord", "ChannelReport", "CompressionReport", "ConvLayerReport", "Device", "DomainRecord", "DomainSpec", "ErrorKind",
    "FileDomainSpec", "IfUndecidedSettled",
    "JOB_SCHEMA_VERSION", "L1Regularizer", "LEDGER_SCHEMA_VERSION", "LayerCompression", "LayerReport", "Lease",
    "LeaseElsewhere", "LedgerEntry",
    "LpRegularizer", "MODEL_SUFFIXES", "Manifest", "ManifestEntry", "ManifestSource", "Method", "ModelInfo",
    "ModelTask", "NoRegularizer", "NpzDataset", "FileDigest", "Outputs", "REPORT_SCHEMA_VERSION", "RedoneModel", "RegularizerSpec",
    "STUDY_SCHEMA_VERSION", "SUMMARY_SCHEMA_VERSION", "SaveFormat", "Settler", "SolverStats", "Status", "Strict",
    "StudyConfig", "StudyResult", "StudyRow", "StudySpec", "Tolerances", "TrainingRecord", "TransformedL1Regularizer", "UndecidedNeuron",
    "CnnArchitecture", "GroupL1Regularizer",
    "Versions", "VerificationReport", "ZooJobSpec", "ZooLedger", "ZooModelResult", "ZooSummary", "ZooTotals",
]

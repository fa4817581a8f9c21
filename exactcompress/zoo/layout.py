"""Where one model's outputs go under a zoo job's ``output`` prefix (content addressed, so the same input
always maps to the same place and a re-run finds it):

    runs/<sha256 of the model file, 16 hex>/<method>-<settings hash, 12 hex>-v<package version>/
        compressed.pt …, witnesses.npz, report.md, report.html, report_layers.png, report.json (last)
    summary_*.png, summary.md, summary.html, summary.json (last)

The settings hash covers the domain's bounds, the time limit, the formats, the seed and a non-default
``verify_samples``. A model that failed before its domain resolved or its file was read has its failed report
under a settings hash of the reason and of the spec's inputs (``failure_digest``), so only a run that fails the
same way on the same inputs reuses it.
"""

from __future__ import annotations

import hashlib
import json

from .. import __version__
from ..engine.domain import Domain
from ..engine.verify import DEFAULT_SAMPLES
from ..schema import ModelTask
from ..storage import safe_key

#: what the domain digest of a model whose domain or model never resolved begins with (``failure_digest``)
UNRESOLVED = "unresolved"


def domain_digest(domain: Domain) -> str:
    """sha256 (hex) of a resolved domain, as given (before broadcasting): kind, epsilon, margin, box bytes."""
    digest = hashlib.sha256(f"{domain.kind}|{domain.epsilon}|{domain.margin}".encode())
    for box in domain.boxes:
        digest.update(box.lower.tobytes())
        digest.update(box.upper.tobytes())
    return digest.hexdigest()


def settings_digest(domain: Domain, arch_sha256: str | None) -> str:
    """``domain_digest``, joined with the sha256 of the model's architecture file when it has one (another
    architecture file is another model: its reports are never reused across them)."""
    digest = domain_digest(domain)
    return digest if arch_sha256 is None else hashlib.sha256(f"{digest}|arch:{arch_sha256}".encode()).hexdigest()


def failure_digest(task: ModelTask, reason: str) -> str:
    """The domain digest standing in for a model whose failure is committed before its domain resolved or its
    model was read: ``unresolved-`` and a hash of the reason and of the inputs it can stem from (the task's domain
    as the spec gives it, the spec's data file, the source root). A later run reuses that failure only when it
    would fail the same way on the same inputs, never one whose spec names another domain or data file."""
    inputs = json.dumps({"domain": task.domain.model_dump(mode="json"), "data": task.spec.data,
                         "source_root": task.source_root, "reason": reason}, sort_keys=True)
    return f"{UNRESOLVED}-{hashlib.sha256(inputs.encode()).hexdigest()[:16]}"


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

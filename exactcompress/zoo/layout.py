"""Where one model's outputs go under a zoo job's ``output`` prefix (content addressed, so the same input
always maps to the same place and a re-run finds it):

    runs/<sha256 of the model file, 16 hex>/<method>-<settings hash, 12 hex>-v<package version>/
        compressed.pt …, witnesses.npz, report.md, report.html, report_layers.png, report.json (last)
    summary_*.png, summary.md, summary.html, summary.json (last)

The settings hash covers the domain's bounds, the time limit, the formats, the seed and a non-default
``verify_samples``.
"""

from __future__ import annotations

import hashlib
import json

from .. import __version__
from ..engine.domain import Domain
from ..engine.verify import DEFAULT_SAMPLES
from ..schema import ModelTask
from ..storage import safe_key

#: the domain digest of a model whose domain or model never resolved (its failure is committed there)
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

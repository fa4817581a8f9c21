"""Whether a committed ``report.json`` counts: a model is done only when its report validates, every output it
lists is there as recorded (so are its pages and the figures report.md links), and the report agrees with itself
and with the settings its folder stands for.

Anything else (a torn or edited report, a missing or changed output, a report that claims other settings than
its folder's) does not count: the model is done again and the summary lists why (``ZooSummary.redone``).
These checks catch damage and stray edits; they are not a signature (whoever can write the output can also
write a consistent report).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from .. import __version__
from ..engine.domain import Domain
from ..errors import InputError
from ..io.save import FILE_NAMES
from ..reports.report import REPORT_HTML, REPORT_MD, linked_figures
from ..schema import CompressionReport, ZooJobSpec
from ..storage import Storage


@dataclass(frozen=True)
class Committed:
    """What is at a report key: ``report`` when it counts; otherwise ``rejected`` says why a report that is
    there does not (both None: no report yet)."""

    report: CompressionReport | None
    rejected: str | None = None


def read_committed(output: Storage, key: str, spec: ZooJobSpec, domain: Domain | None) -> Committed:
    """The report at ``key`` (``runs/<sha16>/<run folder>/report.json``) if it counts for a model of ``spec``
    whose domain resolved to ``domain`` (None: it did not resolve)."""
    if not output.exists(key):
        return Committed(None)
    try:
        report = CompressionReport.model_validate_json(output.get_bytes(key))
    except ValidationError:
        return Committed(None, "report.json does not validate")
    problem = (settings_mismatch(report, key, spec, domain) or inconsistency(report) or passing_failure(report)
               or changed_output(output, key, report))
    return Committed(None, problem) if problem else Committed(report)


#: failures that another run may not meet (out of memory, an LP solver's numerical trouble): tried again
PASSING_FAILURES = ("internal", "solver")


def passing_failure(report: CompressionReport) -> str | None:
    """Why a failed report is tried again: its error is of a kind in ``PASSING_FAILURES``; None otherwise (a bad
    input, a verification or soundness failure comes back the same)."""
    if report.status == "failed" and report.error_kind in PASSING_FAILURES:
        return f"it failed with an error of kind {report.error_kind}, which another run may not meet"
    return None


def settings_mismatch(report: CompressionReport, key: str, spec: ZooJobSpec, domain: Domain | None) -> str | None:
    """Why ``report`` does not belong at ``key`` (whose run folder ``spec`` and ``domain`` chose); None when it
    does. A domain is compared box by box when the report lists every box (it lists up to 16)."""
    claims = [("method", report.method, spec.method), ("time_limit_s", report.time_limit_s, spec.time_limit_s),
              ("version", report.versions.exactcompress, __version__)]
    if report.verification is not None and report.verification.n_samples is not None:
        claims.append(("verify_samples", report.verification.n_samples, spec.verify_samples))
    if report.outputs is not None:
        claims.append(("compressed files", report.outputs.compressed,
                       [FILE_NAMES[name] for name in dict.fromkeys(spec.formats)]))
    if report.model is not None:
        claims.append(("model sha256", report.model.sha256[:16], key.split("/")[1]))
    for name, claimed, expected in claims:
        if claimed != expected:
            return f"the report says {name} {claimed}, its folder stands for {expected}"
    if report.model is not None and report.domain is not None and domain is not None:
        try:
            widened = domain.broadcast(report.model.input_dim)
        except InputError:  # a domain an earlier version spread over the inputs, refused now
            return "the report's model does not take the domain its folder stands for"
        if not _same_domain(report, widened):
            return "the report's domain is not the one its folder stands for"
    return None


def _same_domain(report: CompressionReport, domain: Domain) -> bool:
    record = report.domain
    if (record.kind, record.n_boxes, record.margin, record.epsilon) != (domain.kind, len(domain.boxes), domain.margin,
                                                                        domain.epsilon):
        return False
    return len(record.boxes) < record.n_boxes or all(
        np.array_equal(listed.lower, box.lower) and np.array_equal(listed.upper, box.upper)
        for listed, box in zip(record.boxes, domain.boxes))


def inconsistency(report: CompressionReport) -> str | None:
    """Why ``report`` contradicts itself (status vs. undecided neurons and verification, neuron states vs.
    widths, listed outputs vs. recorded files); None when it does not."""
    if report.status == "failed":
        return None if report.error else "a failed report without a reason"
    if report.verification is None or not report.verification.passed or report.outputs is None:
        return f"status {report.status} without a passed verification and outputs"
    undecided = 0
    for position, layer in enumerate(report.layers):
        neurons = [*layer.stably_active, *layer.stably_inactive, *layer.unstable, *layer.undecided]
        if layer.index != position or sorted(neurons) != list(range(layer.width)):
            return f"hidden layer {position}'s neuron states do not partition its {layer.width} neurons"
        undecided += len(layer.undecided)
    if (report.status == "exact") != (undecided == 0):
        return f"status {report.status} with {undecided} undecided neurons"
    widths = [layer.width for layer in report.layers]
    if report.model is None or report.model.hidden_widths != widths or report.neurons_before != sum(widths):
        return "neurons_before does not match the model's hidden widths"
    if report.neurons_after != sum(report.hidden_widths_after):
        return "neurons_after does not match hidden_widths_after"
    listed = [*report.outputs.compressed, *([report.outputs.witnesses] if report.outputs.witnesses else [])]
    if not set(listed) <= set(report.outputs.files):
        return "an output it lists has no recorded size and sha256"
    return None


def changed_output(output: Storage, key: str, report: CompressionReport) -> str | None:
    """Which output listed in ``outputs.files`` is missing or differs from its recorded size and sha256, or which
    report page or figure that report.md links is missing (the pages it lists; a failed report lists none, and has
    report.md and report.html)."""
    folder = key.rpartition("/")[0]
    pages = [report.outputs.report_md, report.outputs.report_html] if report.outputs else [REPORT_MD, REPORT_HTML]
    for name in filter(None, [*pages, *linked_figures(report)]):
        if not output.exists(f"{folder}/{name}" if folder else name):
            return f"{name} is missing"
    for name, digest in (report.outputs.files.items() if report.outputs else ()):
        file_key = f"{folder}/{name}" if folder else name
        if not output.exists(file_key):
            return f"{name} is missing"
        if output.size(file_key) != digest.bytes or hashlib.sha256(output.get_bytes(file_key)).hexdigest() != digest.sha256:
            return f"{name} differs from its recorded size and sha256"
    return None

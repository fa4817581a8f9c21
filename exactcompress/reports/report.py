"""Human-readable views of ``CompressionReport``: report.md, a self-contained report.html, PNG figures.

Markdown and HTML are built from the same section data (``_sections``), so they always agree.
Figures are drawn with Pillow (``raster``): every compress run draws them, and matplotlib's import alone
cost more than the rest of the report.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import get_args

from ..schema import CompressionReport, LayerCompression, Settler
from .common import (
    Table,
    html_img,
    html_page,
    html_table,
    md_cell,
    md_table,
)
from .raster import stacked_bars_png, step_line_png

#: written last: a folder holding a valid report.json is a finished run
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
LAYER_FIGURE = "report_layers.png"
CONVERGENCE_FIGURE = "report_dual_bound.png"

#: neuron state → (label, colour); the order is the stacking order of the bars
STATE_STYLE: dict[str, tuple[str, str]] = {
    "stably_active": ("stably active", "#2a9d8f"),
    "stably_inactive": ("stably inactive", "#8d99ae"),
    "unstable": ("unstable", "#e76f51"),
    "undecided": ("undecided", "#e9c46a"),
}

Section = tuple[str, Table]


# ---------------------------------------------------------------- numbers and names


def model_name(report: CompressionReport) -> str:
    """The model's name, or the file name of ``model_path`` when the model never loaded."""
    return report.model.name if report.model is not None else Path(report.model_path).name


def removed_fraction(report: CompressionReport) -> float:
    """Fraction of hidden neurons removed, in [0, 1]; 0 when nothing was analysed."""
    if report.neurons_before <= 0:
        return 0.0
    return (report.neurons_before - report.neurons_after) / report.neurons_before


def settled_as_asked_line(report: CompressionReport) -> str:
    """What settling the undecided neurons could remove at most (``report.if_undecided_settled`` set)."""
    best = report.if_undecided_settled
    fewer, fewer_parameters = report.neurons_after - best.neurons_after, report.parameters_after - best.parameters_after
    if fewer == 0 and fewer_parameters == 0:
        return "settling them cannot shrink the compressed model"
    return (f"settling them could remove at most {fewer} more neuron{'s' * (fewer != 1)} and {fewer_parameters} more "
            f"parameter{'s' * (fewer_parameters != 1)} "
            f"({best.neurons_after} neurons, {best.parameters_after} parameters left)")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _before_after(before: object, after: object | None) -> str:
    """``before → after``; ``before → —`` without an after side (a failed run wrote no compressed model)."""
    return f"{before} → {'—' if after is None else after}"


#: what each neuron state means, shown under the layer table of report.md / report.html
STATE_LEGEND = (
    "stably active: g ≥ 0 on the whole domain, so the neuron is linear (folded into the next layer where its "
    "weights are dependent, or its layer merged) · stably inactive: g ≤ 0 on the whole domain (removed) · "
    "unstable: witness inputs show both signs (kept) · undecided: not settled in time or inside the tolerance "
    "band (kept, so the output stays exact)")


# ---------------------------------------------------------------- section data


def _counts(report: CompressionReport) -> list[list[str]]:
    """The neuron and parameter rows: before → after, only the before side for a failed run (nothing written; "—"
    where it was never analysed)."""
    if report.status != "failed":
        removed = f" ({100 * removed_fraction(report):.1f}% removed)"
        return [["neurons", _before_after(report.neurons_before, report.neurons_after) + removed],
                ["parameters", _before_after(report.parameters_before, report.parameters_after)]]
    return [[name, _before_after(before, None) if before > 0 else "—"]
            for name, before in (("neurons", report.neurons_before), ("parameters", report.parameters_before))]


def _summary(report: CompressionReport) -> Table:
    failed = report.status == "failed"
    rows = [
        ["status", report.status],
        *_counts(report),
        *([["undecided neurons", settled_as_asked_line(report)]] if report.if_undecided_settled else []),
        ["method", report.method],
        ["workers · threads", f"{report.workers} · {report.threads}"],
        ["total seconds", _seconds(report.seconds.get("total"))],
        ["time limit (s)", _seconds(report.time_limit_s)],
    ]
    if report.domain is not None:
        domain = report.domain
        rows.append(["domain", f"{domain.kind} from {domain.source} ({domain.n_boxes} box{'es' if domain.n_boxes != 1 else ''})"])
        if domain.scalar_lower is not None and domain.scalar_upper is not None:
            rows.append(["domain bounds", f"[{_num(domain.scalar_lower)}, {_num(domain.scalar_upper)}] per feature"])
        for label, value in (("domain margin", domain.margin), ("domain epsilon", domain.epsilon)):
            if value is not None:
                rows.append([label, _num(value)])
        if domain.n_boxes > 1:
            rows.append(["on a union of boxes", domain.union_semantics])
    if report.verification is not None:
        check = report.verification
        verdict = "passed" if check.passed else "FAILED"
        rows.append(["verification", f"{verdict}: max abs error {_num(check.max_abs_error)} on {check.n_inputs} inputs"])
        if check.identical:
            rows.append(["compressed network", "the original's layers bitwise (nothing changed): equal outputs by "
                         "construction, so no uniform draws were compared"])
        rows.append(["verification tolerance", f"|y − y'| ≤ {_num(check.tolerance)} · (1 + |y|); max rel error {_num(check.max_rel_error)}"])
        if check.max_abs_error_saved_dtype is not None:
            rows.append([f"max abs error as {check.saved_dtype}", _num(check.max_abs_error_saved_dtype)])
    if report.model is not None:
        rows.insert(3, ["hidden widths", _before_after(report.model.hidden_widths,
                                                       None if failed else report.hidden_widths_after)])
        rows.append(["model file", f"{report.model.path} ({report.model.format}, {report.model.dtype})"])
        if report.model.activation_assumed is not None:
            rows.append(["activation", "ReLU assumed: a state dict records no activations (export ONNX for a checked "
                         "one)" if report.model.activation_assumed else "ReLU, read from the model"])
        rows.append(["model sha256", report.model.sha256])
    else:
        rows.append(["model file", report.model_path])
    return ["", ""], rows


def _layers(report: CompressionReport) -> Table:
    settlers = get_args(Settler)
    headers = ["layer", "width", "active", "inactive", "unstable", "undecided", *(f"by {settler}" for settler in settlers),
               "removed", "folded", "merged"]
    rows = [
        [
            str(layer.index),
            str(layer.width),
            str(len(layer.stably_active)),
            str(len(layer.stably_inactive)),
            str(len(layer.unstable)),
            str(len(layer.undecided)),
            *(str(len(layer.settled_by.get(settler, []))) for settler in settlers),
            *_compression_cells(layer.compression),
        ]
        for layer in report.layers
    ]
    return headers, rows


def _conv_layers(report: CompressionReport) -> Table:
    """Per convolution layer: its shape and how many channels were kept, removed, active everywhere, mixed."""
    headers = ["conv layer", "in → out (C×H×W)", "kernel / stride / padding", "channels kept", "removed",
               "active everywhere", "mixed", "undecided", "parameters"]
    rows = []
    for layer in report.layers:
        conv = layer.conv
        if conv is None:
            continue
        states = [channel.state for channel in conv.channels]
        rows.append([
            str(layer.index),
            f"{'×'.join(map(str, conv.in_shape))} → {'×'.join(map(str, conv.out_shape))}",
            f"{'×'.join(map(str, conv.kernel_size))} / {'×'.join(map(str, conv.stride))} / "
            f"{'×'.join(map(str, conv.padding))}",
            f"{conv.channels_after} of {len(conv.channels)}",
            str(len(conv.channels_removed)) + (f" ({', '.join(map(str, conv.channels_removed))})"
                                               if conv.channels_removed else ""),
            str(states.count("active_everywhere")),
            str(states.count("mixed")),
            str(states.count("undecided")),
            _before_after(conv.parameters_before, conv.parameters_after),
        ])
    return headers, rows


def _compression_cells(compression: LayerCompression | None) -> list[str]:
    """removed / folded (with the folds skipped, if any) / merged; dashes for reports older than 1.2."""
    if compression is None:
        return ["—", "—", "—"]
    folded = str(compression.folded_active)
    if compression.skipped_folds:
        folded += f" ({compression.skipped_folds} kept: fold not exact)"
    removed = str(compression.removed_inactive)
    if compression.removed_unused:
        removed += f" (+{compression.removed_unused} unread)"
    return [removed, folded, "yes" if compression.merged else "no"]


#: undecided neurons listed in report.md / report.html (all of them are in report.json)
MAX_LISTED_UNDECIDED = 40
OPEN_QUESTION = {"positive": "can g be positive? (if not: stably inactive)",
                 "negative": "can g be negative? (if not: stably active)",
                 "both": "neither sign witnessed"}


def _found(item) -> str:
    """The range of g at the inputs evaluated, or a dash when none was."""
    if item.smallest_found is None or item.largest_found is None:
        return "–"
    return f"[{item.smallest_found:.4g}, {item.largest_found:.4g}]"


def _undecided(report: CompressionReport) -> Table:
    """The undecided neurons (at most MAX_LISTED_UNDECIDED): each one's proved interval of g, the range of g at
    the inputs evaluated (how far the open sign is from being shown) and its open question."""
    neurons = [(layer.index, item) for layer in report.layers for item in layer.undecided_bounds]
    rows = [[str(index), str(item.neuron), f"[{item.lower:.4g}, {item.upper:.4g}]", _found(item),
             OPEN_QUESTION[item.open]]
            for index, item in neurons[:MAX_LISTED_UNDECIDED]]
    if len(neurons) > MAX_LISTED_UNDECIDED:
        rows.append(["…", f"{len(neurons) - MAX_LISTED_UNDECIDED} more", "in report.json", "", ""])
    return ["layer", "neuron", "g proved to stay in", "g found at inputs tried", "open question"], rows


def _stages(report: CompressionReport) -> Table:
    return ["stage", "seconds"], [[stage, _seconds(seconds)] for stage, seconds in report.seconds.items()]


def _scip(report: CompressionReport) -> Table:
    stats = report.milp
    rows = [["solves", str(stats.solves)], ["nodes", str(stats.nodes)], ["LP iterations", str(stats.lp_iterations)], ["seconds", _seconds(stats.seconds)]]
    if stats.single_milp_finished is not None:
        rows += [
            ["single MILP finished (dual bound < 1)", "yes" if stats.single_milp_finished else "no"],
            ["single MILP open states", str(stats.open_states)],
            ["solutions harvested", str(stats.solutions_harvested)],
            ["LP points harvested", str(stats.lp_points_harvested)],
            ["states fixed", str(stats.states_fixed)],
        ]
    if report.policy:
        rows.append(["policy", report.policy])
    return ["", ""], rows


def _settlers(report: CompressionReport) -> Table:
    """How many neurons each step settled, over all layers, and the seconds of the stage it belongs to."""
    stage_of = {"bounds": "bounds", "witnesses": "witnesses", "per-neuron": "prove", "single-milp": "prove",
                "bab": "bab"}
    rows = []
    for settler in get_args(Settler):
        count = sum(len(layer.settled_by.get(settler, [])) for layer in report.layers)
        if count:
            rows.append([settler, str(count), _seconds(report.seconds.get(stage_of[settler]))])
    return ["step", "neurons settled", "stage seconds (MILPs share 'prove')"], rows


def _bab(report: CompressionReport) -> Table:
    stats = report.bab
    if not stats.questions:
        return ["", ""], []
    return ["", ""], [
        ["sign questions (once per round asked)", str(stats.questions)],
        ["proved impossible (float64 bound)", str(stats.proved)],
        ["witnessed", str(stats.witnessed)],
        ["stopped by a round's limit or the time limit", str(stats.undecided)],
        ["domains bounded", str(stats.domains)],
        ["seconds (all questions added up)", _seconds(stats.seconds)],
        ["device", stats.device or "—"],
    ]


def _tolerances(report: CompressionReport) -> Table:
    if report.tolerances is None:
        return ["", ""], []
    return ["", ""], [[name, f"{value:g}"] for name, value in report.tolerances.model_dump().items()]


def _versions(report: CompressionReport) -> Table:
    rows = [[name, value] for name, value in report.versions.model_dump().items()]
    rows.append(["report schema", report.schema_version])
    return ["", ""], rows


def output_files(report: CompressionReport) -> list[str]:
    """The file names ``report.outputs`` records: compressed models, architecture file, witnesses, report.md/html."""
    if report.outputs is None:
        return []
    files = [*report.outputs.compressed, report.outputs.architecture, report.outputs.witnesses,
             report.outputs.report_md, report.outputs.report_html]
    return [name for name in files if name]


#: the files a run writes beside its report.json that describe the report (the rest are its outputs)
PAGES = (REPORT_MD, REPORT_HTML, LAYER_FIGURE, CONVERGENCE_FIGURE)


def linked_figures(report: CompressionReport) -> list[str]:
    """The figure files report.md links as ``write_reports`` writes it: the layer figure, and the single MILP's
    convergence figure when it was traced."""
    return [LAYER_FIGURE, *([CONVERGENCE_FIGURE] if report.milp.dual_trace else [])]


def written_files(report: CompressionReport) -> list[str]:
    """Every file name a run with this report writes: report.json first, its outputs, then its pages."""
    return list(dict.fromkeys([REPORT_JSON, *output_files(report), *PAGES]))


def remove_earlier_outputs(out_dir: Path) -> None:
    """Delete what an earlier run wrote into ``out_dir``: its report.json first, then the files it lists and the
    pages, so that none of them (a compressed model for another domain, say) stays beside this run's report.
    Other files are kept; an unreadable report.json lists nothing but itself and the pages, and only plain
    file names in it count (never a path elsewhere)."""
    out_dir = Path(out_dir)
    try:
        earlier = written_files(CompressionReport.model_validate_json((out_dir / REPORT_JSON).read_bytes()))
    except (OSError, ValueError):
        earlier = [REPORT_JSON, *PAGES]
    for name in earlier:
        if name not in ("", ".", "..") and Path(name).name == name:
            (out_dir / name).unlink(missing_ok=True)


def _outputs(report: CompressionReport) -> Table:
    return ["", ""], [["file", name] for name in output_files(report)]


def _sections(report: CompressionReport) -> list[Section]:
    """Titled tables in report order; key–value tables have empty headers."""
    sections = [
        ("Summary", _summary(report)),
        ("Hidden layers (original network)", _layers(report)),
        ("Convolution layers: channels", _conv_layers(report)),
        ("Undecided neurons (kept; proved interval of the pre-activation g)", _undecided(report)),
        ("Seconds per stage", _stages(report)),
        ("Settled by", _settlers(report)),
        ("SCIP", _scip(report)),
        ("Branch and bound", _bab(report)),
        ("Tolerances", _tolerances(report)),
        ("Versions", _versions(report)),
        ("Files", _outputs(report)),
    ]
    return [(title, table) for title, table in sections if table[1]]


def _title(report: CompressionReport) -> str:
    return f"exactcompress: {model_name(report)} — {report.status}"


# ---------------------------------------------------------------- figures


def layer_figure_png(report: CompressionReport) -> bytes:
    """PNG (770 x 385 px) of stacked neuron-state counts per original hidden layer.

    A report without layers gives a figure that says so.
    """
    return stacked_bars_png(
        f"{model_name(report)} — method {report.method}",
        [f"{layer.index}\n(width {layer.width})" for layer in report.layers],
        [(label, colour, [len(getattr(layer, key)) for layer in report.layers])
         for key, (label, colour) in STATE_STYLE.items()],
        "hidden layer of the original network", "neurons")


def convergence_figure_png(report: CompressionReport) -> bytes | None:
    """PNG of the single MILP's dual bound over time (the solve ends when it drops below 1); None without a trace."""
    trace = report.milp.dual_trace
    if not trace:
        return None
    return step_line_png(f"{model_name(report)} — single MILP convergence", trace, 1.0,
                         "dual bound (open states still possible)", "1: below it no unseen state can occur",
                         "seconds in the single MILP", "dual bound")


# ---------------------------------------------------------------- markdown


def render_markdown(report: CompressionReport, figure_name: str | None = None) -> str:
    """report.md text; links the layer figure file ``figure_name`` (e.g. ``report_layers.png``) when given."""
    parts = [f"# {md_cell(_title(report))}"]
    if report.error:
        parts.append(f"**Error:** {md_cell(report.error)}")
    for title, table in _sections(report):
        parts.append(f"## {title}\n\n{md_table(table)}")
        if title.startswith("Hidden layers"):
            parts.append(f"*{STATE_LEGEND}*")
            if figure_name:
                parts.append(f"![neuron states per layer]({figure_name})")
        if title == "SCIP" and CONVERGENCE_FIGURE in linked_figures(report):
            parts.append(f"![single MILP dual bound]({CONVERGENCE_FIGURE})")
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- terminal


# ---------------------------------------------------------------- html


def render_html(report: CompressionReport, figures: dict[str, bytes | None] | None = None) -> str:
    """Self-contained report.html: inline CSS, the figures embedded as base64 PNGs, all text escaped.
    ``figures``: already rendered PNGs by file name (LAYER_FIGURE, CONVERGENCE_FIGURE), else drawn here."""
    figures = figures if figures is not None else _figures(report)
    parts = [f'<h1>exactcompress: {html.escape(model_name(report))} — <span class="status-{report.status}">{html.escape(report.status)}</span></h1>']
    if report.error:
        parts.append(f'<p class="error"><strong>Error:</strong> {html.escape(report.error)}</p>')
    for title, table in _sections(report):
        parts.append(f"<h2>{html.escape(title)}</h2>\n{html_table(table)}")
        if title.startswith("Hidden layers"):
            parts.append(f'<p class="legend">{html.escape(STATE_LEGEND)}</p>')
            parts.append(html_img(figures[LAYER_FIGURE], "neuron states per hidden layer"))
        convergence = figures[CONVERGENCE_FIGURE] if title == "SCIP" else None
        if convergence:
            parts.append(html_img(convergence, "single MILP dual bound over time"))
    return html_page(_title(report), "\n".join(parts))


def _figures(report: CompressionReport) -> dict[str, bytes | None]:
    return {LAYER_FIGURE: layer_figure_png(report), CONVERGENCE_FIGURE: convergence_figure_png(report)}


def write_reports(report: CompressionReport, out_dir: Path) -> dict[str, str]:
    """Write report.md, report.html and report_layers.png into ``out_dir``; returns their names (relative)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _figures(report)
    for name, png in figures.items():
        if png:
            (out_dir / name).write_bytes(png)
    (out_dir / REPORT_MD).write_text(render_markdown(report, figure_name=LAYER_FIGURE), encoding="utf-8")
    (out_dir / REPORT_HTML).write_text(render_html(report, figures), encoding="utf-8")
    return {"report_md": REPORT_MD, "report_html": REPORT_HTML, "figure": LAYER_FIGURE}


def report_json_bytes(report: CompressionReport) -> bytes:
    """The bytes of ``report.json``: the report as indented JSON (ASCII, non-ASCII escaped) and a newline."""
    return (json.dumps(report.model_dump(mode="json"), indent=2) + "\n").encode("ascii")


def write_report_json(report: CompressionReport, out_dir: Path) -> None:
    """Write ``report.json`` into ``out_dir`` atomically (a temporary file, then a rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    temporary = out_dir / f".{REPORT_JSON}.tmp"
    temporary.write_bytes(report_json_bytes(report))
    temporary.replace(out_dir / REPORT_JSON)

"""Human-readable views of a zoo job's ``ZooSummary``: summary markdown, a self-contained HTML page, PNG figures
and a plain-text table for the terminal.

Markdown, HTML and the terminal table are built from the same row data (``_model_rows``), so they agree.
Figures use matplotlib's object API with the Agg canvas and carry no PNG metadata, so the same summary always
gives the same bytes.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable, Sequence, get_args
from urllib.parse import quote

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..schema import (
    MODEL_SUFFIXES,
    BoxDomainSpec,
    DomainSpec,
    ManifestSource,
    Settler,
    ZooModelResult,
    ZooSummary,
    ZooTotals,
)
from ..storage import open_storage
from .common import (
    FIGURE_DPI,
    FIGURE_SIZE_IN,
    Table,
    html_cell,
    html_img,
    html_page,
    html_table,
    md_cell,
    md_table,
    png_bytes,
    terminal_text,
    text_table,
)
from .report import REPORT_HTML, REPORT_JSON, STATE_STYLE

REMOVED_FIGURE = "summary_removed.png"
SECONDS_FIGURE = "summary_seconds.png"
SETTLED_FIGURE = "summary_settled.png"
FIGURE_CAPTIONS = {
    REMOVED_FIGURE: "fraction of neurons removed per model",
    SECONDS_FIGURE: "engine seconds per model",
    SETTLED_FIGURE: "neurons settled by each step per model",
}

STATUS_COLOURS = {"exact": "#2a9d8f", "partial": "#e9a23b", "failed": "#b00020"}
#: settling step → colour; the order is the stacking order of the bars (undecided goes on top)
SETTLER_COLOURS = dict(zip(get_args(Settler), ("#264653", "#2a9d8f", "#8ab17d", "#6d597a", "#e76f51"), strict=True))
OTHER_STEP_COLOUR = "#adb5bd"

#: zoos of more models get distribution figures instead of one bar per model
PER_MODEL_FIGURES_MAX = 40
HISTOGRAM_BINS = 20
MAX_FIGURE_WIDTH_IN = 20.0
INCHES_PER_MODEL = 0.18
TICK_LABELS_PER_INCH = 6
TICK_LABEL_CHARS = 24
LOG_SCALE_RATIO = 100.0
TERMINAL_ERROR_CHARS = 60

#: inline, no network: sort by a column (numbers as numbers) and filter rows by text
TABLE_SCRIPT = """<script>
(function () {
  const table = document.getElementById("models"), body = table.tBodies[0];
  const rows = Array.from(body.rows), filter = document.getElementById("filter");
  const shown = document.getElementById("shown");
  const key = (row, i) => { const t = row.cells[i].textContent.trim(); const n = parseFloat(t.replace(/[^0-9.eE+-]/g, ""));
                             return /^[-−]?[0-9.]/.test(t) && !isNaN(n) ? n : t.toLowerCase(); };
  const count = () => { shown.textContent = rows.filter(r => r.style.display !== "none").length + " of " + rows.length + " shown"; };
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
    th.style.cursor = "pointer";
    th.addEventListener("click", () => {
      const up = th.dataset.order !== "up"; th.dataset.order = up ? "up" : "down";
      rows.sort((a, b) => { const x = key(a, i), y = key(b, i); return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1); });
      rows.forEach(r => body.appendChild(r));
    });
  });
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    rows.forEach(r => { const text = r.textContent.toLowerCase(); r.style.display = words.every(w => text.includes(w)) ? "" : "none"; });
    count();
  });
  count();
})();
</script>"""

MODEL_COLUMNS = ["model", "status", "neurons", "% removed", "parameters", "settled by", "undecided", "seconds", "report"]
TERMINAL_COLUMNS = ["model", "status", "neurons", "% removed", "seconds"]


# ---------------------------------------------------------------- names and numbers


def _path_segments(key: str) -> list[str]:
    segments = [segment for segment in key.split("/") if segment]
    if segments:
        last = segments[-1]
        suffix = next((s for s in MODEL_SUFFIXES if last.lower().endswith(s) and len(last) > len(s)), "")
        segments[-1] = last[: len(last) - len(suffix)]
    return segments


def model_names(models: Sequence[ZooModelResult]) -> list[str]:
    """Display name per model: the last path segment of ``source_key`` without its model suffix (kept where
    models differ by it alone: ``m.pt``, ``m.onnx``); models that share it get as many parent folders as make
    their names unique (``a/net``, ``b/net``)."""
    paths = [tuple(_path_segments(model.source_key)) for model in models]
    whole = [tuple(segment for segment in model.source_key.split("/") if segment) for model in models]
    while clash := [index for index, count in enumerate(map(Counter(paths).__getitem__, paths))
                    if count > 1 and paths[index] != whole[index]]:  # m.pt and m.onnx; m.pt.pth and m.pt
        for index in clash:
            paths[index] = whole[index]
    names = [""] * len(paths)
    pending, depth = list(range(len(paths))), 1
    while pending:  # one count of every path's last ``depth`` segments per depth; deepen the names still shared
        tails = Counter(path[-depth:] for path in paths)
        shared_tail = [index for index in pending if depth < len(paths[index]) and tails[paths[index][-depth:]] > 1]
        for index in set(pending) - set(shared_tail):
            names[index] = "/".join(paths[index][-depth:])
        pending, depth = shared_tail, depth + 1
    return names


def _removed_fraction(before: int, after: int) -> float:
    return (before - after) / before if before > 0 else 0.0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _totals_text(totals: ZooTotals) -> str:
    removed = 100 * _removed_fraction(totals.neurons_before, totals.neurons_after)
    return (
        f"{_plural(totals.models, 'model')}: {totals.exact} exact, {totals.partial} partial, {totals.failed} failed"
        f" · neurons {totals.neurons_before} → {totals.neurons_after} ({removed:.1f}% removed)"
        f" · parameters {totals.parameters_before} → {totals.parameters_after}"
        f" · Σ engine seconds {totals.engine_seconds:.2f}"
        + (f" · {totals.in_progress_elsewhere} in progress in another run" if totals.in_progress_elsewhere else "")
    )


def _notes(summary: ZooSummary) -> Table | None:
    """Models another run held (with the lease that kept this run off them) and models redone because their
    committed report did not count (with why); None when there are neither."""
    rows = [[lease.source_key, "in progress in another run",
             f"lease of run {lease.holder} until "
             f"{datetime.fromtimestamp(lease.expires_at, timezone.utc):%Y-%m-%d %H:%M:%S} UTC"]
            for lease in summary.leases_elsewhere]
    rows += [[model.source_key, "redone", f"its committed report did not count: {model.reason}"]
             for model in summary.redone]
    return (["model", "what", "why"], rows) if rows else None


def _title(summary: ZooSummary) -> str:
    return f"exactcompress zoo: {_plural(summary.totals.models, 'model')}"


def _steps(keys: Iterable[str]) -> list[str]:
    """Settling steps in pipeline order, then any step this version does not know, sorted."""
    return [*SETTLER_COLOURS, *sorted(set(keys) - set(SETTLER_COLOURS))]


def _settled_text(settled_by: dict[str, int]) -> str:
    counts = [f"{step} {settled_by[step]}" for step in _steps(settled_by) if settled_by.get(step)]
    return " · ".join(counts) or "—"


def _report_href(output_url: str, report_key: str | None) -> str:
    """Percent-encoded link to the report.html next to ``report_key``; relative ("./…") when it lies under
    ``output_url`` (the canonical URL of the job's output, where the summary is written), so a downloaded output
    folder keeps working links."""
    if report_key is None:
        return ""
    page = report_key[: -len(REPORT_JSON)] + REPORT_HTML if report_key.endswith(REPORT_JSON) else report_key
    prefix = output_url.rstrip("/") + "/"
    target = "./" + page[len(prefix):] if page.startswith(prefix) else page
    return quote(target, safe="/:")


# ---------------------------------------------------------------- row data


def domain_text(domain: DomainSpec) -> str:
    """One line describing a spec's domain: ``box: lower 0, upper 1``, per-feature counts, or the file."""
    if not isinstance(domain, BoxDomainSpec):
        return f"file {domain.file}"

    def bound(value: float | list[float]) -> str:
        return f"{len(value)} per-feature values" if isinstance(value, list) else f"{value:g}"

    return f"box: lower {bound(domain.lower)}, upper {bound(domain.upper)}"


def _overrides_text(count: int) -> str:
    """What the domain row adds when ``count`` models have a domain of their own (a manifest entry's)."""
    if not count:
        return ""
    return f" (job default; {_plural(count, 'model')} override{'s' if count == 1 else ''} it)"


def _settings(summary: ZooSummary) -> Table:
    spec = summary.spec
    source = f"manifest {spec.source.manifest}" if isinstance(spec.source, ManifestSource) else spec.source
    time_limit = "none" if spec.time_limit_s is None else f"{spec.time_limit_s:g} s per model"
    rows = [
        ["source", source],
        ["output", spec.output],
        ["domain", domain_text(spec.domain) + _overrides_text(len(summary.domain_overrides))],
        ["method", spec.method],
        ["time limit", time_limit],
        ["exactcompress", summary.versions.exactcompress],
    ]
    return ["", ""], rows


def _model_rows(summary: ZooSummary) -> list[dict[str, str]]:
    """One dict per model, keyed by column name (``MODEL_COLUMNS``, ``channels`` and ``error``); failed models show "—"
    instead of counts."""
    rows = []
    output_url = open_storage(summary.spec.output).url()  # report keys are in this spelling
    for name, model in zip(model_names(summary.models), summary.models):
        failed = model.status == "failed"
        removed = 100 * _removed_fraction(model.neurons_before, model.neurons_after)
        rows.append(
            {
                "model": name,
                "status": model.status,
                "neurons": "—" if failed else f"{model.neurons_before} → {model.neurons_after}",
                "channels": ("—" if failed or model.channels_before is None
                             else f"{model.channels_before} → {model.channels_after}"),
                "% removed": "—" if failed else f"{removed:.1f}",
                "parameters": "—" if failed else f"{model.parameters_before} → {model.parameters_after}",
                "settled by": _settled_text(model.settled_by),
                "undecided": "—" if failed else _undecided_text(model),
                "seconds": f"{model.seconds:.2f}",
                "report": _report_href(output_url, model.report_key),
                "error": model.error or "",
            }
        )
    return rows


def _undecided_text(model: ZooModelResult) -> str:
    """The undecided count, and what settling them could remove at most where the report says."""
    if model.neurons_after_if_settled is None:
        return str(model.undecided)
    fewer = model.neurons_after - model.neurons_after_if_settled
    return f"{model.undecided} (" + (f"at best {fewer} fewer neurons)" if fewer else "cannot shrink the model)")


def _columns(summary: ZooSummary, base: list[str]) -> list[str]:
    """``base``, plus a ``channels`` column after ``neurons`` when some model is a CNN, and an ``error`` column
    when some model has an error."""
    columns = list(base)
    if any(model.channels_before is not None for model in summary.models):
        columns.insert(columns.index("neurons") + 1, "channels")
    return columns + (["error"] if any(model.error for model in summary.models) else [])


# ---------------------------------------------------------------- markdown


def _md_models(summary: ZooSummary) -> str:
    if not summary.models:
        return "_No models._"
    columns = _columns(summary, MODEL_COLUMNS)

    def cell(column: str, value: str) -> str:
        if column == "report":
            return f"[report]({value})" if value else "—"
        return md_cell(value)

    lines = [md_table((columns, []))]
    lines += ["| " + " | ".join(cell(column, row[column]) for column in columns) + " |" for row in _model_rows(summary)]
    return "\n".join(lines)


def render_summary_markdown(summary: ZooSummary, figure_names: dict[str, str] | None = None) -> str:
    """summary.md text: title, totals, the job's settings, one table row per model (linking its report.html)
    and, when ``figure_names`` maps figure names of ``summary_figures`` to the paths they were written to,
    an image reference for each."""
    parts = [
        f"# {md_cell(_title(summary))}",
        md_cell(_totals_text(summary.totals)),
        f"## Settings\n\n{md_table(_settings(summary))}",
        f"## Models\n\n{_md_models(summary)}",
    ]
    notes = _notes(summary)
    if notes:
        parts.append(f"## Notes\n\n{md_table(notes)}")
    if figure_names:
        images = [f"![{md_cell(FIGURE_CAPTIONS.get(name, name))}]({quote(path, safe='/:')})" for name, path in figure_names.items()]
        parts.append("## Figures\n\n" + "\n\n".join(images))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- html


def _html_models(summary: ZooSummary) -> str:
    if not summary.models:
        return "<p>No models.</p>"
    columns = _columns(summary, MODEL_COLUMNS)

    def cell(column: str, value: str) -> str:
        if column == "status":
            return f'<td class="status-{html.escape(value)}">{html.escape(value)}</td>'
        if column == "report":
            return f'<td><a href="{html.escape(value)}">report</a></td>' if value else "<td>—</td>"
        return html_cell("td", value)

    head = "<tr>" + "".join(html_cell("th", column) for column in columns) + "</tr>"
    body = "".join("<tr>" + "".join(cell(column, row[column]) for column in columns) + "</tr>" for row in _model_rows(summary))
    search = ('<p><input id="filter" type="search" placeholder="filter models (name, status, …)" size="40"> '
              '<span id="shown"></span> · click a column title to sort</p>')
    return f'{search}<table id="models" class="models"><thead>{head}</thead><tbody>{body}</tbody></table>{TABLE_SCRIPT}'



def render_summary_html(summary: ZooSummary) -> str:
    """Self-contained summary page: the markdown's content, inline CSS and the figures embedded as base64 PNGs
    (left out when there are no models); all text escaped."""
    parts = [
        f"<h1>{html.escape(_title(summary))}</h1>",
        f"<p>{html.escape(_totals_text(summary.totals))}</p>",
        f"<h2>Settings</h2>\n{html_table(_settings(summary))}",
        f"<h2>Models</h2>\n{_html_models(summary)}",
    ]
    notes = _notes(summary)
    if notes:
        parts.append(f"<h2>Notes</h2>\n{html_table(notes)}")
    if summary.models:
        images = [html_img(png, FIGURE_CAPTIONS[name]) for name, png in summary_figures(summary).items()]
        parts.append("<h2>Figures</h2>\n" + "\n".join(images))
    return html_page(_title(summary), "\n".join(parts))


# ---------------------------------------------------------------- terminal


def render_summary_table(summary: ZooSummary) -> str:
    """Plain-text table for a terminal: a header, a rule, one line per model (errors cut to 60 characters),
    then a blank line and the totals. An ``undecided`` column (what settling them could remove) comes before
    ``seconds`` when some model is partial."""
    columns = _columns(summary, TERMINAL_COLUMNS)
    if any(model.status == "partial" for model in summary.models):
        columns.insert(columns.index("seconds"), "undecided")
    rows = [
        [terminal_text(row[c], TERMINAL_ERROR_CHARS if c == "error" else None) for c in columns]
        for row in _model_rows(summary)
    ]
    return text_table((columns, rows), {"model", "status", "error"}) + "\n\n" + _totals_text(summary.totals)


# ---------------------------------------------------------------- figures


def _tick_label(name: str) -> str:
    """One line of at most TICK_LABEL_CHARS characters, cut in the middle (names of a zoo often share a prefix),
    dollar signs escaped (matplotlib would read mathtext)."""
    line = terminal_text(name)
    if len(line) > TICK_LABEL_CHARS:
        head = (TICK_LABEL_CHARS - 1) // 2
        line = line[:head] + "…" + line[len(line) - (TICK_LABEL_CHARS - 1 - head):]
    return line.replace("$", r"\$")


def _model_axes(models: Sequence[ZooModelResult], title: str, ylabel: str) -> tuple[Figure, Axes]:
    """Figure with one x position per model: 7 in wide, growing 0.18 in per model up to 20 in; at most 6 tick
    labels per inch (every k-th model otherwise), failed models' labels red. No models: a note that says so."""
    width = min(max(FIGURE_SIZE_IN[0], 1.5 + INCHES_PER_MODEL * len(models)), MAX_FIGURE_WIDTH_IN)
    figure = Figure(figsize=(width, FIGURE_SIZE_IN[1] + 1.0), dpi=FIGURE_DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    if not models:
        axes.text(0.5, 0.5, "no models", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return figure, axes
    names = model_names(models)
    every = math.ceil(len(models) / (TICK_LABELS_PER_INCH * width))
    shown = list(range(0, len(models), every))
    rotation, align = (90, "center") if len(models) > 8 else (30, "right")
    axes.set_xticks(shown, [_tick_label(names[i]) for i in shown], rotation=rotation, ha=align, fontsize=7)
    for index, label in zip(shown, axes.get_xticklabels(), strict=True):
        if models[index].status == "failed":
            label.set_color(STATUS_COLOURS["failed"])
    axes.set_xlim(-0.6, len(models) - 0.4)
    axes.set_ylabel(ylabel)
    return figure, axes


def _status_legend(axes: Axes, models: Sequence[ZooModelResult], failed_note: str) -> None:
    present = {model.status for model in models}
    handles = [
        Patch(color=colour, label=f"{status}{failed_note if status == 'failed' else ''}")
        for status, colour in STATUS_COLOURS.items()
        if status in present
    ]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _mark_failed(axes: Axes, models: Sequence[ZooModelResult]) -> list[Artist]:
    """A red × at height 0 for each failed model (its bar is empty); returns the markers' legend handle, if any."""
    failed = [index for index, model in enumerate(models) if model.status == "failed"]
    if not failed:
        return []
    colour = STATUS_COLOURS["failed"]
    return [axes.scatter(failed, [0.0] * len(failed), marker="x", color=colour, label="failed", zorder=3, clip_on=False)]


def _removed_png(models: Sequence[ZooModelResult]) -> bytes:
    figure, axes = _model_axes(models, "Neurons removed per model", "fraction of hidden neurons removed")
    if models:
        fractions = [_removed_fraction(m.neurons_before, m.neurons_after) for m in models]
        axes.bar(range(len(models)), fractions, color=[STATUS_COLOURS[m.status] for m in models], width=0.7)
        axes.set_ylim(0.0, 1.0)
        _mark_failed(axes, models)
        _status_legend(axes, models, " (×)")
    return png_bytes(figure)


def _seconds_png(models: Sequence[ZooModelResult]) -> bytes:
    seconds = [model.seconds for model in models]
    positive = [value for value in seconds if value > 0]
    log_scale = bool(positive) and max(positive) > LOG_SCALE_RATIO * min(positive)
    ylabel = "engine seconds" + (" (log scale)" if log_scale else "")
    figure, axes = _model_axes(models, "Engine seconds per model", ylabel)
    if models:
        axes.bar(range(len(models)), seconds, color=[STATUS_COLOURS[m.status] for m in models], width=0.7)
        if log_scale:
            axes.set_yscale("log")
            axes.set_ylim(bottom=min(positive) / 2)
        _status_legend(axes, models, "")
    return png_bytes(figure)


def _settled_png(models: Sequence[ZooModelResult]) -> bytes:
    figure, axes = _model_axes(models, "Neurons settled by each step per model", "neurons")
    if models:
        positions = range(len(models))
        bottoms = [0] * len(models)
        bars = []
        for step in _steps(key for model in models for key in model.settled_by):
            counts = [model.settled_by.get(step, 0) for model in models]
            colour = SETTLER_COLOURS.get(step, OTHER_STEP_COLOUR)
            bars.append(axes.bar(positions, counts, bottom=bottoms, color=colour, label=f"settled by {step}", width=0.7))
            bottoms = [bottom + count for bottom, count in zip(bottoms, counts)]
        label, colour = STATE_STYLE["undecided"]
        bars.append(axes.bar(positions, [m.undecided for m in models], bottom=bottoms, color=colour, label=label, width=0.7))
        handles = [*bars[::-1], *_mark_failed(axes, models)]  # legend top to bottom as the stack, then failed
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return png_bytes(figure)


def _distribution_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return figure, axes


def _removed_histogram_png(models: Sequence[ZooModelResult]) -> bytes:
    """Histogram of the removed fraction, stacked by status (failed models removed nothing: counted in the title)."""
    failed = sum(model.status == "failed" for model in models)
    figure, axes = _distribution_axes(f"Neurons removed: {len(models)} models ({failed} failed, not shown)",
                                      "fraction of hidden neurons removed", "models")
    groups = [[_removed_fraction(m.neurons_before, m.neurons_after) for m in models if m.status == status]
              for status in ("exact", "partial")]
    axes.hist(groups, bins=HISTOGRAM_BINS, range=(0.0, 1.0), stacked=True, label=["exact", "partial"],
              color=[STATUS_COLOURS["exact"], STATUS_COLOURS["partial"]])
    axes.legend(fontsize=8, frameon=False)
    return png_bytes(figure)


def _seconds_scatter_png(models: Sequence[ZooModelResult]) -> bytes:
    """Engine seconds against hidden neurons, one point per model coloured by status."""
    figure, axes = _distribution_axes(f"Engine seconds against size: {len(models)} models", "hidden neurons",
                                      "engine seconds")
    for status, colour in STATUS_COLOURS.items():
        chosen = [model for model in models if model.status == status]
        if chosen:
            axes.scatter([m.neurons_before for m in chosen], [m.seconds for m in chosen], s=8, color=colour,
                         label=f"{status} ({len(chosen)})", alpha=0.7)
    positive = [model.seconds for model in models if model.seconds > 0]
    if positive and max(positive) > LOG_SCALE_RATIO * min(positive):
        axes.set_yscale("log")
    axes.legend(fontsize=8, frameon=False)
    return png_bytes(figure)


def _settled_totals_png(models: Sequence[ZooModelResult]) -> bytes:
    """Neurons settled by each step over the whole zoo, and the undecided ones: one horizontal bar each."""
    figure, axes = _distribution_axes(f"Neurons settled by each step: {len(models)} models", "neurons", "")
    steps = _steps(key for model in models for key in model.settled_by)
    labels = [f"settled by {step}" for step in steps] + [STATE_STYLE["undecided"][0]]
    totals = [sum(model.settled_by.get(step, 0) for model in models) for step in steps] + [sum(m.undecided for m in models)]
    colours = [SETTLER_COLOURS.get(step, OTHER_STEP_COLOUR) for step in steps] + [STATE_STYLE["undecided"][1]]
    axes.barh(range(len(labels)), totals, color=colours)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.invert_yaxis()
    return png_bytes(figure)


def summary_figures(summary: ZooSummary) -> dict[str, bytes]:
    """The summary's PNG figures by file name (``summary_removed.png``, ``summary_seconds.png``,
    ``summary_settled.png``); byte-identical for equal summaries. Up to PER_MODEL_FIGURES_MAX models: one bar
    per model (7–20 in wide by model count); more: distributions that stay readable at any zoo size (removed
    fraction histogram, seconds against size, neurons settled by each step over the zoo)."""
    models = summary.models
    if len(models) > PER_MODEL_FIGURES_MAX:
        return {REMOVED_FIGURE: _removed_histogram_png(models), SECONDS_FIGURE: _seconds_scatter_png(models),
                SETTLED_FIGURE: _settled_totals_png(models)}
    return {
        REMOVED_FIGURE: _removed_png(models),
        SECONDS_FIGURE: _seconds_png(models),
        SETTLED_FIGURE: _settled_png(models),
    }

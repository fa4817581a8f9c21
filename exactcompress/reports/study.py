"""Human-readable views of a study's ``StudyResult``: study.md, a self-contained study.html, study.csv, PNG
figures and a plain-text table for the terminal.

Tables: one row per configuration, and the mean ± sample standard deviation over seeds per (regulariser,
strength, architecture). Percentages are of the configuration's hidden neurons (parameters for "parameters
removed"); failed configurations show "—" and are left out of means. Figures plot the means over seeds with
the spread as error bars; matplotlib's object API with the Agg canvas, no PNG metadata, so the same result
always gives the same bytes.
"""

from __future__ import annotations

import csv
import html
import io
import math
import statistics
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import quote

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..schema import CnnArchitecture, NpzDataset, StudyResult, StudyRow, StudySpec
from .common import (
    FIGURE_DPI,
    FIGURE_SIZE_IN,
    Table,
    html_img,
    html_page,
    html_table,
    md_cell,
    md_table,
    png_bytes,
    terminal_text,
    text_table,
)
from .summary import STATUS_COLOURS, domain_text

ACCURACY_FIGURE = "study_accuracy_removed.png"
STABLE_FIGURE = "study_stable_strength.png"
SECONDS_FIGURE = "study_solve_seconds.png"
FIGURE_CAPTIONS = {
    ACCURACY_FIGURE: "test accuracy vs fraction of neurons removed (Pareto front marked)",
    STABLE_FIGURE: "fraction of neurons proved stable vs regulariser strength, per architecture",
    SECONDS_FIGURE: "solve seconds vs network width",
}
#: regulariser → (colour, marker), in the order rows are sorted
REGULARIZER_STYLE = {"none": ("#8d99ae", "s"), "l1": ("#2a9d8f", "o"), "lp": ("#e76f51", "^"), "tl1": ("#264653", "D"),
                     "group-l1": ("#9b5de5", "v")}
FRONT_COLOUR = "#222222"
PANELS_PER_ROW = 3
LOG_SCALE_RATIO = 100.0
TERMINAL_ERROR_CHARS = 60

ACCURACY, ACTIVE, INACTIVE, REMOVED, PARAMETERS, SECONDS = (
    "test accuracy %", "stably active %", "stably inactive %", "neurons removed %", "parameters removed %", "solve s",
)
METRICS = (ACCURACY, ACTIVE, INACTIVE, REMOVED, PARAMETERS, SECONDS)
#: stably active + stably inactive, for the figures
STABLE = "stable %"
KEY_COLUMNS = ["regulariser", "strength", "hidden"]
CONFIG_COLUMNS = [*KEY_COLUMNS, "seed", *METRICS, "method", "status"]
GROUP_COLUMNS = [*KEY_COLUMNS, "seeds", *METRICS]
TERMINAL_LEFT = {"regulariser", "hidden", "method", "status", "error"}


# ---------------------------------------------------------------- numbers


def hidden_text(hidden: Sequence[int]) -> str:
    """``[64, 32]`` → ``64x32``."""
    return "x".join(str(width) for width in hidden)


def architecture_text(row: StudyRow) -> str:
    """A row's architecture as tables and figures name it: ``64x32``, or a CNN's label."""
    return row.architecture or hidden_text(row.hidden)


def spec_architecture_text(architecture: list[int] | CnnArchitecture) -> str:
    """An architecture of a study spec as ``architecture_text`` names its rows."""
    return architecture.label if isinstance(architecture, CnnArchitecture) else hidden_text(architecture)


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def row_metrics(row: StudyRow) -> dict[str, float]:
    """The row's metrics by column name (``METRICS`` and ``STABLE``); a failed row has only its test accuracy
    (when it was trained)."""
    metrics = {} if row.test_accuracy is None else {ACCURACY: 100.0 * row.test_accuracy}
    if row.status != "failed":
        metrics.update({
            ACTIVE: _percent(row.stably_active, row.neurons_before),
            INACTIVE: _percent(row.stably_inactive, row.neurons_before),
            REMOVED: _percent(row.neurons_before - row.neurons_after, row.neurons_before),
            PARAMETERS: _percent(row.parameters_before - row.parameters_after, row.parameters_before),
            SECONDS: row.solve_seconds,
            STABLE: _percent(row.stably_active + row.stably_inactive, row.neurons_before),
        })
    return metrics


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation (None for a single value) of ``n`` values."""

    mean: float
    std: float | None
    n: int


@dataclass(frozen=True)
class Group:
    """The seeds of one (regulariser, strength, architecture), with the spread of each metric over them."""

    regularizer: str
    strength: float
    architecture: str  # architecture_text of its rows
    rows: tuple[StudyRow, ...]
    spreads: dict[str, Spread]

    @property
    def width(self) -> int:
        """Hidden neurons of the architecture (a CNN's count every position of every channel)."""
        return max([row.neurons_before for row in self.rows] + [sum(self.rows[0].hidden)])


def _spread(values: list[float]) -> Spread:
    return Spread(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def groups(rows: Sequence[StudyRow]) -> list[Group]:
    """Rows grouped by (regulariser, strength, architecture), in the order the groups first appear."""
    members: dict[tuple, list[StudyRow]] = {}
    for row in rows:
        members.setdefault((row.regularizer, row.strength, architecture_text(row)), []).append(row)
    result = []
    for (regularizer, strength, architecture), group_rows in members.items():
        values: dict[str, list[float]] = {}
        for row in group_rows:
            for name, value in row_metrics(row).items():
                values.setdefault(name, []).append(value)
        spreads = {name: _spread(values[name]) for name in (*METRICS, STABLE) if name in values}
        result.append(Group(regularizer, strength, architecture, tuple(group_rows), spreads))
    return result


def _number(name: str, value: float) -> str:
    return f"{value:.2f}" if name == SECONDS else f"{value:.1f}"


def _spread_text(name: str, spread: Spread | None) -> str:
    if spread is None:
        return "—"
    mean = _number(name, spread.mean)
    return mean if spread.std is None else f"{mean} ± {_number(name, spread.std)}"


def _key_cells(regularizer: str, strength: float, architecture: str) -> list[str]:
    return [regularizer, "—" if regularizer == "none" else f"{strength:g}", architecture]


# ---------------------------------------------------------------- tables


def _has_errors(result: StudyResult) -> bool:
    return any(row.error for row in result.rows)


def config_table(result: StudyResult) -> Table:
    """One row per configuration (``CONFIG_COLUMNS``, plus ``error`` when some configuration has one)."""
    columns = CONFIG_COLUMNS + (["error"] if _has_errors(result) else [])
    rows = []
    for row in result.rows:
        metrics = row_metrics(row)
        cells = [*_key_cells(row.regularizer, row.strength, architecture_text(row)), str(row.seed)]
        cells += [_number(name, metrics[name]) if name in metrics else "—" for name in METRICS]
        cells += [row.method, row.status] + ([row.error or ""] if _has_errors(result) else [])
        rows.append(cells)
    return columns, rows


def group_table(result: StudyResult) -> Table:
    """Mean ± std over seeds per (regulariser, strength, architecture); ``seeds`` counts those not failed."""
    rows = []
    for group in groups(result.rows):
        ok = sum(row.status != "failed" for row in group.rows)
        seeds = str(ok) if ok == len(group.rows) else f"{ok} of {len(group.rows)}"
        rows.append([*_key_cells(group.regularizer, group.strength, group.architecture), seeds,
                     *(_spread_text(name, group.spreads.get(name)) for name in METRICS)])
    return GROUP_COLUMNS, rows


def _totals_text(result: StudyResult) -> str:
    rows = result.rows
    counts = {status: sum(row.status == status for row in rows) for status in STATUS_COLOURS}
    return (f"{len(rows)} configuration{'' if len(rows) == 1 else 's'}: {counts['exact']} exact, "
            f"{counts['partial']} partial, {counts['failed']} failed · data set {_dataset_text(result.spec)}")


def _dataset_text(spec: StudySpec) -> str:
    return f"npz {spec.dataset.npz}" if isinstance(spec.dataset, NpzDataset) else spec.dataset


def _regularizers_text(spec: StudySpec) -> str:
    parts = []
    for regularizer in spec.regularizers:
        settings = regularizer.model_dump(exclude={"kind", "strengths"})
        strengths = getattr(regularizer, "strengths", None)
        text = regularizer.kind + "".join(f" {name}={value:g}" for name, value in settings.items())
        parts.append(text + (f" strengths {', '.join(f'{s:g}' for s in strengths)}" if strengths else ""))
    return "; ".join(parts)


def _settings(result: StudyResult) -> Table:
    spec = result.spec
    time_limit = "none" if spec.time_limit_s is None else f"{spec.time_limit_s:g} s per configuration"
    rows = [
        ["data set", _dataset_text(spec)],
        ["architectures", ", ".join(map(spec_architecture_text, spec.architectures))],
        ["regularisers", _regularizers_text(spec)],
        ["seeds", ", ".join(str(seed) for seed in spec.seeds)],
        ["training", f"{spec.epochs} epochs, batch {spec.batch_size}, learning rate {spec.learning_rate:g} (Adam)"],
        ["domain", "default (the data's box)" if spec.domain is None else domain_text(spec.domain)],
        ["method", spec.method],
        ["time limit", time_limit],
        ["output", spec.output],
        ["exactcompress", result.versions.exactcompress],
    ]
    return ["", ""], rows


def _title(result: StudyResult) -> str:
    return f"exactcompress study: {_dataset_text(result.spec)}, {len(result.rows)} configurations"


def render_study_markdown(result: StudyResult, figure_names: Sequence[str] = ()) -> str:
    """study.md text: title, totals, image links to ``figure_names`` (written next to it), the mean ± std
    table, the per-configuration table and the settings."""
    parts = [f"# {md_cell(_title(result))}", md_cell(_totals_text(result))]
    if figure_names:
        images = [f"![{md_cell(FIGURE_CAPTIONS.get(name, name))}]({quote(name)})" for name in figure_names]
        parts.append("## Figures\n\n" + "\n\n".join(images))
    parts += [
        f"## Mean ± std over seeds\n\n{md_table(group_table(result))}",
        f"## Configurations\n\n{md_table(config_table(result))}",
        f"## Settings\n\n{md_table(_settings(result))}",
    ]
    return "\n\n".join(parts) + "\n"


def render_study_html(result: StudyResult, figures: dict[str, bytes]) -> str:
    """Self-contained study.html: the markdown's content with ``figures`` (PNG bytes by name) embedded."""
    parts = [f"<h1>{html.escape(_title(result))}</h1>", f"<p>{html.escape(_totals_text(result))}</p>"]
    if figures:
        images = [html_img(png, FIGURE_CAPTIONS.get(name, name)) for name, png in figures.items()]
        parts.append("<h2>Figures</h2>\n" + "\n".join(images))
    parts += [
        f"<h2>Mean ± std over seeds</h2>\n{html_table(group_table(result))}",
        f"<h2>Configurations</h2>\n{html_table(config_table(result))}",
        f"<h2>Settings</h2>\n{html_table(_settings(result))}",
    ]
    return html_page(_title(result), "\n".join(parts))


def render_study_csv(result: StudyResult) -> str:
    """study.csv: a header of ``StudyRow`` field names, then one line per configuration (``hidden`` as
    ``64x32``, missing values empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = list(StudyRow.model_fields)
    writer.writerow(fields)
    for row in result.rows:
        values = row.model_dump()
        values["hidden"] = hidden_text(row.hidden)
        writer.writerow(["" if values[field] is None else values[field] for field in fields])
    return buffer.getvalue()


def render_study_table(result: StudyResult) -> str:
    """Plain-text table for a terminal: one line per configuration (errors cut to 60 characters), then a
    blank line and the totals."""
    columns, rows = config_table(result)
    cells = [[terminal_text(cell, TERMINAL_ERROR_CHARS if column == "error" else None)
              for column, cell in zip(columns, row)] for row in rows]
    return text_table((columns, cells), TERMINAL_LEFT) + "\n\n" + _totals_text(result)


# ---------------------------------------------------------------- figures


def _figure(title: str, n_panels: int = 1, height_in: float = FIGURE_SIZE_IN[1]) -> tuple[Figure, list[Axes]]:
    columns = min(n_panels, PANELS_PER_ROW)
    rows = math.ceil(n_panels / columns)
    size = (max(FIGURE_SIZE_IN[0], 1.5 + 3.2 * columns), height_in * rows + 0.5)
    figure = Figure(figsize=size, dpi=FIGURE_DPI, layout="constrained")
    figure.suptitle(title, fontsize=10)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_axis_off()
    return figure, axes[:n_panels]


def _no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no configuration finished", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _legend(figure: Figure, kinds: Sequence[str], extra: Sequence[Line2D] = ()) -> None:
    handles = [Line2D([], [], color=REGULARIZER_STYLE[kind][0], marker=REGULARIZER_STYLE[kind][1], linestyle="",
                      label=kind) for kind in kinds]
    figure.legend(handles=[*handles, *extra], loc="outside right upper", fontsize=8, frameon=False)


def _error(spread: Spread, scale: float = 1.0) -> float:
    return 0.0 if spread.std is None else spread.std * scale


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats in both coordinates (both maximised), sorted by x."""
    front = [
        index for index, (x, y) in enumerate(points)
        if not any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in points)
    ]
    return sorted(front, key=lambda index: points[index])


def _accuracy_png(result: StudyResult) -> bytes:
    figure, [axes] = _figure("Test accuracy vs neurons removed (mean ± std over seeds)", height_in=4.5)
    shown = [group for group in groups(result.rows) if REMOVED in group.spreads and ACCURACY in group.spreads]
    if not shown:
        _no_data(axes)
        return png_bytes(figure)
    points = [(group.spreads[REMOVED].mean / 100, group.spreads[ACCURACY].mean / 100) for group in shown]
    for group, (x, y) in zip(shown, points):
        colour, marker = REGULARIZER_STYLE[group.regularizer]
        axes.errorbar(x, y, xerr=_error(group.spreads[REMOVED], 0.01), yerr=_error(group.spreads[ACCURACY], 0.01),
                      color=colour, marker=marker, markersize=6, capsize=2, linestyle="")
    front = pareto_front(points)
    axes.plot([points[i][0] for i in front], [points[i][1] for i in front], color=FRONT_COLOUR, linestyle="--",
              linewidth=1, marker="o", markersize=12, markerfacecolor="none", zorder=3)
    for index in front:
        group = shown[index]
        label = " ".join(_key_cells(group.regularizer, group.strength, group.architecture)).replace(" —", "")
        axes.annotate(label, points[index], textcoords="offset points", xytext=(8, 4), fontsize=7)
    axes.set_xlabel("fraction of hidden neurons removed (exactly)")
    axes.set_ylabel("test accuracy")
    axes.set_xlim(-0.03, min(1.03, max(x for x, _ in points) + 0.15))
    front_handle = Line2D([], [], color=FRONT_COLOUR, linestyle="--", marker="o", markerfacecolor="none",
                          label="Pareto front")
    _legend(figure, list(dict.fromkeys(group.regularizer for group in shown)), [front_handle])
    return png_bytes(figure)


def _stable_png(result: StudyResult) -> bytes:
    architectures = list(dict.fromkeys(map(spec_architecture_text, result.spec.architectures)))
    figure, panels = _figure("Neurons proved stable vs strength (mean ± std over seeds)", len(architectures))
    by_architecture = {name: [g for g in groups(result.rows) if g.architecture == name and STABLE in g.spreads]
                       for name in architectures}
    kinds = list(dict.fromkeys(g.regularizer for shown in by_architecture.values() for g in shown))
    positive = [g.strength for shown in by_architecture.values() for g in shown if g.strength > 0]
    for axes, name in zip(panels, architectures):
        axes.set_title(name, fontsize=9)
        for kind in kinds:
            colour, marker = REGULARIZER_STYLE[kind]
            shown = [g for g in by_architecture[name] if g.regularizer == kind]
            for group in (g for g in shown if g.strength == 0):
                axes.axhline(group.spreads[STABLE].mean / 100, color=colour, linestyle=":", linewidth=1.5)
            curve = [g for g in shown if g.strength > 0]
            if curve:
                axes.errorbar([g.strength for g in curve], [g.spreads[STABLE].mean / 100 for g in curve],
                              yerr=[_error(g.spreads[STABLE], 0.01) for g in curve], color=colour, marker=marker,
                              capsize=2)
        if positive:
            axes.set_xscale("log")
            axes.set_xlim(min(positive) / 3, max(positive) * 3)
        axes.set_ylim(-0.03, 1.03)
        axes.set_xlabel("strength (log scale)")
        axes.set_ylabel("fraction stable")
    zero = Line2D([], [], color="#555555", linestyle=":", label="strength 0 (dotted level)")
    _legend(figure, kinds, [zero] if any(g.strength == 0 for s in by_architecture.values() for g in s) else [])
    return png_bytes(figure)


def _seconds_png(result: StudyResult) -> bytes:
    figure, [axes] = _figure("Solve seconds vs width (mean ± std over seeds)")
    shown = [group for group in groups(result.rows) if SECONDS in group.spreads]
    if not shown:
        _no_data(axes)
        return png_bytes(figure)
    kinds = list(dict.fromkeys(group.regularizer for group in shown))
    dodge = 0.01 * max(group.width for group in shown)
    for group in shown:
        colour, marker = REGULARIZER_STYLE[group.regularizer]
        offset = (kinds.index(group.regularizer) - (len(kinds) - 1) / 2) * dodge
        axes.errorbar(group.width + offset, group.spreads[SECONDS].mean, yerr=_error(group.spreads[SECONDS]),
                      color=colour, marker=marker, capsize=2, linestyle="")
    seconds = [group.spreads[SECONDS].mean for group in shown if group.spreads[SECONDS].mean > 0]
    if seconds and max(seconds) > LOG_SCALE_RATIO * min(seconds):
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0.0)
    widths = sorted({group.width for group in shown})
    axes.set_xticks(widths, [str(width) for width in widths])
    axes.set_xlabel("hidden neurons (sum of layer widths)")
    axes.set_ylabel("solve seconds" + (" (log scale)" if axes.get_yscale() == "log" else ""))
    _legend(figure, kinds)
    return png_bytes(figure)


def study_figures(result: StudyResult) -> dict[str, bytes]:
    """The study's PNG figures by file name (accuracy vs removed with the Pareto front, fraction stable vs
    strength per architecture, solve seconds vs width); byte-identical for equal results."""
    return {
        ACCURACY_FIGURE: _accuracy_png(result),
        STABLE_FIGURE: _stable_png(result),
        SECONDS_FIGURE: _seconds_png(result),
    }

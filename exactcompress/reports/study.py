"""Human-readable views of a study's ``StudyResult``: study.md, a self-contained study.html, study.csv, PNG
figures and a plain-text table for the terminal.

Tables: one row per configuration, and the mean ± sample standard deviation over seeds per setting (every
setting but the seed: regulariser with its p, smoothing or a, strength, architecture with its kernel size; a
regulariser setting is shown where the study has several values of it). Percentages are of the configuration's
hidden neurons (parameters for "parameters removed"); failed configurations show "—" and are left out of every
mean. Figures plot the means over seeds with the spread as error bars, and say how many failed configurations
they leave out; matplotlib's object API with the Agg canvas, no PNG metadata, so the same result always gives
the same bytes.
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
#: markers of the architectures in the accuracy figure, in the order they appear (cycled)
ARCHITECTURE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
#: (line style of curves, fill style of points) of regularisers of one kind with different settings, in the
#: order they appear (cycled; ":" is the strength-0 level)
SETTING_STYLES = (("-", "full"), ("--", "none"), ("-.", "left"))
#: regulariser settings a row carries besides its strength
REGULARIZER_SETTINGS = ("p", "smoothing", "a")
FRONT_COLOUR = "#222222"
ARCHITECTURE_COLOUR = "#555555"
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


def varying_settings(spec: StudySpec) -> frozenset[tuple[str, str]]:
    """(kind, setting) of the regulariser settings that take several values among the spec's regularisers of
    one kind: those tell groups apart, so tables and logs show them."""
    values: dict[tuple[str, str], set[float]] = {}
    for regularizer in spec.regularizers:
        for name, value in regularizer.model_dump(exclude={"kind", "strengths"}).items():
            values.setdefault((regularizer.kind, name), set()).add(value)
    return frozenset(key for key, seen in values.items() if len(seen) > 1)


def regularizer_text(row: StudyRow, shown: frozenset[tuple[str, str]] = frozenset()) -> str:
    """``lp``, or ``lp p=0.25`` where ``shown`` (``varying_settings``) has ``("lp", "p")``."""
    settings = [(name, getattr(row, name)) for name in REGULARIZER_SETTINGS if (row.regularizer, name) in shown]
    return row.regularizer + "".join(f" {name}={value:g}" for name, value in settings if value is not None)


def setting_text(row: StudyRow, shown: frozenset[tuple[str, str]] = frozenset()) -> str:
    """Every setting of a row but its seed, as tables name them: ``lp p=0.25 0.001 conv4k5s2-8``, ``none 16``."""
    return " ".join(_key_cells(row.regularizer, regularizer_text(row, shown), row.strength,
                               architecture_text(row))).replace(" —", "")


def _settings_key(row: StudyRow) -> tuple:
    """Every setting of a row but its seed."""
    return (row.regularizer, row.strength, row.p, row.smoothing, row.a, architecture_text(row), row.kernel_size)


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def row_metrics(row: StudyRow) -> dict[str, float]:
    """The row's metrics by column name (``METRICS`` and ``STABLE``); a failed row has only its test accuracy
    (when it was trained), for its own line: groups leave failed rows out."""
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
    """The seeds of one setting (every setting but the seed), with the spread of each metric over those that did
    not fail."""

    regularizer: str
    label: str  # regularizer_text of its rows
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


def groups(rows: Sequence[StudyRow], shown: frozenset[tuple[str, str]] = frozenset()) -> list[Group]:
    """Rows grouped by every setting but the seed, in the order the groups first appear; failed rows are left
    out of every spread. ``shown``: the settings labels name (``varying_settings``)."""
    members: dict[tuple, list[StudyRow]] = {}
    for row in rows:
        members.setdefault(_settings_key(row), []).append(row)
    result = []
    for group_rows in members.values():
        values: dict[str, list[float]] = {}
        for row in group_rows:
            if row.status != "failed":
                for name, value in row_metrics(row).items():
                    values.setdefault(name, []).append(value)
        spreads = {name: _spread(values[name]) for name in (*METRICS, STABLE) if name in values}
        first = group_rows[0]
        result.append(Group(first.regularizer, regularizer_text(first, shown), first.strength,
                            architecture_text(first), tuple(group_rows), spreads))
    return result


def _number(name: str, value: float) -> str:
    return f"{value:.2f}" if name == SECONDS else f"{value:.1f}"


def _spread_text(name: str, spread: Spread | None) -> str:
    if spread is None:
        return "—"
    mean = _number(name, spread.mean)
    return mean if spread.std is None else f"{mean} ± {_number(name, spread.std)}"


def _key_cells(kind: str, label: str, strength: float, architecture: str) -> list[str]:
    return [label, "—" if kind == "none" else f"{strength:g}", architecture]


# ---------------------------------------------------------------- tables


def _has_errors(result: StudyResult) -> bool:
    return any(row.error for row in result.rows)


def config_table(result: StudyResult) -> Table:
    """One row per configuration (``CONFIG_COLUMNS``, plus ``error`` when some configuration has one)."""
    columns = CONFIG_COLUMNS + (["error"] if _has_errors(result) else [])
    shown = varying_settings(result.spec)
    rows = []
    for row in result.rows:
        metrics = row_metrics(row)
        cells = [*_key_cells(row.regularizer, regularizer_text(row, shown), row.strength, architecture_text(row)),
                 str(row.seed)]
        cells += [_number(name, metrics[name]) if name in metrics else "—" for name in METRICS]
        cells += [row.method, row.status] + ([row.error or ""] if _has_errors(result) else [])
        rows.append(cells)
    return columns, rows


def group_table(result: StudyResult) -> Table:
    """Mean ± std over seeds per setting (``groups``); ``seeds`` counts those not failed, the seeds averaged."""
    rows = []
    for group in groups(result.rows, varying_settings(result.spec)):
        ok = sum(row.status != "failed" for row in group.rows)
        seeds = str(ok) if ok == len(group.rows) else f"{ok} of {len(group.rows)}"
        rows.append([*_key_cells(group.regularizer, group.label, group.strength, group.architecture), seeds,
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


def _figure(title: str, n_panels: int = 1, height_in: float = FIGURE_SIZE_IN[1],
            failed: int = 0) -> tuple[Figure, list[Axes]]:
    """A figure of ``n_panels`` axes; ``failed`` configurations (not plotted) are named under the title."""
    columns = min(n_panels, PANELS_PER_ROW)
    rows = math.ceil(n_panels / columns)
    size = (max(FIGURE_SIZE_IN[0], 1.5 + 3.2 * columns), height_in * rows + 0.5 + (0.2 if failed else 0.0))
    figure = Figure(figsize=size, dpi=FIGURE_DPI, layout="constrained")
    note = f"\n{failed} failed configuration{'' if failed == 1 else 's'}, not shown" if failed else ""
    figure.suptitle(title + note, fontsize=10)
    axes = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for unused in axes[n_panels:]:
        unused.set_axis_off()
    return figure, axes[:n_panels]


def _failed(result: StudyResult) -> int:
    return sum(row.status == "failed" for row in result.rows)


def _no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no configuration finished", ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


@dataclass(frozen=True)
class _Style:
    """How one regulariser label is drawn: its kind's colour and marker, and per label of one kind a line style
    (curves) and a fill style (points)."""

    colour: str
    marker: str
    linestyle: str
    fillstyle: str


def _styles(shown: Sequence[Group]) -> dict[str, _Style]:
    """Regulariser label → its style, in the order the labels appear."""
    styles: dict[str, _Style] = {}
    per_kind: dict[str, int] = {}
    for group in shown:
        if group.label not in styles:
            index = per_kind.get(group.regularizer, 0)
            per_kind[group.regularizer] = index + 1
            colour, marker = REGULARIZER_STYLE[group.regularizer]
            linestyle, fillstyle = SETTING_STYLES[index % len(SETTING_STYLES)]
            styles[group.label] = _Style(colour, marker, linestyle, fillstyle)
    return styles


def _legend(figure: Figure, handles: Sequence[Line2D]) -> None:
    """The legend right of the panels, below the title's height."""
    figure.legend(handles=list(handles), loc="outside right center", fontsize=8, frameon=False)


def _label_handles(styles: dict[str, _Style], lines: bool = False, markers: bool = True) -> list[Line2D]:
    return [Line2D([], [], color=style.colour, marker=style.marker if markers else "o", fillstyle=style.fillstyle,
                   linestyle=style.linestyle if lines else "", label=label) for label, style in styles.items()]


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
    figure, [axes] = _figure("Test accuracy vs neurons removed (mean ± std over seeds)", height_in=4.5,
                             failed=_failed(result))
    shown = [group for group in groups(result.rows, varying_settings(result.spec))
             if REMOVED in group.spreads and ACCURACY in group.spreads]
    if not shown:
        _no_data(axes)
        return png_bytes(figure)
    styles = _styles(shown)
    architectures = list(dict.fromkeys(group.architecture for group in shown))
    markers = {name: ARCHITECTURE_MARKERS[i % len(ARCHITECTURE_MARKERS)] for i, name in enumerate(architectures)}
    points = [(group.spreads[REMOVED].mean / 100, group.spreads[ACCURACY].mean / 100) for group in shown]
    for group, (x, y) in zip(shown, points):
        style = styles[group.label]
        axes.errorbar(x, y, xerr=_error(group.spreads[REMOVED], 0.01), yerr=_error(group.spreads[ACCURACY], 0.01),
                      color=style.colour, marker=markers[group.architecture], fillstyle=style.fillstyle,
                      markersize=6, capsize=2, linestyle="")
    front = pareto_front(points)
    axes.plot([points[i][0] for i in front], [points[i][1] for i in front], color=FRONT_COLOUR, linestyle="--",
              linewidth=1, marker="o", markersize=12, markerfacecolor="none", zorder=3)
    for index in front:
        group = shown[index]
        label = " ".join(_key_cells(group.regularizer, group.label, group.strength, group.architecture))
        axes.annotate(label.replace(" —", ""), points[index], textcoords="offset points", xytext=(8, 4), fontsize=7)
    axes.set_xlabel("fraction of hidden neurons removed (exactly)")
    axes.set_ylabel("test accuracy")
    axes.set_xlim(-0.03, min(1.03, max(x for x, _ in points) + 0.15))
    architecture_handles = [Line2D([], [], color=ARCHITECTURE_COLOUR, marker=marker, linestyle="", label=name)
                            for name, marker in markers.items()]
    front_handle = Line2D([], [], color=FRONT_COLOUR, linestyle="--", marker="o", markerfacecolor="none",
                          label="Pareto front")
    _legend(figure, [*_label_handles(styles, markers=False), *architecture_handles, front_handle])
    return png_bytes(figure)


def _stable_png(result: StudyResult) -> bytes:
    architectures = list(dict.fromkeys(map(spec_architecture_text, result.spec.architectures)))
    figure, panels = _figure("Neurons proved stable vs strength (mean ± std over seeds)", len(architectures),
                             failed=_failed(result))
    every = [g for g in groups(result.rows, varying_settings(result.spec)) if STABLE in g.spreads]
    styles = _styles(every)
    positive = [g.strength for g in every if g.strength > 0]
    for axes, name in zip(panels, architectures):
        axes.set_title(name, fontsize=9)
        for label, style in styles.items():
            shown = [g for g in every if g.architecture == name and g.label == label]
            for group in (g for g in shown if g.strength == 0):
                axes.axhline(group.spreads[STABLE].mean / 100, color=style.colour, linestyle=":", linewidth=1.5)
            curve = [g for g in shown if g.strength > 0]
            if curve:
                axes.errorbar([g.strength for g in curve], [g.spreads[STABLE].mean / 100 for g in curve],
                              yerr=[_error(g.spreads[STABLE], 0.01) for g in curve], color=style.colour,
                              marker=style.marker, linestyle=style.linestyle, capsize=2)
        if positive:
            axes.set_xscale("log")
            axes.set_xlim(min(positive) / 3, max(positive) * 3)
        axes.set_ylim(-0.03, 1.03)
        axes.set_xlabel("strength (log scale)")
        axes.set_ylabel("fraction stable")
    zero = Line2D([], [], color=ARCHITECTURE_COLOUR, linestyle=":", label="strength 0 (dotted level)")
    _legend(figure, [*_label_handles(styles, lines=True), *([zero] if any(g.strength == 0 for g in every) else [])])
    return png_bytes(figure)


def _seconds_png(result: StudyResult) -> bytes:
    figure, [axes] = _figure("Solve seconds vs width (mean ± std over seeds)", failed=_failed(result))
    shown = [group for group in groups(result.rows, varying_settings(result.spec)) if SECONDS in group.spreads]
    if not shown:
        _no_data(axes)
        return png_bytes(figure)
    styles = _styles(shown)
    labels = list(styles)
    dodge = 0.01 * max(group.width for group in shown)
    for group in shown:
        style = styles[group.label]
        offset = (labels.index(group.label) - (len(labels) - 1) / 2) * dodge
        axes.errorbar(group.width + offset, group.spreads[SECONDS].mean, yerr=_error(group.spreads[SECONDS]),
                      color=style.colour, marker=style.marker, fillstyle=style.fillstyle, capsize=2, linestyle="")
    seconds = [group.spreads[SECONDS].mean for group in shown if group.spreads[SECONDS].mean > 0]
    if seconds and max(seconds) > LOG_SCALE_RATIO * min(seconds):
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0.0)
    widths = sorted({group.width for group in shown})
    axes.set_xticks(widths, [str(width) for width in widths])
    axes.set_xlabel("hidden neurons (sum of layer widths)")
    axes.set_ylabel("solve seconds" + (" (log scale)" if axes.get_yscale() == "log" else ""))
    _legend(figure, _label_handles(styles))
    return png_bytes(figure)


def study_figures(result: StudyResult) -> dict[str, bytes]:
    """The study's PNG figures by file name (accuracy vs removed with the Pareto front, a marker per
    architecture; fraction stable vs strength per architecture; solve seconds vs width); byte-identical for
    equal results."""
    return {
        ACCURACY_FIGURE: _accuracy_png(result),
        STABLE_FIGURE: _stable_png(result),
        SECONDS_FIGURE: _seconds_png(result),
    }

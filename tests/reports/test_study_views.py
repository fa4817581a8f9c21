"""Study tables, csv and figures built from hand-made rows: what counts as one group of seeds, what its means
average, and what the figures show and say."""

from __future__ import annotations

import csv
import io

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from exactcompress.reports import study as study_views
from exactcompress.reports.study import config_table, group_table, render_study_csv, study_figures
from exactcompress.schema import StudyResult, StudyRow, StudySpec, Versions
from exactcompress.training.study import failed_row, plan_configs

VERSIONS = Versions(exactcompress="0.1.0", python="3.11", numpy="1.26", torch="2.13", pyscipopt="6.3", scip="10.0")
CNN = {"kind": "cnn", "channels": [4], "strides": [2], "dense": [8]}


def spec(**changes) -> StudySpec:
    fields = dict(architectures=[[16]], regularizers=[{"kind": "lp", "strengths": [1e-3], "p": 0.5},
                                                      {"kind": "lp", "strengths": [1e-3], "p": 0.25}],
                  seeds=[0], epochs=1, output="out")
    return StudySpec.model_validate({**fields, **changes})


def finished(row: StudyRow, **changes) -> StudyRow:
    """``row`` as if it had trained and compressed exactly."""
    return row.model_copy(update=dict(status="exact", error=None, test_accuracy=0.9, stably_active=2,
                                      stably_inactive=2, neurons_before=8, neurons_after=6, parameters_before=100,
                                      parameters_after=80, solve_seconds=1.0, **changes))


def rows_of(study: StudySpec) -> list[StudyRow]:
    return [finished(failed_row(study, config, "x")) for config in plan_configs(study)]


def test_configurations_differing_only_in_p_a_or_kernel_size_are_groups_of_their_own():
    study = spec(architectures=[[16], {**CNN, "kernel_size": 3}, {**CNN, "kernel_size": 5}],
                 regularizers=[{"kind": "lp", "strengths": [1e-3], "p": 0.5},
                               {"kind": "lp", "strengths": [1e-3], "p": 0.25},
                               {"kind": "tl1", "strengths": [1e-3], "a": 1.0},
                               {"kind": "tl1", "strengths": [1e-3], "a": 2.0}])
    result = StudyResult(spec=study, versions=VERSIONS, rows=rows_of(study))

    columns, groups = group_table(result)
    keys = [tuple(group[:3]) for group in groups]
    assert len(keys) == len(set(keys)) == 12 and all(group[3] == "1" for group in groups)  # one seed each
    assert {key[0] for key in keys} == {"lp p=0.5", "lp p=0.25", "tl1 a=1", "tl1 a=2"}
    assert {key[2] for key in keys} == {"16", "conv4s2-8", "conv4k5s2-8"}
    assert {row[0] for row in config_table(result)[1]} == {"lp p=0.5", "lp p=0.25", "tl1 a=1", "tl1 a=2"}
    lines = list(csv.DictReader(io.StringIO(render_study_csv(result))))
    settings = {(line["regularizer"], line["p"], line["smoothing"], line["a"], line["kernel_size"]) for line in lines}
    assert ("lp", "0.25", "0.001", "", "5") in settings and ("tl1", "", "", "2.0", "") in settings
    assert len(settings) == 12


def test_settings_that_do_not_vary_are_not_named():
    study = spec(regularizers=[{"kind": "lp", "strengths": [1e-3, 1e-2], "p": 0.5},
                               {"kind": "l1", "strengths": [1e-3]}])
    result = StudyResult(spec=study, versions=VERSIONS, rows=rows_of(study))
    assert [group[0] for group in group_table(result)[1]] == ["lp", "lp", "l1"]


def test_a_failed_seed_is_left_out_of_every_mean_of_its_group():
    study = spec(seeds=[0, 1], regularizers=[{"kind": "l1", "strengths": [1e-3]}])
    ok, bad = rows_of(study)
    bad = bad.model_copy(update=dict(status="failed", error="internal error", test_accuracy=0.1))  # trained first
    result = StudyResult(spec=study, versions=VERSIONS, rows=[ok, bad])

    columns, [group] = group_table(result)
    assert dict(zip(columns, group))["seeds"] == "1 of 2"
    assert dict(zip(columns, group))["test accuracy %"] == "90.0"  # not (90 + 10) / 2
    assert config_table(result)[1][1][4] == "10.0"  # its own line still shows what it trained to


@pytest.fixture
def drawn(monkeypatch) -> dict[str, object]:
    """The matplotlib figures ``study_figures`` draws, by the order drawn."""
    figures: list = []
    monkeypatch.setattr(study_views, "png_bytes", lambda figure: figures.append(figure) or b"")
    return figures


def _overlaps_title(figure) -> bool:
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    [legend] = figure.legends
    return figure._suptitle.get_window_extent(renderer).overlaps(legend.get_window_extent(renderer))


def test_figures_mark_architectures_keep_the_legend_off_the_title_and_count_failed_ones(drawn):
    study = spec(architectures=[[16], [8, 8], CNN], seeds=[0, 1],
                 regularizers=[{"kind": "l1", "strengths": [1e-3, 1e-2]}])
    rows = rows_of(study)
    rows[0] = rows[0].model_copy(update=dict(status="failed", error="x"))
    study_figures(StudyResult(spec=study, versions=VERSIONS, rows=rows))

    accuracy, stable, seconds = drawn
    points = [line for line in accuracy.axes[0].lines if line.get_linestyle() == "None"]
    assert len({line.get_marker() for line in points} - {"|", "_"}) == 3  # one per architecture (not the caps)
    for figure in drawn:
        assert figure._suptitle.get_text().endswith("\n1 failed configuration, not shown")
        assert not _overlaps_title(figure)

    drawn.clear()  # one narrow panel, three legend entries
    narrow = spec(regularizers=[{"kind": "none"}, {"kind": "l1", "strengths": [1e-3, 1e-2]}])
    study_figures(StudyResult(spec=narrow, versions=VERSIONS, rows=rows_of(narrow)))
    assert "failed" not in drawn[1]._suptitle.get_text() and not _overlaps_title(drawn[1])

"""The report's figures drawn with Pillow: what they show, their ticks, and that drawing them needs no matplotlib."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from exactcompress.reports.raster import (
    SIZE,
    nice_ticks,
    stacked_bars_png,
    step_line_png,
)


def pixels_of(png: bytes, colour: str) -> int:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    rgb = tuple(int(colour[i: i + 2], 16) for i in (1, 3, 5))
    return int(np.all(image == rgb, axis=-1).sum())


def test_bars_are_stacked_in_proportion_to_their_counts():
    png = stacked_bars_png("t", ["0", "1", "2"], [("a", "#2a9d8f", [10, 0, 4]), ("b", "#e76f51", [0, 5, 4])],
                           "layer", "neurons")
    assert Image.open(io.BytesIO(png)).size == SIZE
    a, b = pixels_of(png, "#2a9d8f"), pixels_of(png, "#e76f51")
    # a: 14 units of bar and a legend box; b: 9 units and the same box; a unit is the same area in every bar
    box = pixels_of(stacked_bars_png("t", ["0"], [("a", "#2a9d8f", [0]), ("b", "#e76f51", [0])], "x", "y"),
                    "#2a9d8f")
    assert box > 0
    assert (a - box) / (b - box) == pytest.approx(14 / 9, rel=0.03)


def test_equal_figures_give_equal_bytes_and_a_figure_without_categories_says_so():
    series = [("a", "#2a9d8f", [3, 1])]
    assert stacked_bars_png("t", ["0", "1"], series, "x", "y") == stacked_bars_png("t", ["0", "1"], series, "x", "y")
    empty = stacked_bars_png("no layers", [], [("a", "#2a9d8f", [])], "x", "y")
    assert Image.open(io.BytesIO(empty)).size == SIZE and pixels_of(empty, "#2a9d8f") == 0


def test_the_step_line_and_its_level_are_drawn():
    png = step_line_png("t", [(0.0, 12.0), (0.5, 4.0), (1.2, 0.4)], 1.0, "bound", "level", "s", "bound")
    assert Image.open(io.BytesIO(png)).size == SIZE
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    line = np.abs(image - [0x26, 0x46, 0x53]).sum(-1) < 60  # the step line's colour, antialiased edges aside
    assert line.sum() > 500


@pytest.mark.parametrize("low, high", [(0.0, 100.0), (0.0, 7.0), (0.0, 1.0), (-0.3, 12.6), (0.0, 0.0), (3.0, 3.0),
                                       (0.0, 1234.0), (0.002, 0.0185)])
def test_ticks_cover_the_range_with_a_round_step(low, high):
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 7
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10.0 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1.0, 2.0, 2.5, 5.0))


def test_a_report_figure_is_drawn_without_importing_matplotlib():
    code = ("import sys; from exactcompress.reports.raster import stacked_bars_png; "
            "stacked_bars_png('t', ['0'], [('a', '#2a9d8f', [1])], 'x', 'y'); "
            "import exactcompress.reports.report; print('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"

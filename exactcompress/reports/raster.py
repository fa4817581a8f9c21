"""The per-model report's figures drawn with Pillow: stacked bars per category, a step line over time.

Every ``compress`` run draws them, and importing matplotlib alone took ~0.45 s here, about a fifth of what a
small network's run spent outside the engine (``benchmarks/README.md``); Pillow imports in ~0.04 s and draws
one in ~0.05 s. Everything is drawn at ``SUPERSAMPLE`` times the size and reduced with a Lanczos filter, so lines
and text are smooth. The study and zoo pages, drawn once per job, keep matplotlib.
"""

from __future__ import annotations

import importlib.util
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from .common import FIGURE_DPI, FIGURE_SIZE_IN

#: finished figure in pixels: the size and resolution of the matplotlib figures of the other pages (770 x 385)
SIZE = (round(FIGURE_SIZE_IN[0] * FIGURE_DPI), round(FIGURE_SIZE_IN[1] * FIGURE_DPI))
#: drawing scale before the final reduction
SUPERSAMPLE = 2
TEXT_PX = 12
SMALL_PX = 10
TITLE_PX = 13
AXIS_COLOUR = "#333333"
GRID_COLOUR = "#e5e5e5"


@lru_cache(maxsize=None)
def _font(pixels: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the font of the matplotlib figures (found in matplotlib's data without importing it: it
    covers far more characters of model names than Pillow's own font, which is the fallback)."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), pixels * SUPERSAMPLE)
    return ImageFont.load_default(size=pixels * SUPERSAMPLE)


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Tick values from a multiple of the step at or below ``low`` to one at or above ``high``: the smallest step
    of 1, 2, 2.5 or 5 times a power of ten that needs at most ``most`` intervals (at least one)."""
    span = high - low if high > low else max(abs(high), 1.0)
    power = 10.0 ** math.floor(math.log10(span / most))
    for step in (m * power * 10**k for k in range(3) for m in (1.0, 2.0, 2.5, 5.0)):
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        last = max(last, first + 1)
        if last - first <= most:
            return [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    raise AssertionError("unreachable: the largest step tried covers the range in at most two intervals")


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2g}"


class _Plot:
    """A white canvas with a title and one plot area (``frame``: left, top, right, bottom in finished pixels)
    mapping data ranges ``xlim`` and ``ylim`` onto it."""

    def __init__(self, title: str, frame: tuple[int, int, int, int], xlim: tuple[float, float],
                 ylim: tuple[float, float]):
        self.image = Image.new("RGB", (SIZE[0] * SUPERSAMPLE, SIZE[1] * SUPERSAMPLE), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.frame, self.xlim, self.ylim = frame, xlim, ylim
        self.text(((frame[0] + frame[2]) / 2, frame[1] / 2), title, TITLE_PX, "mm")

    def x(self, value: float) -> float:
        left, _, right, _ = self.frame
        return left + (value - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.frame
        return bottom - (value - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (bottom - top)

    def text(self, xy: tuple[float, float], text: str, pixels: int, anchor: str, fill: str = "black") -> None:
        self.draw.multiline_text((xy[0] * SUPERSAMPLE, xy[1] * SUPERSAMPLE), text, font=_font(pixels), fill=fill,
                                 anchor=anchor, align="center", spacing=2 * SUPERSAMPLE)

    def rectangle(self, box: tuple[float, float, float, float], fill: str) -> None:
        left, top, right, bottom = (round(value * SUPERSAMPLE) for value in box)
        if bottom > top and right > left:
            self.draw.rectangle((left, top, right - 1, bottom - 1), fill=fill)

    def line(self, points: Sequence[tuple[float, float]], fill: str, width: float = 1.0,
             dash: float | None = None) -> None:
        scaled = [(x * SUPERSAMPLE, y * SUPERSAMPLE) for x, y in points]
        if dash is None:
            self.draw.line(scaled, fill=fill, width=round(width * SUPERSAMPLE))
            return
        for (x0, y0), (x1, y1) in zip(scaled, scaled[1:]):  # dashes along each segment
            length = math.hypot(x1 - x0, y1 - y0)
            pieces = max(1, int(length / (2 * dash * SUPERSAMPLE)))
            for k in range(pieces):
                a, b = k / pieces, (k + 0.5) / pieces
                self.draw.line(((x0 + a * (x1 - x0), y0 + a * (y1 - y0)), (x0 + b * (x1 - x0), y0 + b * (y1 - y0))),
                               fill=fill, width=round(width * SUPERSAMPLE))

    def y_axis(self, ticks: Sequence[float], label: str) -> None:
        left, top, right, bottom = self.frame
        for tick in ticks:
            if self.ylim[0] - 1e-9 <= tick <= self.ylim[1] + 1e-9:
                self.line([(left, self.y(tick)), (right, self.y(tick))], GRID_COLOUR)
                self.line([(left - 4, self.y(tick)), (left, self.y(tick))], AXIS_COLOUR)
                self.text((left - 7, self.y(tick)), _label(tick), TEXT_PX, "rm")
        label_image = Image.new("RGB", (int((bottom - top) * SUPERSAMPLE), 2 * TEXT_PX * SUPERSAMPLE), "white")
        ImageDraw.Draw(label_image).text((label_image.width / 2, label_image.height / 2), label, font=_font(TEXT_PX),
                                         fill="black", anchor="mm")
        rotated = label_image.rotate(90, expand=True)
        self.image.paste(rotated, (round(12 * SUPERSAMPLE), round(top * SUPERSAMPLE)))

    def x_axis(self, ticks: Sequence[tuple[float, str]], label: str) -> None:
        _, _, _, bottom = self.frame
        for value, text in ticks:
            self.line([(self.x(value), bottom), (self.x(value), bottom + 4)], AXIS_COLOUR)
            self.text((self.x(value), bottom + 7), text, SMALL_PX, "ma")
        self.text(((self.frame[0] + self.frame[2]) / 2, bottom + 42), label, TEXT_PX, "mt")

    def border(self) -> None:
        left, top, right, bottom = self.frame
        self.line([(left, top), (right, top), (right, bottom), (left, bottom), (left, top)], AXIS_COLOUR)

    def legend(self, entries: Sequence[tuple[str, str, str]], corner: tuple[float, float]) -> None:
        """``entries``: (label, colour, "box" | "line" | "dash"), listed down from ``corner`` (left, top)."""
        x, y = corner
        for label, colour, mark in entries:
            if mark == "box":
                self.rectangle((x, y + 3, x + 16, y + 13), colour)
            else:
                self.line([(x, y + 8), (x + 16, y + 8)], colour, 1.5, dash=3.0 if mark == "dash" else None)
            self.text((x + 22, y + 8), label, SMALL_PX, "lm")
            y += 18

    def png(self) -> bytes:
        """The figure reduced to ``SIZE`` as PNG bytes, with no metadata: equal figures give equal bytes."""
        buffer = io.BytesIO()
        self.image.resize(SIZE, Image.Resampling.LANCZOS).save(buffer, format="PNG")
        return buffer.getvalue()


def stacked_bars_png(title: str, categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]],
                     x_label: str, y_label: str) -> bytes:
    """PNG (``SIZE``) of one stacked bar per category; ``series``: (label, colour, a count per category), stacked
    from the bottom in that order and listed in a legend on the right. No categories: the title and a note."""
    frame = (70, 34, 545, 305)
    totals = [sum(counts[k] for _, _, counts in series) for k in range(len(categories))]
    ticks = nice_ticks(0.0, float(max(totals, default=0)) or 1.0)
    plot = _Plot(title, frame, (-0.5, max(len(categories), 1) - 0.5), (0.0, ticks[-1]))
    if not categories:
        plot.text(((frame[0] + frame[2]) / 2, (frame[1] + frame[3]) / 2), "no layers analysed", TEXT_PX, "mm")
        return plot.png()
    plot.y_axis(ticks, y_label)
    half = 0.3  # bar width 0.6 of a category's slot
    bottoms = [0] * len(categories)
    for _, colour, counts in series:
        for k, count in enumerate(counts):
            plot.rectangle((plot.x(k - half), plot.y(bottoms[k] + count), plot.x(k + half), plot.y(bottoms[k])),
                           colour)
            bottoms[k] += count
    plot.border()
    plot.x_axis(list(zip(range(len(categories)), categories)), x_label)
    plot.legend([(label, colour, "box") for label, colour, _ in series], (frame[2] + 16, frame[1]))
    return plot.png()


def step_line_png(title: str, points: Sequence[tuple[float, float]], level: float, line_label: str,
                  level_label: str, x_label: str, y_label: str) -> bytes:
    """PNG (``SIZE``) of ``points`` (x, y) as a step line (each y holds until the next x) and a dashed horizontal
    line at ``level``, with a legend in the upper right corner."""
    frame = (70, 34, 750, 315)
    xs, ys = [x for x, _ in points], [y for _, y in points] + [level]
    x_ticks = nice_ticks(min(xs), max(xs))
    low, high = min(0.0, min(ys)), max(ys)
    y_ticks = nice_ticks(low, high + 0.05 * (high - low))  # headroom: a line at the top stays off the border
    plot = _Plot(title, frame, (x_ticks[0], x_ticks[-1]), (y_ticks[0], y_ticks[-1]))
    plot.y_axis(y_ticks, y_label)
    steps = [(plot.x(points[0][0]), plot.y(points[0][1]))]
    for (_, y_before), (x, y) in zip(points, points[1:]):
        steps += [(plot.x(x), plot.y(y_before)), (plot.x(x), plot.y(y))]
    plot.line(steps, "#264653", 1.5)
    plot.line([(frame[0], plot.y(level)), (frame[2], plot.y(level))], "#e76f51", 1.0, dash=4.0)
    plot.border()
    plot.x_axis([(tick, _label(tick)) for tick in x_ticks], x_label)
    plot.legend([(line_label, "#264653", "line"), (level_label, "#e76f51", "dash")], (frame[2] - 330, frame[1] + 8))
    return plot.png()

"""What every view shares: tables as Markdown, HTML and plain text; self-contained HTML pages; PNG bytes.

Every cell and title is escaped for its target. PNGs carry no metadata, so the same figure gives the same
bytes whatever the matplotlib version or the date.
"""

from __future__ import annotations

import base64
import html
import io
import re
from typing import TYPE_CHECKING, Collection, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURE_SIZE_IN = (7.0, 3.5)


FIGURE_DPI = 110


Table = tuple[list[str], list[list[str]]]
#: cells right-aligned in HTML: numbers (signs, decimals, exponents, a trailing %) and the "—" placeholder
NUMBER = re.compile(r"^([-−]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?|—)$")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-exact { color: #1b7f3b; } .status-partial { color: #a86500; } .status-failed { color: #b00020; }
.error { background: #fdecea; border-left: 4px solid #b00020; padding: 0.5em 1em; }
img { max-width: 100%; } .legend { font-size: 0.85em; color: #555; }
table.models td:first-child { white-space: nowrap; } body:has(table.models) { max-width: 90em; }
"""


def md_cell(text: str) -> str:
    """One line, pipes escaped, and HTML escaped (markdown passes raw HTML through)."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def md_table(table: Table) -> str:
    """A markdown table; every header and cell goes through ``md_cell``."""
    headers, rows = table
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def terminal_text(text: str, limit: int | None = None) -> str:
    """One printable line (control characters become spaces), cut to ``limit`` characters with "…"."""
    line = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return line[: limit - 1] + "…" if limit is not None and len(line) > limit else line


def text_table(table: Table, left_aligned: Collection[str]) -> str:
    """Plain-text table: the header, a rule and one line per row, columns two spaces apart; columns named in
    ``left_aligned`` are left-aligned, the others right-aligned. Cells are used as they are."""
    headers, rows = table
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if column in left_aligned else cell.rjust(width)
            for column, cell, width in zip(headers, cells, widths)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def html_cell(tag: str, text: str) -> str:
    """One escaped ``<th>``/``<td>``; number cells get class ``num`` (right-aligned)."""
    css = ' class="num"' if tag == "td" and NUMBER.match(text) else ""
    return f"<{tag}{css}>{html.escape(text)}</{tag}>"


def html_table(table: Table) -> str:
    """An escaped ``<table>``; the header row is left out when every header is empty."""
    headers, rows = table
    head = "<tr>" + "".join(html_cell("th", h) for h in headers) + "</tr>" if any(headers) else ""
    body = "".join("<tr>" + "".join(html_cell("td", cell) for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def html_img(png: bytes, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a base64 data URL."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, body: str) -> str:
    """A complete HTML document with the inline stylesheet around ``body`` (already HTML)."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def png_bytes(figure: Figure) -> bytes:
    """PNG bytes without metadata (no software version or date): equal figures give equal bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()

"""Tables of raw numbers that render with human units: text, markdown and notebook HTML.

:class:`ReportTable` is a DataFrame whose cells keep their raw values; rendering turns them into
``4.7 M``, ``21 MB``, ``1.2 ms`` or ``0.11x`` by the unit of their row or column.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

__all__ = [
    "ReportTable",
    "as_float",
    "ratio",
    "human",
    "markdown_table",
    "html_table",
    "text_table",
]


class ReportTable(pd.DataFrame):
    """A DataFrame of raw numbers that renders (HTML, markdown, text) with human units.

    The unit of each cell comes from ``attrs["units"]``: ``{"columns": {...}, "rows": {...}}``
    mapping labels to ``count``, ``bytes``, ``seconds`` or ``ratio``; column units win.
    Derived frames (slices, arithmetic) are plain DataFrames.
    """

    @property
    def _constructor(self) -> Callable[..., pd.DataFrame]:
        """Operations on the table return plain DataFrames."""
        return pd.DataFrame

    def formatted(self) -> pd.DataFrame:
        """Copy of the table with every cell rendered as a string with units."""
        units = self.attrs.get("units", {})
        columns, rows = units.get("columns", {}), units.get("rows", {})
        cells = [
            [
                human(self.iloc[i, j], columns.get(col) or rows.get(idx) or "text")
                for j, col in enumerate(self.columns)
            ]
            for i, idx in enumerate(self.index)
        ]
        return pd.DataFrame(cells, index=self.index, columns=self.columns, dtype=object)

    def _cells(self) -> tuple[list[str], list[list[str]], str]:
        """Header and body cells of the formatted table (index first) and their alignment."""
        shown = self.formatted()
        header = [str(self.index.name or "")] + [str(c) for c in shown.columns]
        body = [[str(idx)] + list(row) for idx, row in zip(shown.index, shown.values, strict=True)]
        units = self.attrs.get("units", {})
        numeric = bool(units.get("rows")) or None
        align = "l" + "".join(
            "r" if (units.get("columns", {}).get(c) or numeric) else "l" for c in self.columns
        )
        return header, body, align

    def _repr_html_(self) -> str:
        """HTML rendering with units, shown by notebooks."""
        return html_table(*self._cells())

    def __repr__(self) -> str:
        """Aligned text rendering with units."""
        return text_table(*self._cells())

    def to_markdown(self, buf: Any = None, **kwargs: Any) -> str | None:
        """Markdown rendering with units; written to ``buf`` (path or file) when given."""
        text = markdown_table(*self._cells())
        if buf is None:
            return text
        if isinstance(buf, (str, os.PathLike)):
            with open(buf, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            buf.write(text)
        return None


def as_float(value: Any) -> float:
    """Number as float; None and missing values become NaN."""
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when undefined."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


_PREFIXES: tuple[tuple[float, str], ...] = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def human(value: Any, kind: str) -> str:
    """Render a value with 3 significant digits and a unit: 4.7 M, 21 MB, 1.2 ms, 0.11x."""
    if kind == "text":
        return "" if value is None or value is pd.NA else str(value)
    number = as_float(value)
    if math.isnan(number):
        return "-"
    if kind == "ratio":
        return f"{number:.3g}x"
    if kind == "seconds":
        return _seconds(number)
    unit = "B" if kind == "bytes" else ""
    for scale, prefix in _PREFIXES:
        if abs(number) >= scale:
            return f"{number / scale:.3g} {prefix}{unit}"
    text = f"{int(number)}" if number == int(number) else f"{number:.3g}"
    return f"{text} {unit}" if unit else text


def _seconds(value: float) -> str:
    """Seconds rendered in s, ms or us with 3 significant digits."""
    if value >= 1 or value == 0:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def _default_align(columns: int) -> str:
    """First column left-aligned, the others right-aligned."""
    return "l" + "r" * (columns - 1)


def markdown_table(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """GitHub-style markdown table; ``align`` holds one ``l``/``r`` per column."""
    align = align or _default_align(len(header))

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---" if side == "l" else "---:" for side in align]
    return "\n".join([line(header), line(rule), *map(line, body)]) + "\n"


def html_table(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """Small HTML table; ``align`` holds one ``l``/``r`` per column."""
    sides = ["left" if side == "l" else "right" for side in align or _default_align(len(header))]
    head = "".join(
        f'<th style="text-align:{side}">{html.escape(h)}</th>'
        for h, side in zip(header, sides, strict=True)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:{side}">{html.escape(c)}</td>'
            for c, side in zip(row, sides, strict=True)
        )
        + "</tr>"
        for row in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def text_table(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """Plain aligned text table; ``align`` holds one ``l``/``r`` per column."""
    align = align or _default_align(len(header))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *map(line, body)])

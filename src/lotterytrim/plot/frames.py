"""The results frames the plots read: required columns, and picking tasks or methods by name.

The columns are the runner's (:mod:`lotterytrim.runner.results`), which writes the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from lotterytrim.runner.results import COST_COLUMNS, KEY_COLUMNS

__all__ = ["check_frame", "choose", "FIGURE_COLUMNS", "RESULT_COLUMNS", "SELECTION_COLUMNS"]

FIGURE_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "error", "kept")
"""Columns of the results frame that ``figure2`` reads."""

RESULT_COLUMNS: tuple[str, ...] = (*FIGURE_COLUMNS, "params", *COST_COLUMNS)
"""Columns of the results frame that ``table1`` needs to select models from it."""

SELECTION_COLUMNS: tuple[str, ...] = ("task", "model", "level", "error", "params", *COST_COLUMNS)
"""Columns of a frame returned by ``lotterytrim.pick_models`` that ``table1`` reads."""


def check_frame(frame: Any, required: Sequence[str], what: str) -> pd.DataFrame:
    """The frame itself after checking it is a non-empty DataFrame with ``required`` columns."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty:
        raise ValueError(f"{what}: the frame is empty")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ValueError(
            f"{what}: missing column(s) {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    return frame


def choose(frame: pd.DataFrame, column: str, wanted: str | Sequence[str] | None) -> list[Any]:
    """Values of ``column`` in order of appearance, or ``wanted`` after checking they exist."""
    present = list(pd.unique(frame[column]))
    if wanted is None:
        return present
    names = [wanted] if isinstance(wanted, str) else list(wanted)
    unknown = [name for name in names if name not in present]
    if unknown or not names:
        raise ValueError(
            f"results: no rows with {column} {', '.join(map(repr, unknown)) or '(none given)'} "
            f"(present: {', '.join(map(str, present))})"
        )
    return names

"""Reading lottery results back and picking the paper's models from them.

A run directory holds one JSON row per finished level; :func:`load_results` gathers them into a
DataFrame and :func:`pick_models` picks the reference, *best*, *smallest* and *optimal* models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lotterytrim.errors import LotteryError

__all__ = [
    "COLUMNS",
    "COST_COLUMNS",
    "EARLYBIRD_COLUMNS",
    "KEY_COLUMNS",
    "RESERVED",
    "VALIDATION",
    "load_results",
    "pick_models",
    "read_json",
]

KEY_COLUMNS: tuple[str, ...] = ("task", "method", "criterion", "replicate", "level")
"""Columns that name a result row: one row per task, method, criterion, replicate and level."""

COST_COLUMNS: tuple[str, ...] = ("macs", "memory_bytes", "disk_bytes")
"""Columns that measure a row's model besides its parameters: compute, inference memory, file."""

COLUMNS: tuple[str, ...] = (
    *KEY_COLUMNS,
    "error",
    "params",
    "kept",
    *COST_COLUMNS,
    "train_seconds",
    "step_seconds",
    "seconds",
    "train_epochs",
    "total_epochs",
    "total_seconds",
    "path",
)
"""Columns every result row has; ``evaluate`` and ``ctx.record`` may add more."""

EARLYBIRD_COLUMNS: tuple[str, ...] = ("drawn_epoch", "settled")
"""Columns of the rows of ``@earlybird`` methods: when the ticket was drawn, and whether its
keep-set settled (1) or the reference's training ended first (0)."""

RESERVED = frozenset(COLUMNS + EARLYBIRD_COLUMNS)
"""Columns only the runner writes: ``evaluate`` and ``ctx.record`` may not use their names."""


def load_results(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """All finished rows of a run directory (its per-level JSON rows), sorted by the row key."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"no lottery run directory at {root}")
    rows = [read_json(p) for p in sorted(root.glob("replicate-*/*/level-*.json"))]
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    table = pd.DataFrame(rows)
    extra = [c for c in table.columns if c not in RESERVED]
    ours = [c for c in (*COLUMNS[:-1], *EARLYBIRD_COLUMNS, "path") if c in table.columns]
    table = table[ours + sorted(extra)]
    return table.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


_PICK_REQUIRED = (*KEY_COLUMNS, "error", "params")
VALIDATION = "val_error"
"""The column :func:`pick_models` chooses by when the rows have it: validation error."""


def pick_models(
    results: pd.DataFrame,
    *,
    by: str | None = None,
    method: str | Sequence[str] | None = None,
    criterion: str | Sequence[str] | None = None,
    smallest: float = 1.5,
    optimal: float = 1.1,
    same_size: float = 0.01,
) -> pd.DataFrame:
    """The paper's three models per task, next to the reference, chosen on validation error.

    Rows are averaged over replicates per (method, criterion, level). Every method and
    criterion of levels >= 1 competes unless ``method`` / ``criterion`` name some. ``by`` is
    the column that chooses (default ``"val_error"`` when the rows have it, else ``"error"``;
    it may not have gaps):
    *best* has the lowest mean, *smallest* the fewest parameters with a mean at most
    ``smallest`` x the reference's, *optimal* the fewest within ``optimal`` x. Sizes within
    ``same_size`` (a share) of the fewest count as equal, and the lowest ``by`` among them
    wins: two methods' last levels differ by a few weights, not by what a user would pick
    them for. The ``error`` column then only reports the chosen models (test error in the
    examples); ``chosen_by`` names the column that chose, ``smaller`` is the reference's
    parameters over the model's, and ``path`` the file of the replicate best by ``by``. A model
    no level qualifies for is absent.
    """
    if not isinstance(results, pd.DataFrame):
        raise TypeError(f"results must be a pandas DataFrame, got {type(results).__name__}")
    missing = [c for c in _PICK_REQUIRED if c not in results.columns]
    if missing:
        raise ValueError(f"results lack the column(s) {missing}")
    if results.empty:
        raise ValueError("results are empty: no lottery level has finished")
    for name, value in (("smallest", smallest), ("optimal", optimal)):
        if not (isinstance(value, (int, float)) and value >= 1.0):
            raise ValueError(f"{name} must be a factor >= 1, got {value!r}")
    if not (isinstance(same_size, (int, float)) and 0.0 <= same_size < 1.0):
        raise ValueError(f"same_size must be a share in [0, 1), got {same_size!r}")
    by = _choosing_column(results, by)
    pool_all = results[results["level"] >= 1]
    for column, wanted in (("method", method), ("criterion", criterion)):
        if wanted is not None:
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            unknown = sorted(set(names) - set(results[column]))
            if unknown:
                raise ValueError(
                    f"pick_models: no rows with {column} {unknown} "
                    f"(present: {sorted(map(str, pd.unique(results[column])))})"
                )
            pool_all = pool_all[pool_all[column].isin(names)]
    numeric = [
        c
        for c in results.columns
        if c not in KEY_COLUMNS and c != "path" and pd.api.types.is_numeric_dtype(results[c])
    ]
    out: list[dict[str, Any]] = []
    for task, rows in results.groupby("task", sort=True):
        refs = rows[rows["level"] == 0].drop_duplicates("replicate")
        if refs.empty:
            continue
        ref = _summary(refs, numeric, by)
        out.append(
            {"task": task, "model": "reference", "method": "reference", **ref, "smaller": 1.0}
        )
        pool = pool_all[pool_all["task"] == task]
        if pool.empty:
            continue
        levels = pd.DataFrame(
            [
                {"method": m, "criterion": c, **_summary(g, numeric, by)}
                for (m, c, _), g in pool.groupby(["method", "criterion", "level"], sort=True)
            ]
        )
        levels["smaller"] = ref["params"] / levels["params"]
        best = levels.sort_values([by, "params"], kind="stable").iloc[0]
        out.append({"task": task, "model": "best", **best.to_dict()})
        for name, factor in (("smallest", smallest), ("optimal", optimal)):
            ok = levels[levels[by] <= factor * ref[by]]
            if not ok.empty:
                near = ok[ok["params"] <= ok["params"].min() * (1.0 + same_size)]
                pick = near.sort_values([by, "params"], kind="stable").iloc[0]
                out.append({"task": task, "model": name, **pick.to_dict()})
    order = ["task", "model", "method", "criterion", "level", "error", "error_std"]
    order += [by] if by != "error" else []
    order += ["params", "smaller"]
    table = pd.DataFrame(out)
    table["chosen_by"] = by
    rest = [c for c in table.columns if c not in order]
    return table[order + rest].reset_index(drop=True)


def _choosing_column(results: pd.DataFrame, by: str | None) -> str:
    """The column that chooses: ``by`` checked, or validation error when present, else error."""
    if by is None:  # validation whenever the rows have it: a gap in it is an error, not test
        by = VALIDATION if VALIDATION in results.columns else "error"
    if by not in results.columns:
        raise ValueError(f"pick_models(by={by!r}): the results have no such column")
    if not pd.api.types.is_numeric_dtype(results[by]) or results[by].isna().any():
        raise ValueError(
            f"pick_models(by={by!r}): the column must be numeric with no missing value"
        )
    return by


def _summary(rows: pd.DataFrame, numeric: Sequence[str], by: str) -> dict[str, Any]:
    """Mean of the numeric columns over replicates, the spread of the error, the best file."""
    best = rows.sort_values(by, kind="stable").iloc[0]
    summary: dict[str, Any] = {
        "criterion": str(best["criterion"]) if rows["level"].iloc[0] > 0 else "-",
        "level": int(rows["level"].iloc[0]),
        "error": float(rows["error"].mean()),
        "error_std": float(rows["error"].std(ddof=0)),
        "replicates": int(rows["replicate"].nunique()),
    }
    for column in numeric:
        if column != "error":
            summary[column] = float(rows[column].mean())
    summary["params"] = float(rows["params"].mean())
    if "path" in rows.columns:
        summary["path"] = best["path"]
    return summary


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LotteryError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise LotteryError(f"{path} does not hold a JSON object")
    return value

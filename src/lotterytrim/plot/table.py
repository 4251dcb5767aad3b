"""The paper's Table 1: each task's reference and trimmed model side by side, as a table of raw
numbers that renders with human units. See ``docs/plots.md``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from lotterytrim.measure.report import Report
from lotterytrim.measure.tables import ReportTable, as_float, ratio
from lotterytrim.plot.frames import RESULT_COLUMNS, SELECTION_COLUMNS, check_frame, choose

__all__ = ["Table1", "table1", "TRIMMED_MODELS"]

TRIMMED_MODELS: tuple[str, ...] = ("optimal", "smallest", "best")
"""Models of ``pick_models`` that ``table1`` can set against the reference."""

_COSTS: tuple[tuple[str, str], ...] = (
    ("params", "count"),
    ("disk_bytes", "bytes"),
    ("macs", "count"),
    ("memory_bytes", "bytes"),
)
"""Cost columns of Table 1 with the unit used to render them."""


class Table1(ReportTable):
    """The paper's Table 1: rows (task, model), raw numbers, rendered with human units.

    Columns: ``method`` and ``criterion`` (that produced the trimmed model), ``level``,
    ``error``, ``params``, ``disk_bytes``, ``macs``, ``memory_bytes``, ``latency_s`` (only when
    known) and, for each cost, ``<cost>_smaller``: reference divided by trimmed value on the
    trimmed row (how many times smaller), missing on the reference row.
    """

    def _cells(self) -> tuple[list[str], list[list[str]], str]:
        """Header and body cells, one column per index level, and their alignment."""
        shown = self.formatted()
        names = [str(name or "") for name in self.index.names]
        header = names + [str(column) for column in shown.columns]
        body = [
            [*(str(part) for part in (key if isinstance(key, tuple) else (key,))), *row]
            for key, row in zip(shown.index, shown.values, strict=True)
        ]
        units = self.attrs.get("units", {}).get("columns", {})
        align = "l" * len(names) + "".join("r" if units.get(c) else "l" for c in self.columns)
        return header, body, align


# --------------------------------------------------------------------------- table 1


def table1(
    results: pd.DataFrame,
    *,
    reports: Mapping[tuple[str, str], Report] | None = None,
    model: str = "optimal",
    method: str | Sequence[str] | None = None,
    criterion: str | Sequence[str] | None = None,
    tasks: str | Sequence[str] | None = None,
    by: str | None = None,
) -> Table1:
    """The paper's Table 1: each task's reference and trimmed ``model`` side by side.

    ``results`` is a lottery results frame (models are then picked with
    ``lotterytrim.pick_models(results, by=by, method=method, criterion=criterion)``: on validation
    error when the rows have it, across every method unless some are named) or a frame
    ``pick_models`` already returned (taken as is). ``model`` is ``"optimal"``, ``"smallest"`` or
    ``"best"``. Latency comes from ``reports`` (``{(task, "reference" | "trimmed"): Report}``,
    its ``latency_median_s``) or else from a ``latency_ms`` column; the other numbers come from
    the results. ``tasks`` keeps only those tasks (one name prints one task's rows). A task
    where no level qualifies as ``model`` gets a trimmed row of missing values.
    """
    if model not in TRIMMED_MODELS:
        raise ValueError(f"model must be one of {', '.join(TRIMMED_MODELS)}, got {model!r}")
    frame = check_frame(results, ("task",), "results")
    raw: pd.DataFrame | None = None
    if "model" in frame.columns:
        chosen = check_frame(frame, SELECTION_COLUMNS, "selection")
    else:
        raw = check_frame(frame, RESULT_COLUMNS, "results")
        from lotterytrim.runner.results import pick_models

        chosen = check_frame(
            pick_models(raw, by=by, method=method, criterion=criterion),
            SELECTION_COLUMNS,
            "selection",
        )
    task_names = choose(chosen, "task", tasks)
    if raw is not None and tasks is None:  # the runner's task order, not pick_models's
        order = list(pd.unique(raw["task"]))
        task_names.sort(key=lambda name: order.index(name) if name in order else len(order))
    latencies = _report_latencies(reports, list(pd.unique(chosen["task"])))

    keys: list[tuple[str, str]] = []
    records: list[dict[str, Any]] = []
    for task in task_names:
        reference = _one(chosen, task, "reference")
        if reference is None:
            raise ValueError(f"selection: task {task!r} has no 'reference' row")
        trimmed = _one(chosen, task, model)
        for kind, row in (("reference", reference), ("trimmed", trimmed)):
            record: dict[str, Any] = {
                "method": _named(kind, row, "method"),
                "criterion": _named(kind, row, "criterion"),
            }
            record.update({n: as_float(None if row is None else row[n]) for n in _NUMBERS})
            record["latency_s"] = _latency(task, kind, row, raw, latencies, method)
            records.append(record)
            keys.append((str(task), "reference" if kind == "reference" else model))
    return _assemble(keys, records)


_NUMBERS: tuple[str, ...] = ("level", "error", *(name for name, _ in _COSTS))
"""Numbers of a selected model shown in Table 1."""


def _assemble(keys: list[tuple[str, str]], records: list[dict[str, Any]]) -> Table1:
    """Build the table: integer counts, ratios on each trimmed row, units for rendering."""
    frame = pd.DataFrame(records, index=pd.MultiIndex.from_tuples(keys, names=["task", "model"]))
    costs = [name for name, _ in _COSTS]
    if frame["latency_s"].notna().any():
        costs.append("latency_s")
    else:
        frame = frame.drop(columns="latency_s")
    for cost in costs:
        ratios = [math.nan] * len(frame)
        for i in range(1, len(frame), 2):
            ratios[i] = ratio(frame[cost].iloc[i - 1], frame[cost].iloc[i])
        frame[f"{cost}_smaller"] = ratios
    for name in ("level", *(name for name, _ in _COSTS)):
        frame[name] = frame[name].round().astype("Int64")
    table = Table1(frame)
    units = {"level": "count", "error": "count", **dict(_COSTS), "latency_s": "seconds"}
    units.update({f"{cost}_smaller": "ratio" for cost in costs})
    table.attrs["units"] = {"columns": {c: units[c] for c in table.columns if c in units}}
    return table


def _named(kind: str, row: pd.Series | None, column: str) -> str:
    """Method or criterion of a trimmed model, ``"-"`` for the reference or when unknown."""
    if kind == "reference" or row is None or column not in row.index:
        return "-"
    value = row[column]
    return value if isinstance(value, str) else "-"


def _one(chosen: pd.DataFrame, task: str, model: str) -> pd.Series | None:
    """The selection row of (task, model), None when absent."""
    rows = chosen[(chosen["task"] == task) & (chosen["model"] == model)]
    if len(rows) > 1:
        raise ValueError(f"selection: task {task!r} has {len(rows)} rows for model {model!r}")
    return None if rows.empty else rows.iloc[0]


def _report_latencies(
    reports: Mapping[tuple[str, str], Report] | None, tasks: Iterable[str]
) -> dict[tuple[str, str], float]:
    """Latency seconds from the reports mapping, keyed (task, "reference" | "trimmed")."""
    if reports is None:
        return {}
    if not isinstance(reports, Mapping):
        raise TypeError(f"reports must map (task, kind) to Report, got {type(reports).__name__}")
    known = set(tasks)
    latencies = {}
    for key, item in reports.items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[1] in ("reference", "trimmed")):
            raise ValueError(f"reports keys are (task, 'reference' | 'trimmed'), got {key!r}")
        if key[0] not in known:
            raise ValueError(f"reports: unknown task {key[0]!r} (tasks: {sorted(known)})")
        if not isinstance(item, Report):
            raise TypeError(f"reports[{key!r}] is a {type(item).__name__}, not a Report")
        if item.latency_median_s is not None:
            latencies[key] = float(item.latency_median_s)
    return latencies


def _latency(
    task: str,
    kind: str,
    row: pd.Series | None,
    raw: pd.DataFrame | None,
    reported: Mapping[tuple[str, str], float],
    method: str | Sequence[str] | None,
) -> float:
    """Latency in seconds of one Table 1 row: from a report, else ``latency_ms``, else NaN."""
    if (task, kind) in reported:
        return reported[(task, kind)]
    if row is None:
        return math.nan
    if "latency_ms" in row.index and not math.isnan(as_float(row["latency_ms"])):
        return as_float(row["latency_ms"]) / 1e3
    if raw is None or "latency_ms" not in raw.columns:
        return math.nan
    match = (raw["task"] == task) & (raw["level"] == row["level"])
    if kind == "trimmed":
        if "method" in row.index:
            match &= raw["method"] == row["method"]
        elif isinstance(method, str):
            match &= raw["method"] == method
        if "criterion" in row.index and isinstance(row["criterion"], str):
            match &= raw["criterion"] == row["criterion"]
    values = raw.loc[match, "latency_ms"].dropna()
    return math.nan if values.empty else float(values.mean()) / 1e3

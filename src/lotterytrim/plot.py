"""The paper's Figure 2 and Table 1 from the results frame of a lottery experiment.

``figure2(results)`` draws test error against the share of weights kept, per task and method,
then normalised across tasks per method and per trimming criterion. ``table1(results)`` lines up
each task's reference model with its trimmed model (error, parameters, disk, MACs, memory and
latency when known) as a DataFrame of raw numbers that renders with human units.
See ``docs/plots.md``.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from .report import Report, ReportTable, _float, _ratio

__all__ = ["Table1", "figure2", "table1"]

FIGURE_COLUMNS: tuple[str, ...] = (
    "task",
    "method",
    "criterion",
    "replicate",
    "level",
    "error",
    "kept",
)
"""Columns of the results frame that ``figure2`` reads."""

RESULT_COLUMNS: tuple[str, ...] = (
    *FIGURE_COLUMNS,
    "params",
    "macs",
    "memory_bytes",
    "disk_bytes",
)
"""Columns of the results frame that ``table1`` needs to select models from it."""

SELECTION_COLUMNS: tuple[str, ...] = (
    "task",
    "model",
    "level",
    "error",
    "params",
    "disk_bytes",
    "macs",
    "memory_bytes",
)
"""Columns of a frame returned by ``lotterytrim.select`` that ``table1`` reads."""

TRIMMED_MODELS: tuple[str, ...] = ("optimal", "smallest", "best")
"""Models of ``select`` that ``table1`` can set against the reference."""

_COSTS: tuple[tuple[str, str], ...] = (
    ("params", "count"),
    ("disk_bytes", "bytes"),
    ("macs", "count"),
    ("memory_bytes", "bytes"),
)
"""Cost columns of Table 1 with the unit used to render them."""

_METHOD_COLORS: dict[str, str] = {
    "finetune": "tab:orange",
    "reinit": "tab:purple",
    "mask": "tab:green",
    "trim": "tab:blue",
}
_CRITERION_COLORS: dict[str, str] = {
    "magnitude": "tab:blue",
    "activation": "tab:orange",
    "batchnorm": "tab:green",
    "gradient": "tab:red",
    "taylor": "tab:purple",
    "information": "tab:brown",
    "random": "tab:gray",
}
_SPARE_COLORS: tuple[str, ...] = ("tab:pink", "tab:olive", "tab:cyan", "black", "gold", "navy")
_REFERENCE_STYLE: dict[str, Any] = {"color": "black", "linestyle": "--", "linewidth": 1.0}


class Table1(ReportTable):
    """The paper's Table 1: rows (task, model), raw numbers, rendered with human units.

    Columns: ``criterion`` (that produced the trimmed model), ``level``, ``error``, ``params``,
    ``disk_bytes``, ``macs``, ``memory_bytes``, ``latency_s`` (only when known) and, for each
    cost, ``<cost>_smaller``: reference divided by trimmed value on the trimmed row (how many
    times smaller), missing on the reference row.
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


@dataclass(frozen=True)
class _Curve:
    """A curve over pruning levels: x (mean share kept), y (mean error) and a shaded band."""

    levels: np.ndarray
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray
    high: np.ndarray


# --------------------------------------------------------------------------- figure 2


def figure2(
    results: pd.DataFrame,
    *,
    tasks: str | Sequence[str] | None = None,
    methods: str | Sequence[str] | None = None,
    criterion: str | Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Draw the paper's Figure 2 from lottery results; write it as PNG to ``path`` if given.

    Left, one axes per task: mean test error against the share of weights kept (log x axis,
    100% at the left) for each method, averaged over criteria and replicates, shaded between
    the lowest and highest replicate; the dashed line is the reference (level 0) error.
    Right, top: per method, error divided by each task's reference error, averaged over tasks
    and shaded between the lowest and highest task. Right, bottom: the same per criterion for
    method ``"trim"`` only. Levels are aligned by index; x is the mean share kept at a level.
    ``tasks``, ``methods`` and ``criterion`` restrict the data drawn (a name or several).
    Rows with a missing error or share kept are ignored.
    """
    frame = _check_frame(results, FIGURE_COLUMNS, "results")
    frame = frame.dropna(subset=["error", "kept"])
    if frame.empty:
        raise ValueError("results: every row has a missing error or kept share")
    if (frame["kept"] <= 0).any():
        raise ValueError("results: column 'kept' must be > 0 (it is drawn on a log scale)")
    task_names = _choose(frame, "task", tasks)
    method_names = _order(_choose(frame, "method", methods), _METHOD_COLORS)
    criterion_names = _order(_choose(frame, "criterion", criterion), _CRITERION_COLORS)
    frame = frame[frame["task"].isin(task_names) & frame["criterion"].isin(criterion_names)]
    references = {task: _reference_error(frame, task) for task in task_names}

    figure, task_axes, method_axes, criterion_axes = _layout(task_names)
    for index, (task, ax) in enumerate(zip(task_names, task_axes, strict=True)):
        rows = frame[frame["task"] == task]
        curves = {
            method: _curve(rows[rows["method"] == method])
            for method in method_names
            if (rows["method"] == method).any()
        }
        _draw(ax, curves, _METHOD_COLORS, references[task], f"no data for {task}")
        ax.set_title(str(task))
        if index == 0 and curves:
            ax.legend(fontsize="small")

    normalise = {t: r for t, r in references.items() if r > 0}
    for task in sorted(set(references) - set(normalise), key=task_names.index):
        warnings.warn(
            f"task {task!r} has a reference error of 0: left out of the normalised panels",
            stacklevel=2,
        )
    by_method = {
        method: _across_tasks(frame[frame["method"] == method], normalise)
        for method in method_names
    }
    _draw(method_axes, _present(by_method), _METHOD_COLORS, 1.0, "no data")
    method_axes.set_title("methods, across tasks")
    method_axes.set_ylabel("error / reference")

    trim = frame[frame["method"] == "trim"]
    trim_criteria = [c for c in criterion_names if (trim["criterion"] == c).any()]
    if "trim" not in method_names or not trim_criteria:
        _no_data(criterion_axes, "no data: no trim results")
    elif len(trim_criteria) < 2:
        _no_data(criterion_axes, f"no data: one criterion only ({trim_criteria[0]})")
    else:
        by_criterion = {
            name: _across_tasks(trim[trim["criterion"] == name], normalise)
            for name in trim_criteria
        }
        _draw(criterion_axes, _present(by_criterion), _CRITERION_COLORS, 1.0, "no data")
    criterion_axes.set_title("trimming criteria, across tasks")
    criterion_axes.set_ylabel("error / reference")
    criterion_axes.set_xlabel("weights kept")
    for ax in (method_axes, criterion_axes):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")

    if path is not None:
        _save_png(figure, path)
    return figure


def _layout(tasks: Sequence[str]) -> tuple[Figure, list[Axes], Axes, Axes]:
    """Figure with a grid of task axes (two columns) left and two stacked axes right."""
    columns = 1 if len(tasks) == 1 else 2
    rows = math.ceil(len(tasks) / columns)
    figure = Figure(figsize=(3.4 * columns + 4.2, max(2.6 * rows, 5.6)), layout="constrained")
    outer = figure.add_gridspec(1, 2, width_ratios=[columns, 1.25])
    left = outer[0].subgridspec(rows, columns)
    right = outer[1].subgridspec(2, 1)
    task_axes = []
    for index, task in enumerate(tasks):
        row, column = divmod(index, columns)
        ax = figure.add_subplot(left[row, column])
        ax.set_label(f"task:{task}")
        if column == 0:
            ax.set_ylabel("test error")
        if row == rows - 1 or index + columns >= len(tasks):
            ax.set_xlabel("weights kept")
        task_axes.append(ax)
    method_axes = figure.add_subplot(right[0])
    method_axes.set_label("methods")
    criterion_axes = figure.add_subplot(right[1])
    criterion_axes.set_label("criteria")
    return figure, task_axes, method_axes, criterion_axes


def _curve(rows: pd.DataFrame) -> _Curve:
    """Mean error per level over replicates (each averaged over criteria), min-max band."""
    per_replicate = rows.groupby(["level", "replicate"])["error"].mean()
    stats = per_replicate.groupby(level="level").agg(["mean", "min", "max"]).sort_index()
    kept = rows.groupby("level")["kept"].mean().reindex(stats.index)
    return _Curve(
        levels=stats.index.to_numpy(),
        x=kept.to_numpy(dtype=float),
        y=stats["mean"].to_numpy(dtype=float),
        low=stats["min"].to_numpy(dtype=float),
        high=stats["max"].to_numpy(dtype=float),
    )


def _across_tasks(rows: pd.DataFrame, references: Mapping[str, float]) -> _Curve | None:
    """Per-task mean curves divided by the task's reference, averaged over tasks.

    Uses the levels every task in ``rows`` has; the band runs from the lowest to the highest
    task. None when no task has data.
    """
    curves = {
        task: _curve(rows[rows["task"] == task])
        for task in references
        if (rows["task"] == task).any()
    }
    if not curves:
        return None
    common = sorted(set.intersection(*(set(c.levels.tolist()) for c in curves.values())))
    if not common:
        return None
    ys = np.stack([c.y[np.isin(c.levels, common)] / references[t] for t, c in curves.items()])
    xs = np.stack([c.x[np.isin(c.levels, common)] for c in curves.values()])
    return _Curve(
        levels=np.asarray(common),
        x=xs.mean(axis=0),
        y=ys.mean(axis=0),
        low=ys.min(axis=0),
        high=ys.max(axis=0),
    )


def _present(curves: Mapping[str, _Curve | None]) -> dict[str, _Curve]:
    """The curves that exist."""
    return {name: curve for name, curve in curves.items() if curve is not None}


def _draw(
    ax: Axes,
    curves: Mapping[str, _Curve],
    colors: Mapping[str, str],
    reference: float,
    empty: str,
) -> None:
    """One line and band per curve, a dashed reference line, a log x axis in percent."""
    if not curves:
        _no_data(ax, empty)
        return
    palette = _palette(list(curves), colors)
    for name, curve in curves.items():
        ax.fill_between(curve.x, curve.low, curve.high, color=palette[name], alpha=0.2, linewidth=0)
        ax.plot(curve.x, curve.y, color=palette[name], marker="o", markersize=3, label=name)
    ax.axhline(reference, label="reference", **_REFERENCE_STYLE)
    smallest = min(float(np.min(curve.x)) for curve in curves.values())
    _percent_axis(ax, min(smallest, 1.0))


def _no_data(ax: Axes, note: str) -> None:
    """Replace an empty panel's content with a short note."""
    ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize="small")
    ax.set_xticks([])
    ax.set_yticks([])


def _percent_axis(ax: Axes, smallest: float) -> None:
    """Log x axis from 100% (left) down to ``smallest``, labelled in percent."""
    ax.set_xscale("log")
    ax.set_xlim(1.04, smallest / 1.04)
    ax.xaxis.set_major_locator(FixedLocator(_percent_ticks(smallest)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))


def _percent_ticks(smallest: float) -> list[float]:
    """Round shares from 1 down to ``smallest`` for tick marks (at most six), then ``smallest``.

    The deepest share gets a tick of its own when no round share lies close to it.
    """
    ticks: list[float] = []
    for steps in ((1.0, 0.7, 0.5, 0.3, 0.2), (1.0, 0.5, 0.2), (1.0, 0.3), (1.0,)):
        ticks = [
            step * 10.0**-decade
            for decade in range(int(-math.log10(smallest)) + 2)
            for step in steps
        ]
        ticks = [t for t in ticks if smallest * (1 - 1e-9) <= t <= 1.0]
        if len(ticks) <= 6:
            break
    if ticks[-1] / smallest > 1.4:
        ticks.append(smallest)
    return ticks


def _percent(value: float, _position: Any = None) -> str:
    """A share as a percentage: 1.0 -> '100%', 0.005 -> '0.5%'."""
    return f"{value * 100:.3g}%"


def _palette(names: Sequence[str], known: Mapping[str, str]) -> dict[str, str]:
    """Fixed colours for known names, spare ones (in turn) for the others."""
    spare = iter(_SPARE_COLORS * (len(names) // len(_SPARE_COLORS) + 1))
    return {name: known[name] if name in known else next(spare) for name in names}


def _order(names: Sequence[str], known: Mapping[str, str]) -> list[str]:
    """Known names in their usual order, then the others in the given order."""
    return [n for n in known if n in names] + [n for n in names if n not in known]


def _reference_error(frame: pd.DataFrame, task: str) -> float:
    """Mean test error of the task's level-0 rows (the trained reference)."""
    errors = frame.loc[(frame["task"] == task) & (frame["level"] == 0), "error"]
    if errors.empty:
        raise ValueError(f"results: task {task!r} has no level-0 (reference) rows")
    return float(errors.mean())


def _save_png(figure: Figure, path: str | os.PathLike[str]) -> None:
    """Write the figure as PNG through a temporary file in the same folder, then rename."""
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    handle, temporary = tempfile.mkstemp(prefix=".figure-", suffix=".png", dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format="png", dpi=150)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# --------------------------------------------------------------------------- table 1


def table1(
    results: pd.DataFrame,
    *,
    reports: Mapping[tuple[str, str], Report] | None = None,
    model: str = "optimal",
    method: str = "trim",
    criterion: str | None = None,
    tasks: str | Sequence[str] | None = None,
) -> Table1:
    """The paper's Table 1: each task's reference and trimmed ``model`` side by side.

    ``results`` is a lottery results frame (models are then picked with
    ``lotterytrim.select(results, method=method, criterion=criterion)``) or a frame
    ``select`` already returned (taken as is). ``model`` is ``"optimal"``, ``"smallest"`` or
    ``"best"``. Latency comes from ``reports`` (``{(task, "reference" | "trimmed"): Report}``,
    its ``latency_median_s``) or else from a ``latency_ms`` column; the other numbers come from
    the results. ``tasks`` keeps only those tasks (one name prints one task's rows). A task
    where no level qualifies as ``model`` gets a trimmed row of missing values.
    """
    if model not in TRIMMED_MODELS:
        raise ValueError(f"model must be one of {', '.join(TRIMMED_MODELS)}, got {model!r}")
    frame = _check_frame(results, ("task",), "results")
    raw: pd.DataFrame | None = None
    if "model" in frame.columns:
        chosen = _check_frame(frame, SELECTION_COLUMNS, "selection")
    else:
        raw = _check_frame(frame, RESULT_COLUMNS, "results")
        from .results import select

        chosen = _check_frame(
            select(raw, method=method, criterion=criterion), SELECTION_COLUMNS, "selection"
        )
    task_names = _choose(chosen, "task", tasks)
    if raw is not None and tasks is None:  # the runner's task order, not select's
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
            record: dict[str, Any] = {"criterion": _criterion(kind, row)}
            record.update({n: _float(None if row is None else row[n]) for n in _NUMBERS})
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
            ratios[i] = _ratio(frame[cost].iloc[i - 1], frame[cost].iloc[i])
        frame[f"{cost}_smaller"] = ratios
    for name in ("level", *(name for name, _ in _COSTS)):
        frame[name] = frame[name].round().astype("Int64")
    table = Table1(frame)
    units = {"level": "count", "error": "count", **dict(_COSTS), "latency_s": "seconds"}
    units.update({f"{cost}_smaller": "ratio" for cost in costs})
    table.attrs["units"] = {"columns": {c: units[c] for c in table.columns if c in units}}
    return table


def _criterion(kind: str, row: pd.Series | None) -> str:
    """Criterion that produced a trimmed model, ``"-"`` for the reference or when unknown."""
    if kind == "reference" or row is None or "criterion" not in row.index:
        return "-"
    value = row["criterion"]
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
    method: str,
) -> float:
    """Latency in seconds of one Table 1 row: from a report, else ``latency_ms``, else NaN."""
    if (task, kind) in reported:
        return reported[(task, kind)]
    if row is None:
        return math.nan
    if "latency_ms" in row.index and not math.isnan(_float(row["latency_ms"])):
        return _float(row["latency_ms"]) / 1e3
    if raw is None or "latency_ms" not in raw.columns:
        return math.nan
    match = (raw["task"] == task) & (raw["level"] == row["level"])
    if kind == "trimmed":
        match &= raw["method"] == (row["method"] if "method" in row.index else method)
        if "criterion" in row.index and isinstance(row["criterion"], str):
            match &= raw["criterion"] == row["criterion"]
    values = raw.loc[match, "latency_ms"].dropna()
    return math.nan if values.empty else float(values.mean()) / 1e3


# --------------------------------------------------------------------------- input checks


def _check_frame(frame: Any, required: Sequence[str], what: str) -> pd.DataFrame:
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


def _choose(frame: pd.DataFrame, column: str, wanted: str | Sequence[str] | None) -> list[Any]:
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

"""The paper's Figure 2: test error against the share of weights kept, per task, method and
criterion, drawn from the results frame of a lottery experiment. See ``docs/plots.md``.

matplotlib (the ``plot`` extra) is imported when a figure is drawn, not with this module."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lotterytrim.plot.frames import FIGURE_COLUMNS, check_frame, choose
from lotterytrim.storage.atomic import atomic_file

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOT_HINT", "figure2", "percent_ticks"]

PLOT_HINT = 'pip install "lotterytrim[plot]"'
"""How to install what ``figure2`` draws with; named by the ImportError when it is missing."""

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
    _require_matplotlib()
    frame = check_frame(results, FIGURE_COLUMNS, "results")
    frame = frame.dropna(subset=["error", "kept"])
    if frame.empty:
        raise ValueError("results: every row has a missing error or kept share")
    if (frame["kept"] <= 0).any():
        raise ValueError("results: column 'kept' must be > 0 (it is drawn on a log scale)")
    task_names = choose(frame, "task", tasks)
    method_names = _order(choose(frame, "method", methods), _METHOD_COLORS)
    criterion_names = _order(choose(frame, "criterion", criterion), _CRITERION_COLORS)
    frame = frame[frame["task"].isin(task_names) & frame["criterion"].isin(criterion_names)]
    references = {task: _reference_error(frame, task) for task in task_names}
    # one colour per name for the whole figure, whichever names a panel happens to have
    method_colors = _palette(method_names, _METHOD_COLORS)
    criterion_colors = _palette(criterion_names, _CRITERION_COLORS)

    figure, task_axes, method_axes, criterion_axes = _layout(task_names)
    for index, (task, ax) in enumerate(zip(task_names, task_axes, strict=True)):
        rows = frame[frame["task"] == task]
        curves = {
            method: _curve(rows[rows["method"] == method])
            for method in method_names
            if (rows["method"] == method).any()
        }
        _draw(ax, curves, method_colors, references[task], f"no data for {task}")
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
    _draw(method_axes, _present(by_method), method_colors, 1.0, "no data")
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
        _draw(criterion_axes, _present(by_criterion), criterion_colors, 1.0, "no data")
    criterion_axes.set_title("trimming criteria, across tasks")
    criterion_axes.set_ylabel("error / reference")
    criterion_axes.set_xlabel("weights kept")
    for ax in (method_axes, criterion_axes):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")

    if path is not None:
        _save_png(figure, path)
    return figure


def _require_matplotlib() -> None:
    """Import matplotlib, or raise an ImportError that names the extra installing it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"lt.plot.figure2 draws with matplotlib: {PLOT_HINT}") from exc


def _layout(tasks: Sequence[str]) -> tuple[Figure, list[Axes], Axes, Axes]:
    """Figure with a grid of task axes (two columns) left and two stacked axes right."""
    from matplotlib.figure import Figure

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
    for name, curve in curves.items():
        ax.fill_between(curve.x, curve.low, curve.high, color=colors[name], alpha=0.2, linewidth=0)
        ax.plot(curve.x, curve.y, color=colors[name], marker="o", markersize=3, label=name)
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
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    ax.set_xlim(1.04, smallest / 1.04)
    ax.xaxis.set_major_locator(FixedLocator(percent_ticks(smallest)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_percent))


def percent_ticks(smallest: float) -> list[float]:
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
    """Write the figure as PNG atomically (a temporary file beside ``path``, then renamed)."""
    with atomic_file(path) as temporary, open(temporary, "wb") as stream:
        figure.savefig(stream, format="png", dpi=150)

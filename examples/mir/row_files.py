"""Result rows of the task lotteries: exported from run directories, read back from CSV files.

A committed row file (``results/<profile>/<task>.csv``) holds one row per cell and level of a
task's lottery, with a batch-1 CPU latency measured from the level's model file, so the tables
of :mod:`examples.mir.tables` can be rebuilt with no run directory at hand.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import lotterytrim as lt

from .models import MIR_TASKS, build_model, example_input

__all__ = ["LATER_COLUMNS", "PITCH_COLUMNS", "ROW_COLUMNS", "export", "load_rows"]

ROW_COLUMNS: tuple[str, ...] = (
    "task",
    "settings",
    "method",
    "criterion",
    "replicate",
    "level",
    "params",
    "kept",
    "macs",
    "memory_bytes",
    "disk_bytes",
    "latency_ms",
    "val_error",
    "error",
    "error_low",
    "error_high",
    "test_n",
    "epochs",
    "best_epoch",
    "still_falling",
    "train_seconds",
    "seconds",
)
"""Columns of a committed row file: ``settings`` is the run directory's settings hash, ``error``
the test error, ``error_low``/``error_high`` its bootstrap 95 % interval."""

LATER_COLUMNS: tuple[str, ...] = ("step_val_error", "total_epochs", "total_seconds")
"""Columns of rows made by later versions of the runner and the examples (the validation error
right after a step, a cell's total cost), exported after the others when a run has them."""

PITCH_COLUMNS: tuple[str, ...] = ("rpa", "rca", "rpa_heldout", "rca_heldout", "heldout_n")
"""Columns that pitch rows add after :data:`ROW_COLUMNS`: raw pitch and raw chroma accuracy on
the test set and on its ``heldout_n`` frames of held-out timbres. A row file has them only when
its run recorded them, so the other tasks' files keep :data:`ROW_COLUMNS` alone."""

_KEY = ["task", "method", "criterion", "replicate", "level"]


def export(
    runs: Path, rows: Path, latency_runs: int = 30, tasks: Sequence[str] | None = None
) -> list[Path]:
    """Write one row file per task from the run directories under ``runs`` (only ``tasks``,
    if given); returns them."""
    written = []
    seen: set[str] = set()
    for settings in sorted(runs.glob("*/settings.json")):
        record = json.loads(settings.read_text(encoding="utf-8"))
        table = lt.load_results(settings.parent)
        if table.empty:
            continue
        task = str(record["config"]["task"])
        if tasks is not None and task not in tasks:
            continue
        if task in seen:
            raise SystemExit(f"two runs of {task!r} under {runs}: pass a root holding one each")
        seen.add(task)
        size = record["settings"].get("size", "quick")
        table["settings"] = settings.parent.name.rsplit("-", 1)[-1]
        # a replicate's reference row appears once per method: measure each file once
        latency = {
            path: _latency_ms(settings.parent / path, task, size, latency_runs)
            for path in pd.unique(table["path"])
        }
        table["latency_ms"] = table["path"].map(latency)
        for column in ROW_COLUMNS:
            if column not in table.columns:
                table[column] = float("nan")
        extra = [c for c in (*PITCH_COLUMNS, *LATER_COLUMNS) if c in table.columns]
        table = table[[*ROW_COLUMNS, *extra]].sort_values(_KEY, kind="stable")
        rows.mkdir(parents=True, exist_ok=True)
        target = rows / f"{task}.csv"
        tmp = target.with_suffix(".csv.tmp")
        tmp.write_text(table.to_csv(index=False, float_format="%.6g"), encoding="utf-8")
        tmp.replace(target)
        written.append(target)
    if not written:
        raise SystemExit(f"no finished lottery runs under {runs}")
    return written


def _latency_ms(path: Path, task: str, size: str, runs: int) -> float:
    """Median batch-1 CPU latency of a level's model file, one thread, in milliseconds."""
    model = lt.load(path, functools.partial(build_model, task, size))
    x = example_input(task, size, batch=1)
    measured = lt.report(model, x, latency=True, threads=1, runs=runs, warmup=5)
    return float("nan") if measured.latency_median_s is None else measured.latency_median_s * 1e3


def load_rows(rows: Path) -> pd.DataFrame:
    """The row files of the paper's tasks under ``rows`` (``<task>.csv``, in the order of
    :data:`MIR_TASKS`; the generative task's rows are not part of these tables), one frame."""
    files = [rows / f"{task}.csv" for task in MIR_TASKS if (rows / f"{task}.csv").is_file()]
    if not files:
        raise SystemExit(f"no row files (<task>.csv) under {rows}")
    frame = pd.concat([pd.read_csv(p) for p in files], ignore_index=True)
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise SystemExit(f"row files under {rows} lack the column(s) {missing}")
    return frame

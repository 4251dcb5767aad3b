"""Result rows of the task lotteries, and every table and figure of ``docs/results.md`` from them.

    python -m examples.mir.summarize --runs runs/quick --rows results/quick \\
        --doc docs/results.md --figure docs/figures/figure2_quick.png

``--runs`` exports the finished cells of every run directory under it to one small CSV per task
in ``--rows`` (one row per cell and level, with a batch-1 CPU latency measured from the level's
model file), replacing that task's file. Without ``--runs`` only the committed rows are read.
The tables are printed; ``--doc`` rewrites the blocks between ``<!-- summarize:NAME -->`` and
``<!-- /summarize:NAME -->`` in a markdown file with them, and ``--check`` only says whether that
file is up to date. Models are chosen on validation error (``lt.pick_models``); test error reports.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

import lotterytrim as lt

from .models import TASKS, build_model, example_input

__all__ = [
    "PITCH_COLUMNS",
    "ROW_COLUMNS",
    "chance",
    "export",
    "against_paper",
    "load_rows",
    "main",
    "per_level",
    "pitch_accuracy",
    "pitch_block",
    "references",
    "render",
    "targets",
    "update_doc",
]

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

PAPER_TABLE1: dict[str, tuple[float, float, str, str]] = {
    "instrument": (0.092, 0.117, "797 K", "93.4 K"),
    "singing": (0.031, 0.038, "1.4 M", "144 K"),
    "pitch": (0.242, 0.262, "5.9 M", "224 K"),
    "chord": (0.232, 0.251, "416 K", "91.9 K"),
    "drum": (0.136, 0.144, "8.1 M", "1.0 M"),
    "onset": (0.131, 0.132, "4.7 M", "522 K"),
}
"""The paper's Table 1: reference and trimmed test error, parameters of each (its models, the
real datasets; its trimmed row is the model it calls optimal)."""


def chance(task: str) -> float:
    """The error of guessing: 1 - 1/classes for the classifiers, 1 for pitch and onsets."""
    spec = TASKS[task]
    return 1.0 - 1.0 / spec.n_outputs if spec.metric == "classification_error" else 1.0


# ------------------------------------------------------------------------------- rows


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
    """Every committed row file under ``rows``, one frame in task order of :data:`TASKS`."""
    files = sorted(rows.glob("*.csv"), key=lambda p: list(TASKS).index(p.stem))
    if not files:
        raise SystemExit(f"no row files (<task>.csv) under {rows}")
    frame = pd.concat([pd.read_csv(p) for p in files], ignore_index=True)
    missing = [c for c in ROW_COLUMNS if c not in frame.columns]
    if missing:
        raise SystemExit(f"row files under {rows} lack the column(s) {missing}")
    return frame


# ----------------------------------------------------------------------------- tables


def references(results: pd.DataFrame) -> pd.DataFrame:
    """Per task: its references' validation and test errors, test size, epochs and chance."""
    out = []
    for task, group in results.groupby("task", sort=False):
        refs = group[group.level == 0].drop_duplicates("replicate")
        out.append(
            {
                "task": task,
                "replicates": len(refs),
                "val error": f"{refs.val_error.mean():.3f}",
                "test error [95% CI]": f"{refs.error.mean():.3f} "
                f"[{refs.error_low.mean():.3f}, {refs.error_high.mean():.3f}]",
                "test error per replicate": f"{refs.error.min():.3f}-{refs.error.max():.3f}",
                "test n": int(refs.test_n.max()),
                "epochs (best)": f"{refs.epochs.mean():.0f} ({refs.best_epoch.mean() + 1:.0f})",
                "chance": f"{chance(str(task)):.2f}",
                "at most half of chance": bool(refs.error.mean() <= chance(str(task)) / 2),
                "still falling at the cap": f"{int(refs.still_falling.sum())}/{len(refs)}",
            }
        )
    return pd.DataFrame(out)


def per_level(results: pd.DataFrame) -> pd.DataFrame:
    """Per (task, method): share of weights kept, validation error and test error per level.

    Errors are means over replicates; test cells show ``mean [min-max]``.
    """
    out = []
    for (task, method), group in results[results.level >= 1].groupby(
        ["task", "method"], sort=False
    ):
        refs = results[(results.task == task) & (results.level == 0)].drop_duplicates("replicate")
        by_level = {0: refs, **{lv: g for lv, g in group.groupby("level")}}
        rows = {"kept": {}, "val error": {}, "test error": {}}
        for level, g in by_level.items():
            name = f"L{level}"
            rows["kept"][name] = f"{g.kept.mean():.3f}"
            rows["val error"][name] = f"{g.val_error.mean():.3f}"
            rows["test error"][name] = (
                f"{g.error.mean():.3f} [{g.error.min():.3f}-{g.error.max():.3f}]"
            )
        for what, cells in rows.items():
            out.append({"task": task, "method": method, "": what, **cells})
    return pd.DataFrame(out).fillna("")


def targets(results: pd.DataFrame) -> pd.DataFrame:
    """Per task, on validation: how much can go at the reference's error, and within 1.1x.

    ``lt.pick_models`` with factors 1.0 and 1.1 picks, for each bound, the fewest parameters whose
    mean validation error is within it; shown with the share of weights it removed and its
    test error against the reference's.
    """
    chosen = lt.pick_models(results, smallest=1.0, optimal=1.1)
    out = []
    for task, rows in chosen.groupby("task", sort=False):
        by = rows.set_index("model")
        ref = by.loc["reference"]
        row: dict[str, object] = {
            "task": task,
            "reference val / test": f"{ref.val_error:.3f} / {ref.error:.3f}",
        }
        for label, model in (("at the reference's error", "smallest"), ("within 1.1x", "optimal")):
            if model not in by.index:
                row[f"removed {label}"] = 0.0
                row[f"{label}: model, test / reference"] = "none"
                continue
            pick = by.loc[model]
            row[f"removed {label}"] = round(1.0 - float(pick.kept), 3)
            row[f"{label}: model, test / reference"] = (
                f"{pick.method} L{int(pick.level)}, {pick.error / ref.error:.2f}x"
            )
        out.append(row)
    return pd.DataFrame(out)


def target_summary(results: pd.DataFrame) -> pd.DataFrame:
    """The three targets of the examples, counted over the tasks that ran (of six)."""
    refs = references(results)
    checks = targets(results)
    ran = len(checks)
    half = int(refs["at most half of chance"].sum())
    deep = int((checks["removed at the reference's error"] >= 0.75).sum())
    close = int((checks["removed within 1.1x"] >= 0.85).sum())
    rows = [
        ("every reference at most half of chance", f"{half} of 6 ({ran} run)", half == 6),
        ("on 4 of 6 tasks, >= 75% removed at <= the reference's error", f"{deep} of 6", deep >= 4),
        ("on 4 of 6 tasks, >= 85% removed within 1.1x", f"{close} of 6", close >= 4),
    ]
    return pd.DataFrame(
        [{"target (chosen on validation)": t, "tasks": n, "met": m} for t, n, m in rows]
    )


def table_one(results: pd.DataFrame) -> pd.DataFrame:
    """Table 1 (reference against optimal and smallest) with the selection's numbers."""
    chosen = lt.pick_models(results)
    keep = ["task", "model", "method", "level", "val_error", "error", "params", "smaller"]
    keep += ["macs", "memory_bytes", "disk_bytes", "latency_ms"]
    shown = chosen[chosen.model.isin(["reference", "optimal", "smallest"])][keep].copy()
    for column in ("params", "macs", "memory_bytes", "disk_bytes"):
        shown[column] = shown[column].round().astype("Int64")
    shown["level"] = shown["level"].astype(int)
    return shown


def against_paper(results: pd.DataFrame) -> pd.DataFrame:
    """Every task of the paper's Table 1 beside the optimal model here (on validation)."""
    chosen = lt.pick_models(results).set_index(["task", "model"])
    out = []
    for task, (ref, trim, p_ref, p_trim) in PAPER_TABLE1.items():
        row: dict[str, object] = {
            "task": task,
            "paper error ref -> trimmed": f"{ref:.3f} -> {trim:.3f} ({trim / ref:.2f}x)",
            "paper params": f"{p_ref} -> {p_trim}",
        }
        if (task, "reference") not in chosen.index:
            row.update({"here test error ref -> optimal": "not run", "here params": ""})
        elif (task, "optimal") not in chosen.index:
            here = chosen.loc[(task, "reference")]
            row["here test error ref -> optimal"] = f"{here.error:.3f} -> none within 1.1x"
            row["here params"] = f"{int(here.params):,}"
        else:
            a, b = chosen.loc[(task, "reference")], chosen.loc[(task, "optimal")]
            row["here test error ref -> optimal"] = (
                f"{a.error:.3f} -> {b.error:.3f} ({b.error / a.error:.2f}x, {b.method} L{b.level})"
            )
            row["here params"] = f"{int(a.params):,} -> {int(b.params):,} ({b.smaller:.1f}x)"
        out.append(row)
    return pd.DataFrame(out)


def pitch_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Pitch's reference and optimal model (chosen on validation, as in :func:`against_paper`):
    raw pitch and raw chroma accuracy on the test set and on its held-out timbres.

    Empty when no pitch row is in ``results``; cells are blank where the rows lack a column.
    """
    if "pitch" not in set(results["task"]):
        return pd.DataFrame()
    chosen = lt.pick_models(results)
    chosen = chosen[chosen.task == "pitch"].set_index("model")
    out = []
    for name in ("reference", "optimal"):
        row: dict[str, object] = {"model": name}
        if name not in chosen.index:
            row["method, level"] = "none within 1.1x"
            out.append(row)
            continue
        pick = chosen.loc[name]
        row["method, level"] = f"{pick.method} L{int(pick.level)}"
        row["params"] = f"{int(pick.params):,}"
        for column, label in (
            ("rpa", "test RPA"),
            ("rca", "test RCA"),
            ("rpa_heldout", "held-out RPA"),
            ("rca_heldout", "held-out RCA"),
        ):
            row[label] = float(pick.get(column, float("nan")))
        n, held = (float(pick.get(c, float("nan"))) for c in ("test_n", "heldout_n"))
        row["test frames (held-out)"] = f"{_count(n)} ({_count(held)})"
        out.append(row)
    return pd.DataFrame(out)


def _count(value: float) -> str:
    """A count for a table cell: the integer, or ``?`` when missing."""
    return "?" if value != value else f"{round(value):,}"


def pitch_block(results: pd.DataFrame) -> str:
    """The pitch block: :func:`pitch_accuracy`'s table, or a line saying pitch has not run."""
    table = pitch_accuracy(results)
    if table.empty:
        return "Pitch has not run yet: no pitch rows."
    return _markdown(table)


def render(results: pd.DataFrame) -> dict[str, str]:
    """Every summarised table of the rows as markdown, by block name."""
    return {
        "references": _markdown(references(results)),
        "per-level": _markdown(per_level(results)),
        "table1": lt.plot.table1(results).to_markdown(),
        "selection": _markdown(table_one(results)),
        "paper": _markdown(against_paper(results)),
        "pitch": pitch_block(results),
        "targets": _markdown(targets(results)),
        "target-summary": _markdown(target_summary(results)),
    }


def _markdown(table: pd.DataFrame) -> str:
    """A plain markdown table (no optional dependency needed)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if value != value:
                return ""
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |"]
    lines.append("|" + " --- |" * len(table.columns))
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


_BLOCK = re.compile(r"(<!-- summarize:([\w-]+) -->\n)(.*?)(<!-- /summarize:\2 -->)", re.S)


def update_doc(text: str, blocks: Mapping[str, str]) -> str:
    """``text`` with each marked block replaced by the table of that name."""
    found = {m.group(2) for m in _BLOCK.finditer(text)}
    unknown = found - set(blocks)
    if unknown:
        raise SystemExit(f"the doc names blocks this command does not make: {sorted(unknown)}")
    return _BLOCK.sub(lambda m: f"{m.group(1)}{blocks[m.group(2)]}\n{m.group(4)}", text)


def main(argv: Sequence[str] | None = None) -> int:
    """Export rows (with ``--runs``), print the tables, update the doc and draw Figure 2."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.mir.summarize", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=Path, default=Path("results/quick"), help="row files")
    parser.add_argument("--runs", type=Path, default=None, help="export these run dirs first")
    parser.add_argument("--tasks", default=None, help="with --runs: only these, comma-separated")
    parser.add_argument("--doc", type=Path, default=None, help="markdown file to update")
    parser.add_argument("--check", action="store_true", help="only check --doc is up to date")
    parser.add_argument("--figure", type=Path, default=None, help="write Figure 2 here")
    args = parser.parse_args(argv)
    if args.runs is not None:
        tasks = None if args.tasks is None else args.tasks.split(",")
        for path in export(args.runs, args.rows, tasks=tasks):
            print(f"rows written: {path}")
    results = load_rows(args.rows)
    blocks = render(results)
    if args.doc is not None:
        old = args.doc.read_text(encoding="utf-8")
        new = update_doc(old, blocks)
        if args.check:
            if new != old:
                print(f"{args.doc} is not what the rows under {args.rows} give", file=sys.stderr)
                return 1
            print(f"{args.doc} matches the rows under {args.rows}")
            return 0
        args.doc.write_text(new, encoding="utf-8")
        print(f"updated {args.doc}")
    if args.figure is not None:
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        lt.plot.figure2(results, path=args.figure)
        print(f"Figure 2: {args.figure}")
    for name, table in blocks.items():
        print(f"\n{name}:\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The results tables of ``docs/results.md``, as markdown, built from result rows alone.

Every table takes the rows of :func:`examples.mir.row_files.load_rows`; models are chosen on
validation error (``lt.pick_models``) and test error reports. :func:`render` gives every
block the doc marks, by name.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

import lotterytrim as lt

from .models import TASKS

__all__ = [
    "PAPER_TABLE1",
    "against_paper",
    "chance",
    "per_level",
    "pitch_accuracy",
    "pitch_block",
    "references",
    "render",
    "table_one",
    "target_summary",
    "targets",
]

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
        rows: dict[str, dict[str, Any]] = {"kept": {}, "val error": {}, "test error": {}}
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
        "table1": lt.plot.table1(results).to_markdown() or "",
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

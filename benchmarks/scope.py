"""Global against local scope on every example task, read on validation: which scope each
task's units are ranked in under the quick profile.

    python -m benchmarks.scope --rows results/selection --quick results/quick

For each task it reads the rows of both scopes: ``<task>-local-*-rows.csv`` and
``<task>-global-both-rows.csv`` under ``--rows`` (written by ``benchmarks.selection`` and
``examples.mir.summarize``), the global rows falling back to the quick profile's own
``--quick/<task>.csv`` where the task is ranked globally there. The rule, fixed before the
runs were read: the scope whose fine-tuned tickets have the lower mean validation error over
levels 1 to 6 (three replicates); test error is shown beside it and takes no part.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from examples.mir.models import MIR_TASKS
from examples.mir.tables import targets

#: The method whose validation error chooses the scope: the one the optimal models use.
CHOOSING_METHOD = "finetune"


def scope_rows(rows: Path, quick: Path, task: str) -> dict[str, pd.DataFrame]:
    """The rows of ``task`` per scope that has any (``{"global": ..., "local": ...}``)."""
    found: dict[str, pd.DataFrame] = {}
    local = sorted(rows.glob(f"{task}-local-*-rows.csv"))
    if local:
        frame = pd.concat([pd.read_csv(p) for p in local], ignore_index=True)
        # runs of one method each share their replicates' references: keep one row of each
        found["local"] = frame.drop_duplicates(["method", "replicate", "level"])
    own = rows / f"{task}-global-both-rows.csv"
    fallback = quick / f"{task}.csv"
    if own.exists() or fallback.exists():
        found["global"] = pd.read_csv(own if own.exists() else fallback)
    return found


def compare(rows: Path, quick: Path, tasks: tuple[str, ...] = MIR_TASKS) -> pd.DataFrame:
    """Per task, scope and method: mean validation and test error over levels 1+, the share of
    weights kept at the last level, the targets' shares removed, and the scope chosen."""
    out = []
    for task in tasks:
        scopes = scope_rows(rows, quick, task)
        if len(scopes) < 2:
            continue
        for scope, frame in scopes.items():
            frame = frame.assign(task=task)
            picked = targets(frame).iloc[0]
            for method, group in frame[frame.level > 0].groupby("method"):
                per_level = group.groupby("level")[["val_error", "error", "kept"]].mean()
                out.append(
                    {
                        "task": task,
                        "scope": scope,
                        "method": method,
                        "replicates": group.replicate.nunique(),
                        "val_error": per_level.val_error.mean(),
                        "test_error": per_level.error.mean(),
                        "kept_last": per_level.kept.iloc[-1],
                        "removed_at_reference": picked["removed at the reference's error"],
                        "removed_within_1.1x": picked["removed within 1.1x"],
                    }
                )
    table = pd.DataFrame(out)
    if table.empty:
        return table
    choosing = table[table.method == CHOOSING_METHOD]
    best = choosing.loc[choosing.groupby("task").val_error.idxmin()].set_index("task").scope
    table["chosen"] = table.scope == table.task.map(best)
    return table.sort_values(["task", "method", "scope"], ignore_index=True)


def chosen_scopes(table: pd.DataFrame) -> dict[str, str]:
    """The scope chosen for each task the table compares."""
    picked = table[table.chosen & (table.method == CHOOSING_METHOD)]
    return dict(zip(picked.task, picked.scope, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, default=Path("results/selection"))
    parser.add_argument("--quick", type=Path, default=Path("results/quick"))
    args = parser.parse_args(argv)
    table = compare(args.rows, args.quick)
    if table.empty:
        raise SystemExit(f"no task has rows of both scopes under {args.rows}")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print(f"\nchosen on validation ({CHOOSING_METHOD}): {chosen_scopes(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

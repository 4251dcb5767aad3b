"""Figure 2 of the retraining study: test error against the weights kept, per task, for each
way of retraining a trimmed model and for torch-pruning's pipeline beside them.

Each method's rows come from the run that measured it, so the lines do not all share trained
references: ``trim`` and ``lrr`` (the examples' ``finetune``) and the reference line are the
quick lottery's rows, torch-pruning's pipeline started from those same references, and the
distilled lotteries (``lrr+kd``, ``trim+kd``, at one temperature and weight) from references
of their own runs, whose level-0 rows are not drawn: the command prints their mean test error
beside the quick rows'. ``docs/retraining.md`` pairs the methods replicate by replicate; this
figure shows the shape of each line against the weights kept.

    python -m benchmarks.retraining_figure --quick results/quick --peers results/peers \\
        --kd results/retraining --trim-kd results/retraining/trim-kd \\
        --out docs/figures/retraining.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

import lotterytrim as lt

TASK_ORDER = ("chord", "drum", "instrument", "onset", "pitch", "singing")
"""Panels in this order; a task missing from the quick rows is left out."""

_LABELS = {"finetune": "lrr", "finetune+kd": "lrr+kd"}
"""The examples' ``finetune`` is learning-rate rewinding (``docs/retraining.md``)."""

_OWN = "references of "
"""Method label given to a source's own level-0 rows: kept for the table, never drawn."""


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SystemExit(f"no rows file {path}")
    return pd.read_csv(path)


def gather(
    quick: Path,
    peers: Path,
    kd: Path,
    trim_kd: Path,
    tasks: Sequence[str] = TASK_ORDER,
    setting: tuple[float, float] = (2.0, 0.7),
) -> pd.DataFrame:
    """One frame of every method's rows per task, with method names as the figure shows them.

    ``quick/<task>.csv`` must exist for each task drawn (it gives the reference); the other
    folders may lack a task, whose line is then missing from that panel. Distilled rows are
    those of ``setting`` (temperature, weight) only.
    """
    frames = []
    for task in tasks:
        if not (quick / f"{task}.csv").is_file():
            continue
        rows = _read(quick / f"{task}.csv")
        frames.append(rows[rows["method"].isin(["trim", "finetune"])])
        sources = [
            (peers / f"{task}.csv", ["torch-pruning"]),
            (kd / f"{task}-kd.csv", ["finetune+kd"]),
            (trim_kd / f"{task}-kd.csv", ["trim+kd"]),
        ]
        for path, methods in sources:
            if path.is_file():
                other = _read(path)
                if "kd_temperature" in other:
                    at = (other["kd_temperature"] == setting[0]) & (
                        other["kd_weight"] == setting[1]
                    )
                    other = other[at]
                frames.append(other[other["method"].isin(methods) & (other["level"] > 0)])
                own = other[other["level"] == 0]
                if not own.empty:  # the references this source's lines started from
                    label = _LABELS.get(methods[0], methods[0])
                    frames.append(own.assign(method=f"{_OWN}{label}"))
    if not frames:
        raise SystemExit(f"no quick rows for any of {', '.join(tasks)} in {quick}")
    columns = ["task", "method", "criterion", "replicate", "level", "kept", "error", "val_error"]
    frame = pd.concat([f[columns] for f in frames], ignore_index=True)
    frame["method"] = frame["method"].replace(_LABELS)
    return frame


def references(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean level-0 test error per task: the quick rows' and each other source's own.

    The figure's dashed line and its across-task panel use the quick rows' references; this
    table says how far the references each other line started from were from them.
    """
    level0 = frame[frame["level"] == 0]
    source = level0["method"].where(level0["method"].str.startswith(_OWN), "quick rows")
    level0 = level0.assign(source=source.str.removeprefix(_OWN))
    return level0.pivot_table(index="task", columns="source", values="error").round(3)


def across_tasks(drawn: pd.DataFrame, column: str = "val_error") -> pd.DataFrame:
    """Each method's mean ``column`` per level over its task's reference (the quick rows'
    level 0), averaged over the tasks: the figure's top-right panel, in numbers."""
    reference = drawn[drawn["level"] == 0].groupby("task")[column].mean()
    means = drawn.groupby(["task", "method", "level"], as_index=False)[column].mean()
    means["ratio"] = means[column] / means["task"].map(reference)
    return means.pivot_table(index="method", columns="level", values="ratio").round(2)


def lowest(drawn: pd.DataFrame, column: str = "val_error") -> pd.Series:
    """How many task-levels (the references aside) each method has the lowest ``column`` at."""
    means = drawn[drawn["level"] > 0].groupby(["task", "method", "level"], as_index=False)
    means = means[column].mean()
    best = means.loc[means.groupby(["task", "level"])[column].idxmin()]
    return best.groupby("method").size()


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figure from the committed rows."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.retraining_figure",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", type=Path, default=Path("results/quick"))
    parser.add_argument("--peers", type=Path, default=Path("results/peers"))
    parser.add_argument("--kd", type=Path, default=Path("results/retraining"))
    parser.add_argument("--trim-kd", type=Path, default=Path("results/retraining/trim-kd"))
    parser.add_argument("--out", type=Path, default=Path("docs/figures/retraining.png"))
    args = parser.parse_args(argv)
    frame = gather(args.quick, args.peers, args.kd, args.trim_kd)
    print("mean test error of the references each source started from:")
    print(references(frame).to_markdown())
    drawn = frame[~frame["method"].str.startswith(_OWN)]
    methods = [
        m
        for m in ("trim", "lrr", "lrr+kd", "trim+kd", "torch-pruning")
        if m in set(drawn["method"])
    ]
    lt.plot.figure2(drawn, methods=methods, path=args.out)
    for column in ("val_error", "error"):
        print(f"\n{column} over the reference, mean over tasks:")
        print(across_tasks(drawn, column).to_markdown())
        print(f"lowest {column} at: {lowest(drawn, column).to_dict()}")
    counts = drawn.groupby(["task", "method"])["replicate"].nunique().unstack(fill_value=0)
    print(counts.to_markdown())
    print(f"figure written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

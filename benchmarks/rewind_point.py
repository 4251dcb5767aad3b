"""How far into the reference's training W_k is taken, and what it does to trimmed tickets.

Runs the quick profile's trim lottery of a task with W_k taken after each of several epochs of
the reference (every other setting as the profile has it) and prints, per level, the mean
validation error over replicates with min-max (validation chooses the rewind point), then the
mean test error it reports:

    python -m benchmarks.rewind_point --task chord --epochs 1,3 --replicates 3

The profile's own rewind epoch reads back the runs ``python -m examples.mir.run`` wrote; the
others train their own references, since the rewind point is part of the reference.

Runs of ``examples.mir.run`` with another rewind point or patience (``--set rewind_epochs=1``,
``--set patience=3``) are exported to committed rows, each with its ``rewind`` and ``patience``
read from the run's settings, and the tables are printed from those rows alone:

    python -m benchmarks.rewind_point --export runs/rewind/chord-<hash> --out FILE.csv
    python -m benchmarks.rewind_point --table results/selection/chord-rewind-*.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import torch

from examples.mir.profiles import PROFILES
from examples.mir.run import build_lottery


def run(
    task: str,
    epochs: Sequence[int],
    replicates: int,
    root: str,
    patience: int | None = None,
    methods: tuple[str, ...] = ("trim",),
    workers: int = 1,
) -> pd.DataFrame:
    """Rows (and references) of ``task`` for each rewind epoch, with a ``rewind`` column;
    ``patience`` replaces the profile's early-stopping patience of every level."""
    base = PROFILES["quick"]
    if patience is not None:
        base = dataclasses.replace(
            base, patience=MappingProxyType({**base.patience, task: patience})
        )
    frames = []
    for k in epochs:
        if patience is None and k == base.rewind_epochs[task] and replicates == base.replicates:
            profile, where = base, "runs"
        else:
            rewind = MappingProxyType({**base.rewind_epochs, task: k})
            profile = dataclasses.replace(
                base, rewind_epochs=rewind, methods=methods, replicates=replicates
            )
            where = root
        lottery, _ = build_lottery(task, profile, root=where, progress=False, log=None)
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                rows = lottery.run(executor=pool)
        else:
            rows = lottery.run()
        rows = rows[rows.method.isin(methods) | (rows.level == 0)]
        frames.append(rows.assign(rewind=k))
        print(f"{task}: W_k after epoch {k}: {lottery.directory}", flush=True)
    return pd.concat(frames, ignore_index=True)


def table(rows: pd.DataFrame, column: str = "val_error") -> str:
    """Mean [min-max] of ``column`` per rewind epoch and method (rows) and level (columns),
    and per patience first when the rows have several, with the mean over levels 1 and up."""
    if "patience" not in rows:
        rows = rows.assign(patience="")
    levels = sorted(int(v) for v in rows.level.unique())
    lines = [
        "| patience | W_k after epoch | method | "
        + " | ".join(f"L{lv}" for lv in levels)
        + " | mean L1+ |",
        "| ---: | ---: | --- | " + " | ".join("---:" for _ in levels) + " | ---: |",
    ]
    keys = ["patience", "rewind", "method"]
    for (pat, k, method), part in rows[rows.level > 0].groupby(keys):
        same = (rows.rewind == k) & (rows.patience == pat) & (rows.level == 0)
        part = pd.concat([rows[same], part])
        cells = []
        for lv in levels:
            err = part[part.level == lv][column]
            cells.append(f"{err.mean():.3f} [{err.min():.3f}-{err.max():.3f}]" if len(err) else "")
        mean = part[part.level > 0].groupby("level")[column].mean().mean()
        lines.append(f"| {pat} | {k} | {method} | " + " | ".join(cells) + f" | {mean:.3f} |")
    return "\n".join(lines) + "\n"


def export(directories: Sequence[str], out: str) -> pd.DataFrame:
    """The rows of finished run directories, each with the ``rewind`` epoch and ``patience``
    its settings name, written to ``out`` (a committed CSV)."""
    frames = []
    for d in directories:
        train = json.loads((Path(d) / "settings.json").read_text())["settings"]["train"]
        rows = pd.read_csv(Path(d) / "results.csv")
        frames.append(rows.assign(rewind=train["rewind_epochs"], patience=train["patience"]))
    rows = pd.concat(frames, ignore_index=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rewind_point", description=__doc__)
    parser.add_argument("--task", default="chord")
    parser.add_argument("--epochs", default="1,3", help="comma-separated rewind epochs")
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--root", default="runs/rewind")
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    parser.add_argument("--methods", default="trim", help="comma-separated methods")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    parser.add_argument("--out", default="benchmarks/results/rewind_point.md")
    parser.add_argument("--export", nargs="+", help="run directories to write as rows to --out")
    parser.add_argument("--table", nargs="+", help="row files to print the tables of")
    args = parser.parse_args(argv)
    if args.export:
        export(args.export, args.out)
        return 0
    if args.table:
        rows = pd.concat([pd.read_csv(f) for f in args.table], ignore_index=True)
        print(f"### validation error (chooses)\n\n{table(rows)}")
        print(f"### test error (reports)\n\n{table(rows, 'error')}")
        return 0
    torch.set_num_threads(1)
    rows = run(
        args.task,
        [int(k) for k in args.epochs.split(",")],
        args.replicates,
        args.root,
        args.patience,
        tuple(args.methods.split(",")),
        args.workers,
    )
    text = f"### {args.task}: validation error (chooses)\n\n" + table(rows)
    text += f"\n### {args.task}: test error (reports)\n\n" + table(rows, "error")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

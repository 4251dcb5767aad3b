"""Iterative, one-shot and early-bird pacing side by side, from committed lottery rows.

Rows of a lottery run with ``--methods M,M@oneshot,M@earlybird`` (one CSV per task, the run's
``results.csv``) give, per level, each pacing's validation and test error and its total cost
(``total_epochs`` and ``total_seconds``: the reference's share included, so a one-shot or
early-bird level is a model's whole price). This prints them per task, with each pacing's
error and cost as a ratio of the iterative lottery's at the same level:

    python -m examples.mir.run --task chord --replicates 1 --root runs/pacing --workers 2 \\
        --methods finetune,finetune@oneshot,finetune@earlybird
    cp runs/pacing/chord-*/results.csv results/pacing/chord.csv
    python -m benchmarks.pacings --rows results/pacing
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from lotterytrim.trimming.methods import split_pacing


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean errors and costs per pacing and level, with ratios to the iterative pacing."""
    rows = rows[rows.level > 0]
    rows = rows.assign(pacing=[split_pacing(m)[1] for m in rows.method])
    mean = rows.groupby(["level", "pacing"])[
        ["kept", "val_error", "error", "total_epochs", "total_seconds"]
    ].mean()
    iterative = mean.xs("iterative", level="pacing")
    ratio = mean.div(iterative, level="level")
    mean["val x"] = ratio.val_error
    mean["time x"] = ratio.total_seconds
    mean["replicates"] = rows.groupby(["level", "pacing"]).replicate.nunique()
    return mean.round(3)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table of every task's rows in ``--rows``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pacings", description=__doc__)
    parser.add_argument("--rows", default="results/pacing", help="folder of <task>.csv rows")
    args = parser.parse_args(argv)
    for path in sorted(Path(args.rows).glob("*.csv")):
        print(f"{path.stem}\n\n{table(pd.read_csv(path)).to_markdown()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

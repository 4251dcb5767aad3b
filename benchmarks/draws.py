"""When early-bird monitors would have drawn their tickets under other thresholds and windows.

A monitor's distance curve (``python -m benchmarks.pacings --curves``) holds the distance
between consecutive keep-sets at every epoch of the reference's training, recorded whatever
the threshold. So the draw of any other threshold and window can be read off it without
training again: the first epoch whose last ``window`` distances are all below ``threshold``,
as ``lt.EarlyBird`` decides it. This prints, per task, threshold and window, how far into the
reference's training the draws fall and how many monitors never settle:

    python -m benchmarks.draws results/pacing/threshold/*-curves.csv \\
        --thresholds 0.1,0.05,0.03,0.02 --windows 3,5

It says when each setting would draw, not what its tickets would be worth: that needs their
retraining (a run with ``--set earlybird_threshold=T``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import pandas as pd

#: one curve: a monitor of one replicate's reference
_KEYS = ["task", "replicate", "criterion", "level"]


def draw_epoch(
    epochs: Sequence[int], distances: Sequence[float], threshold: float, window: int
) -> float:
    """The epoch at which a monitor with ``threshold`` and ``window`` draws (NaN: never).

    ``distances[i]`` compares the keep-sets after epochs ``epochs[i] - 1`` and ``epochs[i]``.
    """
    run = 0
    for epoch, distance in zip(epochs, distances, strict=True):
        run = run + 1 if distance < threshold else 0
        if run >= window:
            return float(epoch)
    return math.nan


def replay(
    curves: pd.DataFrame, thresholds: Sequence[float], windows: Sequence[int]
) -> pd.DataFrame:
    """Per curve, threshold and window: ``drawn_epoch`` (NaN: never), the reference's
    ``epochs`` (its last distance's epoch) and ``share``, the draw's share of them."""
    twice = curves[curves.duplicated([*_KEYS, "epoch"])]
    if not twice.empty:
        first = twice.iloc[0]
        raise ValueError(
            "two curves of one monitor (the same curves file given twice, or two runs of one "
            f"task): {', '.join(f'{k}={first[k]}' for k in _KEYS)} at epoch {first.epoch}"
        )
    rows = []
    for key, curve in curves.groupby(_KEYS, sort=True):
        curve = curve.sort_values("epoch")
        epochs, distances = curve.epoch.tolist(), curve.distance.tolist()
        for threshold in thresholds:
            for window in windows:
                drawn = draw_epoch(epochs, distances, threshold, window)
                rows.append(
                    {
                        **dict(zip(_KEYS, key, strict=True)),
                        "threshold": threshold,
                        "window": window,
                        "drawn_epoch": drawn,
                        "epochs": epochs[-1],
                        "share": drawn / epochs[-1],
                    }
                )
    return pd.DataFrame(rows)


def summary(draws: pd.DataFrame) -> pd.DataFrame:
    """Per task, threshold and window: the monitors, how many never drew, and the first,
    median and last draw as a share of the reference's epochs (over those that drew)."""
    by = draws.groupby(["task", "threshold", "window"])
    got = by.agg(
        monitors=("share", "size"),
        never=("share", lambda s: int(s.isna().sum())),
        first=("share", "min"),
        median=("share", "median"),
        last=("share", "max"),
    )
    return got.sort_index(level=["task", "threshold", "window"], ascending=[True, False, True])


def _numbers(text: str, kind: type) -> list:
    return [kind(part) for part in text.split(",") if part]


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`summary` of the curves CSVs given."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.draws",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("curves", nargs="+", help="curves CSVs (benchmarks.pacings --curves)")
    parser.add_argument("--thresholds", default="0.1,0.05,0.03,0.02", help="comma-separated")
    parser.add_argument("--windows", default="3,5", help="comma-separated")
    args = parser.parse_args(argv)
    curves = pd.concat([pd.read_csv(path) for path in args.curves], ignore_index=True)
    draws = replay(curves, _numbers(args.thresholds, float), _numbers(args.windows, int))
    print(summary(draws).round(2).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

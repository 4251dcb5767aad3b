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
retraining (a run with ``--set earlybird_threshold=T``). Curves whose training reported its
validation loss (``ctx.report_loss``) replay loss guards too (``--min-drops 0,0.2``: no draw
before the loss has fallen by that share below the first epoch's), as ``lt.EarlyBird``'s
``min_drop`` decides it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import pandas as pd

#: one curve: a monitor of one replicate's reference
_KEYS = ["task", "replicate", "criterion", "level"]


def opened_epoch(
    epochs: Sequence[int], losses: Sequence[float], first_loss: float, min_drop: float
) -> float:
    """The epoch at which a ``min_drop`` guard opens: the first whose loss is at least
    ``min_drop`` below ``first_loss`` (the loss after epoch ``epochs[0] - 1``); NaN: never.
    Without a guard, that first epoch."""
    if not min_drop:
        return float(epochs[0] - 1)
    if pd.isna(first_loss) or any(pd.isna(loss) for loss in losses):
        raise ValueError(f"min_drop={min_drop:g} needs the losses the training reported")
    bound = first_loss - min_drop * abs(first_loss)
    return next(
        (float(e) for e, loss in zip(epochs, losses, strict=True) if loss <= bound), math.nan
    )


def draw_epoch(
    epochs: Sequence[int],
    distances: Sequence[float],
    threshold: float,
    window: int,
    opened: float | None = None,
) -> float:
    """The epoch at which a monitor with ``threshold`` and ``window`` draws (NaN: never).

    ``distances[i]`` compares the keep-sets after epochs ``epochs[i] - 1`` and ``epochs[i]``;
    with a guard ``opened`` at an epoch (:func:`opened_epoch`), only distances between
    keep-sets taken from that epoch on count.
    """
    if opened is not None and math.isnan(opened):
        return math.nan
    run = 0
    for epoch, distance in zip(epochs, distances, strict=True):
        run = run + 1 if distance < threshold else 0
        if run >= window and (opened is None or epoch - window >= opened):
            return float(epoch)
    return math.nan


def replay(
    curves: pd.DataFrame,
    thresholds: Sequence[float],
    windows: Sequence[int],
    min_drops: Sequence[float] = (0.0,),
) -> pd.DataFrame:
    """Per curve, threshold, window and loss guard: ``drawn_epoch`` (NaN: never), the
    reference's ``epochs`` (its last distance's epoch) and ``share``, the draw's share of
    them. A guard needs the curves' ``loss`` and ``first_loss`` columns."""
    if any(min_drops) and "loss" not in curves:
        raise ValueError("loss guards need curves with the losses their training reported")
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
        for min_drop in min_drops:
            opened = None
            if min_drop:
                losses, first = curve.loss.tolist(), float(curve.first_loss.iloc[0])
                opened = opened_epoch(epochs, losses, first, min_drop)
            for threshold in thresholds:
                for window in windows:
                    drawn = draw_epoch(epochs, distances, threshold, window, opened)
                    rows.append(
                        {
                            **dict(zip(_KEYS, key, strict=True)),
                            "threshold": threshold,
                            "window": window,
                            "min_drop": min_drop,
                            "drawn_epoch": drawn,
                            "epochs": epochs[-1],
                            "share": drawn / epochs[-1],
                        }
                    )
    return pd.DataFrame(rows)


def summary(draws: pd.DataFrame) -> pd.DataFrame:
    """Per task, threshold and window (and loss guard, where one was replayed): the monitors,
    how many never drew, and the first, median and last draw as a share of the reference's
    epochs (over those that drew)."""
    keys = ["task", "threshold", "window"]
    if "min_drop" in draws and draws["min_drop"].any():
        keys.append("min_drop")
    by = draws.groupby(keys)
    got = by.agg(
        monitors=("share", "size"),
        never=("share", lambda s: int(s.isna().sum())),
        first=("share", "min"),
        median=("share", "median"),
        last=("share", "max"),
    )
    order = [True, False, True, True][: len(keys)]
    return got.sort_index(level=keys, ascending=order)


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
    parser.add_argument(
        "--min-drops", default="0", help="comma-separated loss guards (shares; 0: none)"
    )
    args = parser.parse_args(argv)
    curves = pd.concat([pd.read_csv(path) for path in args.curves], ignore_index=True)
    thresholds, windows = _numbers(args.thresholds, float), _numbers(args.windows, int)
    try:
        draws = replay(curves, thresholds, windows, _numbers(args.min_drops, float))
    except ValueError as err:
        raise SystemExit(str(err)) from None
    print(summary(draws).round(2).to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

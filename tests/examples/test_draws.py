"""The early-bird draw replay (benchmarks.draws): the epoch a monitor with another threshold
and window would have drawn at, read off its recorded distance curve."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.draws import draw_epoch, replay, summary

ROOT = Path(__file__).resolve().parents[2]


def test_a_draw_needs_window_distances_in_a_row_below_the_threshold() -> None:
    epochs, distances = [2, 3, 4, 5, 6], [0.05, 0.2, 0.05, 0.05, 0.1]
    assert draw_epoch(epochs, distances, threshold=0.1, window=2) == 5
    assert draw_epoch(epochs, distances, threshold=0.1, window=1) == 2
    assert draw_epoch(epochs, distances, threshold=0.3, window=5) == 6
    assert math.isnan(draw_epoch(epochs, distances, threshold=0.1, window=3))
    assert math.isnan(draw_epoch(epochs, distances, threshold=0.05, window=1))  # strictly below


@pytest.mark.parametrize("name", ["chord-curves.csv", "singing-curves.csv"])
def test_replaying_the_recorded_setting_gives_the_recorded_draws(name: str) -> None:
    """Committed curves of real runs: each monitor drew (or not) where the replay says."""
    curves = pd.read_csv(ROOT / "results" / "pacing" / "threshold" / name)
    threshold, window = curves.threshold.iloc[0], int(curves.window.iloc[0])
    got = replay(curves, [threshold], [window]).set_index(["replicate", "level"])
    recorded = curves.groupby(["replicate", "level"]).drawn_epoch.first()
    assert len(got) == len(recorded) >= 12
    pd.testing.assert_series_equal(
        got.drawn_epoch, recorded.astype(float), check_names=False, check_index_type=False
    )
    lower = replay(curves, [threshold / 3], [window]).drawn_epoch
    assert (lower.fillna(math.inf).to_numpy() >= got.drawn_epoch.to_numpy()).all()


def test_the_summary_counts_monitors_that_never_draw_and_the_same_curve_twice_is_refused() -> None:
    curves = pd.DataFrame(
        {
            "task": "onset",
            "replicate": 0,
            "criterion": "magnitude",
            "level": [1] * 4 + [2] * 4,
            "epoch": [2, 3, 4, 5] * 2,
            "distance": [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0],
        }
    )
    table = summary(replay(curves, [0.1], [2]))
    row = table.loc[("onset", 0.1, 2)]
    assert (row.monitors, row.never) == (2, 0)
    assert (row["first"], row["last"]) == (0.6, 1.0)  # epochs 3 and 5 of 5
    assert summary(replay(curves, [0.1], [4])).loc[("onset", 0.1, 4)].never == 1
    with pytest.raises(ValueError, match="level=1 at epoch 2"):
        replay(pd.concat([curves, curves.head(1)]), [0.1], [2])

"""The early-bird draw replay (benchmarks.draws): the epoch a monitor with another threshold
and window would have drawn at, read off its recorded distance curve."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.draws import draw_epoch, opened_epoch, replay, summary
from benchmarks.pacings import collect_curves
from examples.mir.profiles import PROFILES
from examples.mir.run import run_task

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


def test_a_loss_guard_counts_only_distances_from_the_epoch_it_opens() -> None:
    epochs, distances = [2, 3, 4, 5, 6], [0.0] * 5
    losses = [0.99, 0.95, 0.7, 0.6, 0.5]  # after epochs 2..6; the first epoch's loss is 1.0
    assert opened_epoch(epochs, losses, 1.0, 0.2) == 4
    assert opened_epoch(epochs, losses, 1.0, 0.0) == 1
    assert math.isnan(opened_epoch(epochs, losses, 1.0, 0.6))
    assert draw_epoch(epochs, distances, 0.1, 2, opened=4) == 6
    assert (
        draw_epoch(epochs, distances, 0.1, 2, opened=1)
        == 3
        == draw_epoch(epochs, distances, 0.1, 2)
    )
    assert math.isnan(draw_epoch(epochs, distances, 0.1, 2, opened=math.nan))
    with pytest.raises(ValueError, match="needs the losses"):
        opened_epoch(epochs, [0.9, math.nan, 0.7, 0.6, 0.5], 1.0, 0.2)


def test_replaying_a_guarded_run_gives_its_recorded_draws(tmp_path: Path) -> None:
    tiny = PROFILES["tiny"]
    profile = dataclasses.replace(
        tiny,
        methods=("finetune@earlybird",),
        levels=2,
        max_epochs={**tiny.max_epochs, "onset": 8},
        patience={**tiny.patience, "onset": 10},
        earlybird_threshold=1.0,  # every distance is below it: only the guard holds a draw
        earlybird_window=1,
        earlybird_min_drop=0.05,
    )
    _, lottery, _ = run_task("onset", profile, tmp_path, progress=False, log=None)
    curves = collect_curves([lottery.directory])
    assert curves["loss"].notna().all() and (curves["min_drop"] == 0.05).all()
    # tiny onset's loss falls 5% by epoch 3, so the guard holds the draws one epoch past it
    assert (curves.groupby("level").drawn_epoch.first() > 2).all()
    got = replay(curves, [1.0], [1], [0.05]).set_index("level").drawn_epoch
    recorded = curves.groupby("level").drawn_epoch.first().astype(float)
    pd.testing.assert_series_equal(got, recorded, check_names=False, check_index_type=False)
    assert (replay(curves, [1.0], [1]).drawn_epoch == 2).all()  # unguarded: the first allowed
    assert summary(replay(curves, [1.0], [1], [0.0, 0.05])).index.names[-1] == "min_drop"

"""The pacing table (benchmarks.pacings): errors and costs per level beside the iterative
lottery's, as ratios."""

from __future__ import annotations

import pandas as pd

from benchmarks.pacings import table


def test_ratios_are_to_the_iterative_lottery_at_the_same_level() -> None:
    rows = pd.DataFrame(
        {
            "method": ["lrr", "lrr", "lrr@earlybird", "lrr@oneshot", "lrr@oneshot"],
            "replicate": [0, 0, 0, 0, 1],
            "level": [0, 1, 1, 1, 1],
            "kept": [1.0, 0.7, 0.7, 0.7, 0.7],
            "val_error": [0.1, 0.2, 0.3, 0.1, 0.3],
            "error": [0.1, 0.2, 0.3, 0.2, 0.2],
            "total_epochs": [10, 20, 8, 15, 15],
            "total_seconds": [10.0, 40.0, 10.0, 20.0, 40.0],
        }
    )
    got = table(rows)
    assert set(got.index) == {(1, "iterative"), (1, "earlybird"), (1, "oneshot")}
    assert got.loc[(1, "earlybird"), "val x"] == 1.5
    assert got.loc[(1, "earlybird"), "time x"] == 0.25
    assert got.loc[(1, "oneshot"), "val x"] == 1.0  # the mean over its two replicates
    assert got.loc[(1, "oneshot"), "replicates"] == 2

"""The scope study (benchmarks.scope): validation chooses each task's scope, and the quick
profile ranks every task in the scope its committed rows chose."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks.scope import chosen_scopes, compare
from examples.mir.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]


def _rows(task: str, finetune: float, trim: float) -> pd.DataFrame:
    """Two replicates of a lottery whose levels hold the given validation errors."""
    rows = []
    for replicate in range(2):
        rows.append(dict(method="finetune", level=0, val_error=0.3, error=0.3, kept=1.0))
        for level in range(1, 4):
            for method, val in (("finetune", finetune), ("trim", trim)):
                kept = 0.7**level
                rows.append(dict(method=method, level=level, val_error=val, error=0.5, kept=kept))
        for row in rows[-7:]:
            row.update(task=task, replicate=replicate, criterion="magnitude", params=1)
    frame = pd.DataFrame(rows)
    return frame.assign(params=(frame.kept * 1000).round().astype(int))


def test_the_scope_whose_finetuned_tickets_validate_better_is_chosen(tmp_path: Path) -> None:
    # chord: local better for finetune, worse for trim; onset: global better for finetune
    _rows("chord", 0.31, 0.6).to_csv(tmp_path / "chord-local-both-rows.csv", index=False)
    _rows("chord", 0.35, 0.4).to_csv(tmp_path / "chord-global-both-rows.csv", index=False)
    _rows("onset", 0.40, 0.4).to_csv(tmp_path / "onset-local-finetune-rows.csv", index=False)
    quick = tmp_path / "quick"
    quick.mkdir()
    _rows("onset", 0.32, 0.4).to_csv(quick / "onset.csv", index=False)  # its global rows
    _rows("drum", 0.32, 0.4).to_csv(quick / "drum.csv", index=False)  # one scope: not compared
    table = compare(tmp_path, quick)
    assert chosen_scopes(table) == {"chord": "local", "onset": "global"}
    chord = table[(table.task == "chord") & (table.method == "finetune")].set_index("scope")
    assert chord.loc[["local", "global"], "val_error"].round(6).tolist() == [0.31, 0.35]
    # within 1.1x of the references' 0.3: the local fine-tuned levels only, down to level 3
    assert chord.loc["local", "removed_within_1.1x"] == round(1 - 0.7**3, 3)
    assert chord.loc["global", "removed_within_1.1x"] == 0.0


def test_the_quick_profile_ranks_each_task_in_the_scope_its_rows_chose() -> None:
    table = compare(ROOT / "results" / "selection", ROOT / "results" / "quick")
    chosen = chosen_scopes(table)
    assert chosen, "no task compared"
    quick = PROFILES["quick"]
    assert {task: quick.scope_for(task) for task in chosen} == chosen

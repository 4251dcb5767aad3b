"""The damage a trimming step leaves before retraining (benchmarks.step_damage), on a tiny run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from benchmarks.step_damage import main, pivot, table
from examples.mir.profiles import PROFILES
from examples.mir.run import run_task


def test_rows_after_one_and_after_the_last_step_leave_the_reference_alone(
    tmp_path: Path,
) -> None:
    rows, lottery, _ = run_task("onset", PROFILES["tiny"], tmp_path, progress=False, log=None)
    reference = lottery.directory / "replicate-0" / "reference.lt"
    digest = hashlib.sha256(reference.read_bytes()).hexdigest()
    out = tmp_path / "damage"
    args = ["--task", "onset", "--root", str(tmp_path), "--profile", "tiny", "--steps", "3"]
    criteria = "magnitude/params,batchnorm/none,random/params"
    assert main([*args, "--criteria", criteria, "--out", str(out)]) == 0
    damage = pd.read_csv(out / "onset-step-damage.csv")
    # batchnorm needs a norm after every unit: the onset heads have none, and the row says so
    refused = damage[damage.criterion == "batchnorm"]
    assert len(refused) == 1 and refused.note.str.contains("needs a norm layer").all()
    damage = damage[damage.criterion != "batchnorm"]
    assert len(damage) == 2 * 2
    assert sorted(set(damage.steps)) == [1, 3]
    ref = rows[(rows.level == 0)].iloc[0]
    assert (damage.ref_val_error == ref.val_error).all()  # the lottery's own reference
    first, last = damage[damage.steps == 1], damage[damage.steps == 3]
    assert (first.kept < 1).all() and (last.kept.values < first.kept.values).all()
    default = first[(first.criterion == "magnitude") & (first.cost == "params")].iloc[0]
    assert abs(default.kept - 0.7) <= 0.05
    for column in ("val_error", "error", "recal_val_error", "recal_error"):
        assert damage[column].between(0, 1).all()
    assert hashlib.sha256(reference.read_bytes()).hexdigest() == digest
    printed = table(damage)
    assert list(printed.columns[:4]) == ["task", "steps", "criterion", "cost"]
    assert len(printed) == 4


def test_the_pivot_puts_a_task_per_column_and_marks_refusals() -> None:
    base = {"replicate": 0, "kept": 0.7, "error": 0.2, "recal_error": 0.1}
    rows = pd.DataFrame(
        [
            {
                **base,
                "task": "chord",
                "criterion": "magnitude",
                "cost": "params",
                "steps": 1,
                "val_error": 0.22,
                "recal_val_error": 0.12,
                "ref_val_error": 0.07,
            },
            {
                **base,
                "task": "chord",
                "criterion": "batchnorm",
                "cost": "none",
                "steps": 1,
                "val_error": 0.33,
                "recal_val_error": 0.14,
                "ref_val_error": 0.07,
            },
            {
                **base,
                "task": "onset",
                "criterion": "magnitude",
                "cost": "params",
                "steps": 1,
                "val_error": 0.11,
                "recal_val_error": 0.10,
                "ref_val_error": 0.09,
            },
            {
                "task": "onset",
                "criterion": "batchnorm",
                "cost": "none",
                "steps": 1,
                "replicate": 0,
                "ref_val_error": 0.09,
                "note": "criterion 'batchnorm' needs",
            },
        ]
    )
    out = pivot(rows, 1)
    assert list(out.columns) == ["criterion / cost", "chord", "onset"]
    assert out.iloc[0].tolist() == ["magnitude / params", "0.220 (0.120)", "0.110 (0.100)"]
    assert out.iloc[1].tolist() == ["batchnorm / none", "0.330 (0.140)", "-"]
    assert out.iloc[2].tolist() == ["reference", "0.070", "0.090"]

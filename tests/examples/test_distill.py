"""Distillation beside plain retraining (benchmarks.distill): paired runs per setting, rows
merged per task, and the table read from them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.distill import main, settings_of, table


def test_settings_parse_and_refuse_what_is_not_a_pair() -> None:
    assert settings_of("2:0.7,4:0.9") == [(2.0, 0.7), (4.0, 0.9)]
    with pytest.raises(SystemExit, match="TEMPERATURE:WEIGHT"):
        settings_of("2-0.7")


def test_each_setting_runs_paired_with_plain_retraining(tmp_path: Path) -> None:
    rows = tmp_path / "rows"
    argv = ["--task", "chord", "--profile", "tiny", "--root", str(tmp_path / "runs")]
    main([*argv, "--settings", "2:0.7,4:0.9", "--out", str(rows)])
    got = pd.read_csv(rows / "chord-kd.csv")
    assert set(got.method) == {"finetune", "finetune+kd"}
    assert set(zip(got.kd_temperature, got.kd_weight, strict=True)) == {(2.0, 0.7), (4.0, 0.9)}
    plain = got[got.method == "finetune"].set_index(["kd_temperature", "level"]).val_error
    # the plain method is the same in both settings' runs: same references, same seeds
    assert plain.loc[2.0].tolist() == plain.loc[4.0].tolist()
    ref = got[got.level == 0].val_error
    assert ref.nunique() == 1  # every run starts from the same reference
    distilled = got[(got.method == "finetune+kd") & (got.level > 0)].set_index(
        ["kd_temperature", "level"]
    )
    assert not distilled.val_loss.equals(
        got[(got.method == "finetune") & (got.level > 0)]
        .set_index(["kd_temperature", "level"])
        .val_loss
    )
    # a second run reads everything back: nothing is added twice
    main([*argv, "--settings", "2:0.7", "--out", str(rows)])
    assert len(pd.read_csv(rows / "chord-kd.csv")) == len(got)
    text = table(rows, tmp_path / "quick-rows-not-needed")
    for label in ("| finetune ", "| finetune+kd T=2 w=0.7", "| finetune+kd T=4 w=0.9", "mean val"):
        assert label in text, text
    assert "(quick)" not in text  # the plain rows are the runs' own, not the quick lottery's


def test_a_plain_method_runs_alone_only_from_a_distilled_runs_references(tmp_path: Path) -> None:
    rows, runs = tmp_path / "rows", tmp_path / "runs"
    argv = ["--task", "chord", "--profile", "tiny", "--settings", "2:0.7", "--out", str(rows)]
    with pytest.raises(SystemExit):
        main([*argv, "--methods", "finetune", "--root", str(runs)])
    main([*argv, "--methods", "finetune+kd", "--root", str(runs)])
    (kd_run,) = runs.iterdir()
    plain = tmp_path / "plain"
    main([*argv, "--methods", "finetune", "--root", str(plain), "--references-from", str(kd_run)])
    got = pd.read_csv(rows / "chord-kd.csv")
    assert set(got.method) == {"finetune", "finetune+kd"}
    assert got[got.level == 0].val_error.nunique() == 1  # one reference, copied
    assert "| finetune " in table(rows, tmp_path / "quick-rows-not-needed")

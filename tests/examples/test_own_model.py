"""The copy-me example of the experiment runner (examples/own_model.py): it runs a lottery of
its own model, writes one row per level and picks a trimmed model on validation error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lotterytrim as lt
from examples import own_model


def test_own_model_runs_a_lottery_and_picks_a_trimmed_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    threads = torch.get_num_threads()
    try:
        assert own_model.main(["--root", str(tmp_path), "--levels", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "reference" in printed and "best" in printed
    results = own_model.run(str(tmp_path), levels=1)  # resumed: read back, not retrained
    assert sorted(zip(results.method, results.level, strict=True)) == [
        ("finetune", 0),
        ("finetune", 1),
        ("trim", 0),
        ("trim", 1),
    ]
    assert (results.params[results.level == 1] < results.params[results.level == 0].max()).all()
    picks = lt.pick_models(results).set_index("model")
    assert picks.loc["best", "level"] >= 0
    assert picks.loc["reference", "params"] == results.params.max()

"""Trained references shared between run directories (examples.mir.references and the
runner's --references-from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import lotterytrim as lt
from examples.mir.references import adopt_references, finished_references
from examples.mir.run import main
from lotterytrim.runner.rundir import file_owner, foreign_file

TINY_RUN = ["--profile", "tiny", "--no-progress", "--levels", "1", "--epochs", "2"]


def test_adopted_references_name_their_new_run(tmp_path: Path) -> None:
    """A reference copied into another setting's run is read back there, not trained again:
    its header names the run it now belongs to, and its tensors and row are the donor's."""
    donor, target = tmp_path / "chord-aaaa", tmp_path / "chord-bbbb"
    model = nn.Linear(3, 2)
    for r in range(2):
        folder = donor / f"replicate-{r}"
        folder.mkdir(parents=True)
        owner = file_owner(donor, "chord", r, "reference", "-", 0)
        lt.save(model, folder / "reference.lt", metadata=owner)
        (folder / "reference.json").write_text('{"error": 0.1}')
    assert finished_references(donor, 3) == 2 and finished_references(target, 2) == 0
    assert adopt_references(donor, target, 2) == 2
    for r in range(2):
        copied = target / f"replicate-{r}" / "reference.lt"
        assert foreign_file(copied, file_owner(target, "chord", r, "reference", "-", 0)) is None
        assert foreign_file(copied, file_owner(donor, "chord", r, "reference", "-", 0))
        back = lt.load(copied, lambda: nn.Linear(3, 2))
        assert torch.equal(back.weight, model.weight)
        assert (target / f"replicate-{r}" / "reference.json").read_text() == '{"error": 0.1}'
    # a target's own finished reference is never overwritten
    (target / "replicate-0" / "reference.json").write_text('{"error": 0.2}')
    assert adopt_references(donor, target, 2) == 0
    assert (target / "replicate-0" / "reference.json").read_text() == '{"error": 0.2}'


def _run_directory(root: Path) -> Path:
    (directory,) = root.iterdir()
    return directory


def test_a_run_starts_from_another_runs_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Levels of another method start from the donor's reference as it was trained (its row
    keeps the donor's training time: a retrained one would have its own)."""
    assert main(["--task", "onset", "--root", str(tmp_path / "a"), *TINY_RUN]) == 0
    donor = _run_directory(tmp_path / "a")
    argv = ["--task", "onset", "--root", str(tmp_path / "b"), *TINY_RUN, "--methods", "finetune"]
    assert main([*argv, "--references-from", str(donor)]) == 0
    assert "1 trained reference(s) copied" in capsys.readouterr().out
    target = _run_directory(tmp_path / "b")
    assert target.name != donor.name
    theirs = json.loads((donor / "replicate-0" / "reference.json").read_text())
    ours = json.loads((target / "replicate-0" / "reference.json").read_text())
    assert ours == theirs and ours["train_seconds"] > 0
    assert (target / "replicate-0" / "finetune-magnitude" / "level-01.json").is_file()


def test_references_of_another_training_or_task_are_refused(tmp_path: Path) -> None:
    assert main(["--task", "onset", "--root", str(tmp_path / "a"), *TINY_RUN]) == 0
    donor = _run_directory(tmp_path / "a")
    base = ["--root", str(tmp_path / "b"), *TINY_RUN, "--references-from"]
    with pytest.raises(SystemExit, match="differs from this run's in settings; nothing copied"):
        main(["--task", "onset", "--set", "lr=0.01", *base, str(donor)])
    with pytest.raises(SystemExit, match="in task"):
        main(["--task", "drum", *base, str(donor)])
    with pytest.raises(SystemExit, match="not a run directory"):
        main(["--task", "onset", *base, str(tmp_path)])
    with pytest.raises(SystemExit, match="finetune@earlybird draws its tickets"):
        main(["--task", "onset", "--methods", "finetune@earlybird", *base, str(donor)])
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").rglob("*.json"))

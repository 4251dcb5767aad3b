"""Early stopping (examples.mir.stopping) and its use in TaskRun.train: patience, best weights,
the still-falling flag and the printed learning curve."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from examples.mir import synth
from examples.mir.stopping import EarlyStopping
from examples.mir.train_settings import TrainSettings
from examples.mir.training import TaskRun


def _run(scores: list[float], patience: int, max_epochs: int) -> tuple[EarlyStopping, nn.Linear]:
    """Feed ``scores`` epoch by epoch; the model's weight holds the epoch index."""
    model = nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience, max_epochs)
    for epoch, score in enumerate(scores):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        stopper.update((score,), model)
        if stopper.should_stop:
            break
    with torch.no_grad():
        model.weight.fill_(-1.0)
    stopper.restore(model)
    return stopper, model


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best() -> None:
    scores = [0.9, 0.5, 0.6, 0.55, 0.7, 0.1, 0.05]
    stopper, model = _run(scores, patience=3, max_epochs=50)
    assert stopper.epochs == 5  # best at epoch 1, then 3 epochs without a better score
    assert stopper.best_epoch == 1 and stopper.stalled and not stopper.still_falling
    assert model.weight.item() == 1.0  # the best epoch's weights, not the last ones
    assert stopper.curve == scores[:5]


def test_ties_do_not_count_as_improvement_but_a_lower_loss_breaks_them() -> None:
    stopper, _ = _run([0.5, 0.5, 0.5], patience=2, max_epochs=50)
    assert stopper.epochs == 3 and stopper.best_epoch == 0
    model = nn.Linear(1, 1)
    tie = EarlyStopping(2, 50)
    tie.update((0.5, 1.0), model)
    assert tie.update((0.5, 0.9), model) and tie.best_epoch == 1


def test_a_curve_still_falling_at_the_cap_is_flagged() -> None:
    stopper, model = _run([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], patience=3, max_epochs=4)
    assert stopper.epochs == 4 and stopper.still_falling and not stopper.stalled
    assert model.weight.item() == 3.0
    flat, _ = _run([0.9, 0.5, 0.6, 0.6, 0.6], patience=3, max_epochs=5)
    assert flat.epochs == 5 and flat.stalled and not flat.still_falling


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        EarlyStopping(0, 10)


class _Ctx:
    """The part of lt.LevelContext that TaskRun.train uses."""

    task, method, criterion, replicate, level, seed = "chord", "reference", "-", 0, 0, 0

    def __init__(self) -> None:
        self.records: dict[str, float] = {}
        self.captured = 0
        self.losses: list[float] = []

    def epochs(self, n: int) -> Iterator[int]:
        yield from range(n)

    def capture_rewind(self) -> None:
        self.captured += 1

    def record(self, **values: float) -> None:
        self.records.update(values)

    def report_loss(self, loss: float) -> None:
        self.losses.append(loss)


def test_task_run_records_and_prints_a_reference_still_falling_at_its_cap() -> None:
    lines: list[str] = []
    splits = synth.make_dataset("chord", 60, seed=0, size="tiny")
    settings = TrainSettings(max_epochs=2, patience=5, rewind_epochs=1, batch_size=16)
    run = TaskRun("chord", splits, "tiny", settings, log=lines.append)
    ctx = _Ctx()
    run.train(run.build_model(), ctx)
    assert ctx.records["epochs"] == 2 and ctx.records["still_falling"] == 1.0
    assert ctx.captured == 1  # W_k after rewind_epochs, at level 0
    assert len(ctx.losses) == 2 and all(loss > 0 for loss in ctx.losses)  # one per epoch
    assert any("validation error per epoch:" in line for line in lines)
    assert any("STILL FALLING at the cap of 2 epochs" in line for line in lines)
    stopped = TaskRun("chord", splits, "tiny", TrainSettings(40, 1, 1, 16), log=lines.append)
    ctx = _Ctx()
    stopped.train(stopped.build_model(), ctx)
    assert ctx.records["still_falling"] == 0.0 and ctx.records["epochs"] < 40


def test_the_reference_may_train_with_its_own_patience_and_cap() -> None:
    """TrainSettings.reference holds at level 0 only; the levels keep their own settings."""
    settings = TrainSettings(
        max_epochs=1, patience=1, batch_size=16, reference={"max_epochs": 3, "patience": 9}
    )
    assert settings.at_level(0).max_epochs == 3 and settings.at_level(0).patience == 9
    assert settings.at_level(2) is settings
    with pytest.raises(ValueError, match="'lr'"):
        TrainSettings(max_epochs=1, patience=1, reference={"lr": 1})
    splits = synth.make_dataset("chord", 60, seed=0, size="tiny")
    run = TaskRun("chord", splits, "tiny", settings, log=lambda line: None)
    reference = _Ctx()
    run.train(run.build_model(), reference)
    assert reference.records["epochs"] == 3  # its own cap, before its patience of 9
    level = _Ctx()
    level.level = 1
    run.train(run.build_model(), level)
    assert level.records["epochs"] == 1

"""Distillation from the reference: the loss, and the teacher the runner hands to ``train``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt
from tests.runner.test_lottery import TRAIN, Net, Recorder, _lottery


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_the_distillation_term_is_zero_only_when_student_equals_teacher(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(8, 5, generator=gen)
    same = lt.distillation_loss(teacher.clone(), teacher, kind=kind)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    other = lt.distillation_loss(teacher + torch.randn(8, 5, generator=gen), teacher, kind=kind)
    assert float(other) > 1e-3


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_the_gradient_reaches_the_student_only(kind: str) -> None:
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(6, 4, generator=gen, requires_grad=True)
    teacher = torch.randn(6, 4, generator=gen, requires_grad=True)
    targets = torch.randint(0, 4, (6,)) if kind == "softmax" else torch.rand(6, 4)
    lt.distillation_loss(student, teacher, targets, kind=kind).backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0
    assert teacher.grad is None


def test_the_mix_of_distillation_and_the_task_loss() -> None:
    gen = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(10, 3, generator=gen), torch.randn(10, 3, generator=gen)
    labels = torch.randint(0, 3, (10,), generator=gen)
    distil = lt.distillation_loss(student, teacher, temperature=3.0)
    mixed = lt.distillation_loss(student, teacher, labels, temperature=3.0, weight=0.25)
    task = F.cross_entropy(student, labels)
    assert float(mixed) == pytest.approx(0.25 * float(distil) + 0.75 * float(task), rel=1e-5)
    # the T**2 scaling: KL of the softened distributions, times T**2
    p, q = F.softmax(teacher / 3, 1), F.log_softmax(student / 3, 1)
    kl = F.kl_div(q, p, reduction="batchmean") * 9
    assert float(distil) == pytest.approx(float(kl), rel=1e-5)
    # weight 0: the task's loss alone; sigmoid targets may be soft (CREPE's bins)
    assert float(lt.distillation_loss(student, teacher, labels, weight=0.0)) == pytest.approx(
        float(task), rel=1e-6
    )
    soft = torch.rand(10, 3, generator=gen)
    plain = F.binary_cross_entropy_with_logits(student, soft)
    got = lt.distillation_loss(student, teacher, soft, kind="sigmoid", weight=0.0)
    assert float(got) == pytest.approx(float(plain), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "softmax2"}, "kind"),
        ({"temperature": 0.0}, "temperature"),
        ({"weight": 1.5}, "weight"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lt.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), **kwargs)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        lt.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))


class Distiller(Recorder):
    """Trains like Recorder; with ``ctx.distill``, against the teacher it is given."""

    def __init__(self) -> None:
        super().__init__(epochs=2)
        self.teachers: list[tuple[str, int, dict[str, torch.Tensor], bool]] = []

    def __call__(self, model: nn.Module, ctx: lt.LevelContext) -> None:
        if not ctx.distill:
            super().__call__(model, ctx)
            return
        teacher = ctx.teacher()
        assert teacher is ctx.teacher()  # loaded once per level
        before = {k: v.clone() for k, v in teacher.state_dict().items()}
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = TRAIN
        for _ in ctx.epochs(2):
            model.train()
            opt.zero_grad()
            with torch.no_grad():
                soft = teacher(x)
            lt.distillation_loss(model(x), soft, y).backward()
            opt.step()
        unchanged = all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
        frozen = not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        self.teachers.append((ctx.method, ctx.level, before, unchanged and frozen))


def test_a_distilling_cell_gets_its_own_replicates_reference_as_teacher(tmp_path: Path) -> None:
    train = Distiller()
    lottery = _lottery(tmp_path, train=train, methods=("lrr", "lrr+kd"), replicates=2)
    rows = lottery.run()
    assert set(rows.method) == {"lrr", "lrr+kd"}  # each its own column in the results
    assert {(m, lv) for m, lv, _, _ in train.teachers} == {("lrr+kd", 1), ("lrr+kd", 2)}
    assert all(ok for *_, ok in train.teachers)
    for replicate in (0, 1):
        ref = lt.load(lottery.directory / f"replicate-{replicate}" / "reference.lt", Net)
        mine = [b for m, lv, b, _ in train.teachers if m == "lrr+kd"]
        assert any(all(torch.equal(ref.state_dict()[k], v) for k, v in b.items()) for b in mine)
    kd = rows[(rows.method == "lrr+kd") & (rows.level == 2)]
    assert (kd.params < rows[rows.level == 0].params.max()).all()


def test_the_reference_has_no_teacher_and_unknown_methods_are_named(tmp_path: Path) -> None:
    def train(model: nn.Module, ctx: lt.LevelContext) -> None:
        with pytest.raises(lt.errors.LotteryError, match="no teacher"):
            ctx.teacher()
        for _ in ctx.epochs(1):
            pass

    _lottery(tmp_path, train=train, levels=0).run()
    with pytest.raises(ValueError, match=r"unknown method 'nope\+kd'"):
        lt.LotteryConfig(methods=("nope+kd",))
    assert lt.LotteryConfig(methods=("mask+kd",)).runs() == [("mask+kd", "magnitude")]

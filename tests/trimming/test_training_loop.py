"""The user's training loop around a trimmer: optimizer and scheduler hand-over, stale
optimizers, pruned or meta models, numpy amounts, and data that does not fit or is elsewhere."""

from __future__ import annotations

import warnings
from collections import namedtuple
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import prune

import lotterytrim as lt
from lotterytrim.criteria import Activation
from lotterytrim.errors import CriterionError, ModelStateError
from lotterytrim.trimming.handover import StaleOptimizerWarning


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv1d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


_GEN = torch.Generator().manual_seed(0)
X = torch.randn(6, 2, 16, generator=_GEN)
Y = torch.randint(0, 3, (6,), generator=_GEN)
BATCHES = [(X[:3], Y[:3]), (X[3:], Y[3:])]


def _epoch(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    for x, y in BATCHES:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ---------------------------------------------------------------- hand-over
def test_attached_optimizer_and_scheduler_rewind_with_the_weights() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    trimmer = lt.LotteryTrimmer(model, X, amount=0.3).attach(opt, sched)
    _epoch(model, opt)
    sched.step()
    trimmer.capture_rewind()  # W_k after one epoch: the schedule's place is taken with it
    lr_k, epoch_k = opt.param_groups[0]["lr"], sched.last_epoch
    for _ in range(2):
        _epoch(model, opt)
        sched.step()
    trimmer.step()
    assert trimmer.params < sum(w.numel() for w in _weights(_model()))
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    assert not opt.state  # survivors were rewound: their moments start afresh
    assert (opt.param_groups[0]["lr"], sched.last_epoch) == (lr_k, epoch_k)
    before = _weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleOptimizerWarning)
        _epoch(model, opt)
    sched.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_k * 0.5)


def _rounds(method: str, rounds: int = 3, epochs: int = 4) -> list[list[float]]:
    """Learning rates seen per round of a cosine schedule over each round's epochs."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    trimmer = lt.LotteryTrimmer(model, X, amount=0.2, method=method).attach(opt, sched)
    trimmer.capture_rewind()
    seen = []
    for _ in range(rounds):
        lrs = []
        for _ in range(epochs):
            lrs.append(round(opt.param_groups[0]["lr"], 6))
            _epoch(model, opt)
            sched.step()
        seen.append(lrs)
        trimmer.step()
    return seen


def test_a_cosine_schedule_restarts_with_each_rewound_round() -> None:
    first, *later = _rounds("trim")
    assert first == [0.1, 0.085355, 0.05, 0.014645]
    assert all(r == first for r in later)  # not carried past T_max, rising from 0
    # finetune keeps training: its schedule goes on where it was
    ft_first, ft_second, _ = _rounds("finetune")
    assert ft_first == first and ft_second[0] == 0.0


@pytest.mark.parametrize(
    ("method", "kept", "lr_after"),
    [("trim", False, "rewind"), ("lrr", False, "start"), ("finetune", True, "on")],
)
def test_each_method_leaves_optimizer_and_schedule_where_it_promises(
    method: str, kept: bool, lr_after: str
) -> None:
    """W_k is captured one epoch in; three more epochs, then a step."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
    trimmer = lt.LotteryTrimmer(model, X, amount=0.3, method=method).attach(opt, sched)
    lr_start = opt.param_groups[0]["lr"]
    _epoch(model, opt)
    sched.step()
    trimmer.capture_rewind()
    lr_k, epoch_k = opt.param_groups[0]["lr"], sched.last_epoch
    for _ in range(3):
        _epoch(model, opt)
        sched.step()
    lr_now, epoch_now = opt.param_groups[0]["lr"], sched.last_epoch
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    trimmer.step()
    expected = {
        "rewind": (lr_k, epoch_k),
        "start": (lr_start, 0),
        "on": (lr_now, epoch_now),
    }[lr_after]
    assert (opt.param_groups[0]["lr"], sched.last_epoch) == pytest.approx(expected)
    assert bool(opt.state) is kept  # only fine-tuning carries Adam's moments
    assert len({lr_start, lr_k, lr_now}) == 3  # the three positions differ
    # trim's survivors hold W_k; lrr's and finetune's hold their trained values, sliced
    # the ranking is global: both convolutions are compared, sliced on both dimensions
    plan = trimmer.plan
    assert sum(len(plan.kept_indices(n, 0)) for n in ("0.weight", "2.weight")) < 16
    for name in ("0.weight", "2.weight"):
        rows, cols = (torch.as_tensor(plan.kept_indices(name, d)) for d in (0, 1))
        survivors = trained[name][rows][:, cols]
        assert torch.equal(model.get_parameter(name).detach(), survivors) is (method != "trim")


def test_finetune_carries_the_moments_sliced() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    trimmer = lt.LotteryTrimmer(model, X, amount=0.3, method="finetune")
    assert trimmer.attach(opt) is trimmer
    _epoch(model, opt)
    trimmer.step()
    for p in model.parameters():
        assert opt.state[p]["exp_avg"].shape == p.shape


def test_attach_refuses_foreign_optimizers_and_schedulers() -> None:
    model = _model()
    trimmer = lt.LotteryTrimmer(model, X)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="not the trimmer's model"):
        trimmer.attach(other)
    with pytest.raises(ValueError, match="scheduler 0"):
        trimmer.attach(opt, torch.optim.lr_scheduler.StepLR(other, 1))
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        trimmer.attach("adam")


def test_a_stale_optimizer_is_named() -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    trimmer = lt.LotteryTrimmer(model, X, amount=0.3, method="finetune")
    trimmer.step()
    with pytest.warns(StaleOptimizerWarning, match=r"Adam optimizer steps parameter '0\.weight'"):
        _epoch(model, opt)
    fresh = trimmer.rebuild_optimizer(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleOptimizerWarning)
        _epoch(model, fresh)


# ---------------------------------------------------------------- refused models
def test_pruned_models_are_refused_with_what_to_do() -> None:
    model = _model()
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    with pytest.raises(ModelStateError, match=r"prune\.remove"):
        lt.trim(model, X, amount=0.3)
    with pytest.raises(ModelStateError, match="method='mask'"):
        lt.LotteryTrimmer(model, X)
    plain = _model()
    trimmer = lt.LotteryTrimmer(plain, X)
    prune.l1_unstructured(plain[2], "weight", amount=0.5)
    with pytest.raises(ModelStateError, match="'2'.weight"):
        trimmer.capture_rewind()
    prune.remove(plain[2], "weight")
    trimmer.capture_rewind()
    result = trimmer.step()
    assert result.params_after < result.params_before


def test_meta_models_are_refused() -> None:
    with torch.device("meta"):
        model = _model()
    with pytest.raises(ModelStateError, match="meta device"):
        lt.trim(model, X.to("meta"), amount=0.3)
    with pytest.raises(ModelStateError, match="meta device"):
        lt.LotteryTrimmer(model, X.to("meta"))


@pytest.mark.parametrize(
    "amount",
    [np.float32(0.3), np.float16(0.25), np.float64(0.3), 0.3, torch.tensor(0.3), np.array(0.25)],
)
def test_any_real_amount_is_accepted(amount: object) -> None:
    assert lt.LotteryTrimmer(_model(), X, amount=amount).amount == pytest.approx(float(amount))


@pytest.mark.parametrize(
    "amount",
    [True, np.bool_(True), float("nan"), np.float32(1.5), "0.3", torch.tensor(True)]
    + [torch.tensor([0.3]), torch.tensor(1.5), np.array([0.3, 0.2])],
)
def test_bad_amounts_stay_refused(amount: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        lt.LotteryTrimmer(_model(), X, amount=amount)


# ---------------------------------------------------------------- data
@pytest.mark.parametrize("criterion", ["activation", "gradient", "information"])
def test_a_batch_that_does_not_fit_is_named(criterion: str) -> None:
    model = _model()
    before = _weights(model)
    bad = [(X[:3], Y[:3]), (torch.randn(3, 5, 16), Y[:3])]
    with pytest.raises(CriterionError, match=r"batch 1 does not fit.*\(3, 5, 16\).*\(6, 2, 16\)"):
        lt.trim(model, X, criterion=criterion, amount=0.3, data=bad)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("criterion", ["activation", "taylor", "information"])
def test_empty_data_is_named(criterion: str) -> None:
    with pytest.raises(CriterionError, match="got no batches: the data is empty"):
        lt.trim(_model(), X, criterion=criterion, amount=0.3, data=[])


def test_batches_are_moved_to_the_model_device() -> None:
    pair = namedtuple("pair", "x y")
    with torch.device("meta"):
        on_meta = nn.Linear(2, 2)
    graph = SimpleNamespace(model=on_meta)
    data = [(X, {"mask": Y}), pair(X, Y)]
    moved = list(Activation()._batches(data, graph))
    assert [i for i, _ in moved] == [0, 1]
    first, second = moved[0][1], moved[1][1]
    assert first[0].is_meta and first[1]["mask"].is_meta and first[0].dtype == X.dtype
    assert isinstance(second, pair) and second.x.is_meta and second.y.is_meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("criterion", ["magnitude", "activation", "gradient", "information"])
def test_cpu_batches_score_a_cuda_model(criterion: str) -> None:
    model = _model().cuda()
    plan, res = lt.trim(model, X.cuda(), criterion=criterion, amount=0.3, data=BATCHES)
    assert res.params_after < res.params_before
    assert all(p.is_cuda for p in model.parameters())

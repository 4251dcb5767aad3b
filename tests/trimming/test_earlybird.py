"""``lt.EarlyBird``: the keep-set of a trim to a size, watched while training, removes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import same_state, snapshot
from torch import nn
from torch.nn import functional as F
from zoo_patterns import ConvFlatten

import lotterytrim as lt

PRODUCERS = ("c1", "c2", "fc1")


def _ordered(model: nn.Module, reverse: bool = False) -> None:
    """Give each unit of every prunable layer a fan-in magnitude fixed by its index."""
    with torch.no_grad():
        for name in PRODUCERS:
            w = getattr(model, name).weight
            n = w.shape[0]
            rank = torch.arange(n, 0, -1) if reverse else torch.arange(1, n + 1)
            w.copy_(rank.view(-1, *[1] * (w.dim() - 1)).to(w.dtype).expand_as(w) * 0.01)


def _bird(**kw) -> tuple[nn.Module, lt.LotteryTrimmer, lt.EarlyBird]:
    torch.manual_seed(0)
    model = ConvFlatten()
    trimmer = lt.LotteryTrimmer(model, torch.randn(2, 1, 32))
    return model, trimmer, lt.EarlyBird(trimmer, **kw)


def test_a_fixed_ranking_settles_at_the_first_update_the_window_allows():
    model, _, bird = _bird(keep=0.25)
    assert (bird.threshold, bird.window) == (0.1, 5)  # the paper's defaults
    _ordered(model)
    for i in range(bird.window):
        assert bird.update() is False and bird.settled_at is None, i
    assert bird.update() is True
    assert bird.settled_at == bird.window == bird.updates - 1
    assert bird.distances == [0.0] * bird.window
    assert set(bird.layer_distances) == set(PRODUCERS)
    assert all(d == [0.0] * bird.window for d in bird.layer_distances.values())
    bird.update()
    assert bird.settled and bird.settled_at == bird.window  # drawn once, stays drawn


def test_updates_after_the_draw_go_on_measuring_and_leave_the_draw_alone():
    model, _, bird = _bird(keep=0.25, window=2)
    _ordered(model)
    while not bird.update():
        pass
    drawn = bird.settled_at
    _ordered(model, reverse=True)  # the keep-set moves after the draw
    assert bird.update() is True
    bird.update()
    assert bird.settled_at == drawn == 2 and bird.updates == drawn + 3
    assert len(bird.distances) == bird.updates - 1
    assert bird.distances[-2] >= bird.threshold and bird.distances[-1] == 0.0
    assert all(len(d) == len(bird.distances) for d in bird.layer_distances.values())


def test_a_ranking_that_keeps_changing_never_settles():
    model, _, bird = _bird(keep=0.25, window=2)
    for i in range(8):
        _ordered(model, reverse=i % 2 == 1)
        assert bird.update() is False
    assert len(bird.distances) == 7 and min(bird.distances) >= bird.threshold
    assert bird.settled_at is None and not bird.settled


def test_the_window_counts_consecutive_updates_only():
    model, _, bird = _bird(keep=0.25, window=3)
    _ordered(model)
    bird.update()
    bird.update()
    _ordered(model, reverse=True)  # update 2 flips the keep-set
    for _ in range(6):
        bird.update()
    assert bird.distances[0] == 0.0 and bird.distances[1] >= bird.threshold
    assert bird.settled_at == 2 + bird.window


def test_min_drop_holds_the_draw_until_the_loss_has_fallen():
    # a ranking fixed from the start, as on a plateau: unguarded it would draw at update 5
    model, _, bird = _bird(keep=0.25, window=3, min_drop=0.1)
    _ordered(model)
    losses = [2.0, 1.99, 2.01, 1.95, 1.85, 1.7, 1.6, 1.5, 1.4, 1.3]
    drawn = [bird.update(loss=value) for value in losses]
    assert bird.opened_at == 5  # 1.7 is the first loss 10% below 2.0 (1.85 is 7.5%)
    assert bird.distances == [0.0] * 9  # measured all along
    assert bird.settled_at == 5 + bird.window == drawn.index(True)
    assert bird.losses == losses


def test_min_drop_zero_draws_as_before_and_loss_is_optional():
    model, _, bird = _bird(keep=0.25, window=3)
    _ordered(model)
    for value in [1.0, None, 1.0, 1.0]:
        bird.update(loss=value)
    assert bird.opened_at == 0 and bird.settled_at == 3
    assert bird.losses == [1.0, None, 1.0, 1.0]


@pytest.mark.parametrize("loss", [None, float("nan"), "1.0", True])
def test_a_guarded_update_without_a_finite_loss_is_refused_and_counts_nothing(loss):
    model, _, bird = _bird(keep=0.25, min_drop=0.1)
    _ordered(model)
    bird.update(loss=1.0)
    with pytest.raises(ValueError, match="loss"):
        bird.update(loss=loss)
    assert bird.updates == 1 and bird.losses == [1.0] and bird.distances == []


def test_a_tensor_loss_is_read_as_a_number():
    model, _, bird = _bird(keep=0.25, min_drop=0.5)
    _ordered(model)
    bird.update(loss=torch.tensor(2.0))
    bird.update(loss=torch.tensor([0.5]))
    assert bird.losses == [2.0, 0.5] and bird.opened_at == 1
    assert "min_drop=0.5" in repr(bird)


def test_distances_are_shares_of_flipped_units_overall_and_per_layer():
    model, _, bird = _bird(keep=0.25)
    _ordered(model)
    bird.update()
    first = {k: v.copy() for k, v in bird.keep_set.items()}
    _ordered(model, reverse=True)
    bird.update()
    sizes = {"c1": 12, "c2": 16, "fc1": 24}
    flips = {}
    for name, n in sizes.items():
        old, new = np.zeros(n, bool), np.zeros(n, bool)
        old[first[name]], new[bird.keep_set[name]] = True, True
        flips[name] = int((old != new).sum())
        assert bird.layer_distances[name] == [flips[name] / n]
    assert bird.distances == [sum(flips.values()) / sum(sizes.values())]
    assert bird.distances[0] > 0


def test_the_keep_set_is_a_one_shot_trim_without_step_cap():
    model, trimmer, bird = _bird(keep=0.1)
    bird.update()
    opts = lt.TrimOptions(safeguards=lt.Safeguards(step_cap=1.0))
    copied = copy.deepcopy(model)
    plan, _ = lt.trim(copied, torch.randn(2, 1, 32), "magnitude", 0.9, options=opts)
    for name in PRODUCERS:
        np.testing.assert_array_equal(bird.keep_set[name], plan.kept_indices(f"{name}.weight", 0))
    floor = trimmer.options.safeguards.keep_floor  # honoured: every layer keeps a quarter
    widths = {n: getattr(model, n).weight.shape[0] for n in PRODUCERS}
    assert all(len(bird.keep_set[n]) >= floor * widths[n] for n in PRODUCERS)
    assert sum(p.numel() for p in model.parameters()) == 7013  # nothing was removed


@pytest.mark.parametrize("criterion", ["magnitude", "activation", "gradient", "random"])
def test_update_changes_nothing_bit_for_bit(criterion):
    torch.manual_seed(0)
    model = ConvFlatten()
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 1, 32, generator=gen), torch.randint(0, 5, (8,), generator=gen))]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    F.cross_entropy(model(data[0][0]), data[0][1]).backward()
    opt.step()  # running statistics and gradients that are not zero
    trimmer = lt.LotteryTrimmer(model, data[0][0], criterion=criterion)
    draws = getattr(trimmer.criterion, "draws", None)
    bird = lt.EarlyBird(trimmer, keep=0.3)
    before, params = snapshot(model), list(model.parameters())
    grads = [p.grad.clone() for p in params]
    modes = [m.training for m in model.modules()]
    for _ in range(2):
        bird.update(data=data)
    assert same_state(model, before) and list(model.parameters()) == params
    assert all(torch.equal(p.grad, g) for p, g in zip(params, grads, strict=True))
    assert [m.training for m in model.modules()] == modes
    assert getattr(trimmer.criterion, "draws", None) == draws
    assert trimmer.level == 0 and trimmer.history == []


def test_a_new_architecture_starts_the_watch_over():
    model, trimmer, bird = _bird(keep=0.25, window=2)
    for _ in range(3):
        bird.update()
    assert bird.settled
    trimmer.capture_rewind()
    trimmer.step()
    bird.update()
    assert (bird.updates, bird.distances, bird.settled_at) == (1, [], None)
    widths = {k: model.get_submodule(k).weight.shape[0] for k in bird.keep_set}
    assert all(int(v.max()) < widths[k] for k, v in bird.keep_set.items())


@pytest.mark.parametrize(
    ("kw", "bad"),
    [
        ({"keep": 0.0}, "0.0"),
        ({"keep": True}, "True"),
        ({"keep": float("nan")}, "nan"),
        ({"threshold": 0}, "0"),
        ({"threshold": float("nan")}, "nan"),
        ({"window": 0}, "0"),
        ({"window": 2.5}, "2.5"),
        ({"window": True}, "True"),
        ({"min_drop": -0.1}, "-0.1"),
        ({"min_drop": 1.0}, "1.0"),
        ({"min_drop": True}, "True"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(kw, bad):
    torch.manual_seed(0)
    trimmer = lt.LotteryTrimmer(ConvFlatten(), torch.randn(2, 1, 32))
    with pytest.raises(ValueError, match=f"got {bad}$"):
        lt.EarlyBird(trimmer, **kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_monitor_reads_a_model_that_trains_on_the_gpu():
    # the trimmer is built on the CPU, then the model moves to the GPU to train; the monitor
    # traces it there and agrees with the same monitor on the CPU
    model, _, bird = _bird(keep=0.25)
    _ordered(model)
    twin = copy.deepcopy(model)
    cpu_bird = lt.EarlyBird(lt.LotteryTrimmer(twin, torch.randn(2, 1, 32)), keep=0.25)
    model.cuda()
    for _ in range(3):
        bird.update()
        cpu_bird.update()
    assert next(model.parameters()).is_cuda
    assert bird.distances == cpu_bird.distances
    assert {k: v.tolist() for k, v in bird.keep_set.items()} == {
        k: v.tolist() for k, v in cpu_bird.keep_set.items()
    }

"""``LotteryTrimmer.trim_to``: one call to a size, in sub-steps the safeguards allow."""

from __future__ import annotations

import math
import re

import pytest
import torch
from helpers import same_state, snapshot
from torch import nn
from torch.nn import functional as F
from zoo_patterns import ConvFlatten

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 1, 32, generator=gen), torch.randint(0, 5, (8,), generator=gen))] * 2


def _trained(method: str = "trim", **kw) -> tuple[nn.Module, lt.LotteryTrimmer, dict, dict]:
    """A trimmer with W_k captured at initialisation and a model trained a little after it."""
    torch.manual_seed(0)
    model, data = ConvFlatten(), _data()
    trimmer = lt.LotteryTrimmer(model, data[0][0], method=method, **kw)
    trimmer.capture_rewind()
    wk = snapshot(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, trimmer, wk, snapshot(model)


def _largest_unit(model: nn.Module) -> float:
    graph = TrimGraph(model, torch.randn(2, 1, 32))
    return max(float(g.unit_params.max()) for g in graph.prunable_groups)


@pytest.mark.parametrize("method", ["trim", "lrr"])
def test_trim_to_lands_within_one_unit_in_paced_sub_steps(method):
    model, trimmer, wk, trained = _trained(method)
    largest = _largest_unit(ConvFlatten())
    original = sum(p.numel() for p in model.parameters())
    result = trimmer.trim_to(0.25)
    assert result.shortfall is None, result.shortfall
    assert (result.params_original, result.params_before) == (original, original)
    assert result.params_target == round(0.25 * original)
    assert abs(result.params_after - result.params_target) <= largest
    assert result.params_after == trimmer.params == sum(p.numel() for p in model.parameters())
    # a step removes at most `amount` (0.3): 25% of the parameters takes several
    assert result.sub_steps >= math.ceil(math.log(0.25) / math.log(0.7))
    assert result.steps == trimmer.history and trimmer.level == result.sub_steps
    assert all(s.requested <= trimmer.amount + 1e-9 for s in result.steps)
    chain = [(s.params_before, s.params_after) for s in result.steps]
    assert all(a[1] == b[0] for a, b in zip(chain[:-1], chain[1:], strict=True))
    # the method acts once, after the last sub-step: trim rewinds, lrr keeps trained values
    assert [s.rewound for s in result.steps] == [False] * (result.sub_steps - 1) + [
        method == "trim"
    ]
    source = wk if method == "trim" else trained
    assert same_state(model, trimmer.plan.apply_to_state_dict(source))


def test_sub_steps_rank_the_trained_values_whatever_the_method():
    runs = {}
    for method in ("trim", "lrr"):
        _, trimmer, _, _ = _trained(method)
        trimmer.trim_to(0.3)
        runs[method] = trimmer.plan
    assert runs["trim"] == runs["lrr"]  # no rewind between sub-steps


def test_a_floor_that_forbids_the_target_is_reported():
    model, trimmer, _, _ = _trained("lrr", safeguards={"keep_floor": 0.9})
    result = trimmer.trim_to(0.25)
    assert result.params_after > result.params_target + _largest_unit(ConvFlatten())
    assert result.shortfall is not None and "keep_floor" in result.shortfall
    assert f"{result.params_after} parameters" in result.shortfall
    assert trimmer.level == result.sub_steps >= 1
    # nothing more can go: asking again takes no empty step
    again = trimmer.trim_to(0.25)
    assert again.sub_steps == 0 and again.shortfall is not None
    assert trimmer.level == result.sub_steps


@pytest.mark.parametrize("keep", [0, 0.0, -0.1, 1.5, True, float("nan"), "0.5", None])
def test_bad_keep_is_a_value_error_that_changes_nothing(keep):
    model, trimmer, _, trained = _trained("trim")
    with pytest.raises(ValueError, match=re.escape(repr(keep))):
        trimmer.trim_to(keep)
    assert same_state(model, trained) and trimmer.level == 0 and trimmer.history == []


def test_keep_above_what_is_left_is_refused_and_keep_of_all_is_a_no_op():
    model, trimmer, _, trained = _trained("lrr")
    nothing = trimmer.trim_to(1.0)
    assert (nothing.sub_steps, nothing.shortfall, trimmer.level) == (0, None, 0)
    assert same_state(model, trained)
    trimmer.trim_to(0.5)
    level, state = trimmer.level, snapshot(model)
    with pytest.raises(ValueError, match=r"keep=0\.8 is more than the model holds"):
        trimmer.trim_to(0.8)
    assert trimmer.level == level and same_state(model, state)


def test_masks_and_a_missing_rewind_point_are_refused():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(2, 1, 32)
    masked = lt.LotteryTrimmer(model, x, method="mask")
    masked.capture_rewind()
    with pytest.raises(lt.errors.TrimmerStateError, match="masks single weights"):
        masked.trim_to(0.5)
    before = snapshot(model)
    rewinding = lt.LotteryTrimmer(model, x, method="trim")
    with pytest.raises(lt.errors.TrimmerStateError, match="capture_rewind"):
        rewinding.trim_to(0.5)
    assert same_state(model, before) and rewinding.level == 0


class _Counting(lt.criteria.LayerCriterion):
    """Magnitude, recording the data each scoring gets."""

    name = "counting"
    needs_data = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[object] = []

    def prepare(self, graph, data) -> None:
        self.seen.append(data)

    def channel_scores(self, name, module):
        return module.weight.detach().abs().flatten(1).sum(1)


def test_data_driven_criteria_get_the_data_at_every_sub_step_and_the_optimizer_follows():
    torch.manual_seed(0)
    model, data = ConvFlatten(), _data()
    crit = _Counting()
    trimmer = lt.LotteryTrimmer(model, data[0][0], criterion=crit, method="lrr")
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trimmer.attach(sgd)
    result = trimmer.trim_to(0.3, data=data)
    assert result.sub_steps >= 2
    assert len(crit.seen) in (result.sub_steps, result.sub_steps + 1)  # one per sub-step planned
    assert all(d is data for d in crit.seen)
    assert [p for g in sgd.param_groups for p in g["params"]] == list(model.parameters())


def test_the_step_cap_paces_sub_steps_when_it_is_below_amount():
    model, trimmer, _, _ = _trained("lrr", amount=0.6, safeguards={"step_cap": 0.25})
    result = trimmer.trim_to(0.3)
    assert result.shortfall is None and result.sub_steps >= 4  # 0.75 ** 4 > 0.3
    for step in result.steps:
        assert step.requested <= 0.25 + 1e-9
        for name, n in step.units_before.items():
            assert n - step.units_after[name] <= int(0.25 * n)

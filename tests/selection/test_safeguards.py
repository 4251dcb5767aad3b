"""Selection safeguards: the step cap, the floor of original units, cost-aware ranking."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.layers import layer_units
from lotterytrim.selection.costs import unit_costs


def _thin_first() -> nn.Module:
    """A conv net whose first conv has tiny weights: unguarded ranking empties it first."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(1, 16, 5),
        nn.ReLU(),
        nn.Conv1d(16, 64, 5),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 3),
    )
    with torch.no_grad():
        model[0].weight.mul_(1e-3)
    return model


X = torch.randn(2, 1, 100, generator=torch.Generator().manual_seed(0))


def test_unguarded_ranking_empties_the_thin_layer():
    # the premise of the safeguards: without them one step takes most of layer "0"
    model = _thin_first()
    _, res = lt.trim(model, X, amount=0.3, normalize="none", safeguards=lt.Safeguards.off())
    assert res.units_after["0"] < 8
    assert res.held == {}
    _, res = lt.trim(model, X, amount=0.3, normalize="none", safeguards=lt.Safeguards.off())
    assert res.units_after["0"] == 1


def test_step_cap_keeps_half_of_a_layer_and_says_so():
    model = _thin_first()
    _, res = lt.trim(model, X, amount=0.3, normalize="none")
    assert res.units_after["0"] == 8  # at most half of 16 per step
    assert "0" in res.held and "step_cap" in res.held["0"]
    assert abs(res.achieved - 0.3) < 0.02  # the budget is met with other units


def test_keep_floor_is_a_share_of_the_original_units_across_steps():
    model = _thin_first()
    guard = lt.Safeguards(step_cap=1.0, keep_floor=0.25)
    trimmer = lt.LotteryTrimmer(
        model, X, "magnitude", 0.5, normalize="none", method="finetune", safeguards=guard
    )
    floors = []
    for _ in range(4):
        result = trimmer.step()
        floors.append(result.units_after["0"])
        assert result.units_after["0"] >= math.ceil(0.25 * 16)
    assert floors[0] == 4  # held at the floor at once, and there ever after
    assert any("keep_floor" in why for r in trimmer.history for why in r.held.values())
    # the floor is read from the original model, not the current one: 25% of 4 would be 1
    assert min(floors) == 4


def _costly_before_flatten() -> nn.Module:
    """A conv whose channels each feed 23 x 64 weights of a Linear through a flatten: ranked per
    parameter, its channels are the most expensive units and go first (the chord model's case)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 16, 5), nn.ReLU(), nn.Conv1d(16, 32, 5), nn.ReLU(), nn.MaxPool1d(4),
        nn.Flatten(), nn.Linear(32 * 23, 64), nn.ReLU(), nn.Linear(64, 3),
    )  # fmt: skip


def _units_after_steps(model: nn.Module, guard: lt.Safeguards, steps: int) -> dict[str, int]:
    trimmer = lt.LotteryTrimmer(model, X, method="finetune", safeguards=guard)
    for _ in range(steps):
        result = trimmer.step()
    return result.units_after


def test_default_floor_stops_per_parameter_ranking_from_hollowing_a_costly_layer():
    defaults = lt.Safeguards()
    assert (defaults.cost, defaults.keep_floor) == ("params", 0.25)
    # the premise: with the former 5% floor, per-parameter ranking hollows conv "2"
    hollow = _units_after_steps(_costly_before_flatten(), lt.Safeguards(keep_floor=0.05), 5)
    assert hollow["2"] < 8
    # the default floor keeps a quarter of its 32 channels; the other layers pay for them
    kept = _units_after_steps(_costly_before_flatten(), defaults, 5)
    assert kept["2"] >= 8
    assert kept["0"] + kept["6"] < hollow["0"] + hollow["6"]


def test_a_lottery_that_reaches_the_floor_says_to_lower_it():
    # every layer at a quarter of its units: the model cannot shrink further, and the step
    # says which setting stops it instead of failing or removing less in silence
    trimmer = lt.LotteryTrimmer(_costly_before_flatten(), X, amount=0.5, method="finetune")
    for _ in range(8):
        result = trimmer.step()
    assert result.achieved < 0.02
    assert "keep_floor=0.25" in result.shortfall and "lower keep_floor" in result.shortfall
    floor = {name: math.ceil(0.25 * n) for name, n in trimmer.history[0].units_before.items()}
    assert all(result.units_after[name] >= floor[name] for name in floor)


def test_local_scope_respects_the_cap():
    model = _thin_first()
    trimmer = lt.LotteryTrimmer(model, X, amount=0.6, scope="local", method="finetune")
    before = layer_units(model)
    result = trimmer.step()
    for layer, n in result.units_after.items():
        assert n >= before[layer] - math.floor(0.5 * before[layer])


@pytest.mark.parametrize("cost", ["params", "none", "macs"])
def test_budget_holds_with_safeguards_on_a_wide_model(cost: str) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv1d(1, 32, 5), nn.ReLU(), nn.Conv1d(32, 48, 5), nn.ReLU(), nn.Flatten(),
        nn.Linear(48 * 92, 40), nn.ReLU(), nn.Linear(40, 3),
    )  # fmt: skip
    trimmer = lt.LotteryTrimmer(model, X, method="finetune", safeguards=lt.Safeguards(cost=cost))
    for _ in range(4):
        graph = TrimGraph(model, X)
        # within 2 points or one unit's parameters, the documented budget invariant
        tol = max(
            0.02, max(g.unit_params.max() for g in graph.prunable_groups) / graph.total_params
        )
        result = trimmer.step()
        assert result.shortfall is None, result
        assert abs(result.achieved - 0.3) <= tol, (result, tol)


def test_cost_aware_ranking_uses_macs_per_unit():
    model = _thin_first()
    graph = TrimGraph(model, X)
    macs = unit_costs(graph, "macs")
    params = unit_costs(graph, "params")
    first = next(g for g in graph.groups if g.name == "0")
    # one channel of conv 0: 5 weights at 96 positions, plus its 64x5 slice of conv 2 at 92
    assert macs[first.id][0] == 5 * 96 + 64 * 5 * 92
    assert params[first.id][0] == first.unit_params[0]


def test_cost_aware_ranking_changes_the_choice():
    # two equal-score layers: per MAC, the conv applied at many positions is the costlier one
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(4, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2),
    )  # fmt: skip
    with torch.no_grad():
        model[0].weight.fill_(1.0)  # 4 inputs: score 4, but applied at 200 positions
        model[4].weight.fill_(0.1)  # 32 inputs: score 3.2, applied once
    x = torch.randn(2, 4, 200)
    kept = {}
    for cost in ("none", "macs"):
        m = copy.deepcopy(model)
        _, res = lt.trim(m, x, amount=0.2, normalize="none", safeguards=lt.Safeguards(cost=cost))
        kept[cost] = res.units_after["0"]
    assert kept["macs"] < kept["none"]


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"step_cap": 0.0}, "step_cap"),
        ({"step_cap": 1.5}, "step_cap"),
        ({"keep_floor": 1.0}, "keep_floor"),
        ({"keep_floor": -0.1}, "keep_floor"),
        ({"cost": "flops"}, "cost"),
        ({"step_cap": "half"}, "step_cap"),
    ],
)
def test_bad_safeguards_name_the_field(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        lt.Safeguards(**kwargs)


def test_bad_safeguards_leave_the_model_untouched():
    model = _thin_first()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="unknown safeguard"):
        lt.trim(model, X, safeguards={"step_cap": 0.5, "ceiling": 2})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_config_takes_safeguards_as_object_mapping_or_bool():
    assert lt.LotteryConfig(safeguards=False).safeguards == lt.Safeguards.off()
    assert lt.LotteryConfig(safeguards=True).safeguards == lt.Safeguards()
    cfg = lt.LotteryConfig(safeguards={"step_cap": 0.4, "keep_floor": 0.1, "cost": "params"})
    assert cfg.safeguards == lt.Safeguards(0.4, 0.1, "params")
    with pytest.raises(ValueError, match="keep_floor"):
        lt.LotteryConfig(safeguards={"keep_floor": 2.0})


def test_held_groups_survive_the_trimmer_state():
    model = _thin_first()
    trimmer = lt.LotteryTrimmer(model, X, normalize="none", method="finetune")
    trimmer.step()
    assert trimmer.history[0].held
    again = lt.LotteryTrimmer(_thin_first(), X, normalize="none", method="finetune")
    again.load_state_dict(trimmer.state_dict())
    assert again.history[0].held == trimmer.history[0].held
    assert np.isclose(again.history[0].achieved, trimmer.history[0].achieved)

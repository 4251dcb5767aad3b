"""A lottery method owns its removal: ``step()`` runs the method's ``remove`` and its hook in
one order for every kind, and asks the method (not a kind flag) what the model may carry."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import torch
from zoo_patterns import ConvFlatten

import lotterytrim as lt
from lotterytrim.criteria import get_criterion
from lotterytrim.engine.masknames import model_tensors
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.errors import ModelStateError, TrimmerStateError
from lotterytrim.trimming import masking
from lotterytrim.trimming.driver import Driver
from lotterytrim.trimming.methods import (
    METHODS,
    Finetune,
    Lrr,
    Mask,
    Method,
    Reinit,
    Trim,
    check_method_name,
)
from lotterytrim.trimming.removal import Removal, remove_units, unmasked_params
from lotterytrim.trimming.step import CompactResult


def _model() -> tuple[ConvFlatten, torch.Tensor]:
    torch.manual_seed(0)
    return ConvFlatten(), torch.randn(4, 1, 32)


class RandomUnits(Method):
    """Its own removal: whole units drawn at random, seeded by the level being made."""

    name = "random-units"

    def __init__(self) -> None:
        self.calls: list[tuple[int, TrimPlan]] = []

    def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
        model = trimmer.model
        before = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
        plan, result = lt.trim(
            model,
            trimmer.example_inputs,
            get_criterion("random", seed=100 + trimmer.level),
            trimmer.amount,
            unprunable=trimmer.unprunable,
            prior=trimmer.plan,
        )
        self.calls.append((trimmer.level, plan))
        return Removal(plan, before, result)


def test_step_runs_the_methods_own_removal_and_keeps_its_books() -> None:
    model, x = _model()
    original = TrimPlan.identity(model)
    method = RandomUnits()
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method=method)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    trimmer.attach(sgd)
    first = trimmer.step()
    second = trimmer.step()
    assert [level for level, _ in method.calls] == [0, 1]  # removal runs before the count
    assert trimmer.history == [first, second] and (first.level, second.level) == (1, 2)
    assert first.method == "random-units" and not first.rewound
    assert trimmer.plan == original.then(method.calls[0][1]).then(method.calls[1][1])
    assert trimmer.last_step_plan == method.calls[1][1]
    assert second.params_after == trimmer.params < first.params_before
    held = {id(p) for group in sgd.param_groups for p in group["params"]}
    assert held == {id(p) for p in model.parameters()}  # handed over with the removal's names
    # the same draws through lt.trim on a copy of the model: the step removed what remove() did
    twin, _ = _model()
    lt.trim(twin, x, get_criterion("random", seed=100), 0.3)
    lt.trim(twin, x, get_criterion("random", seed=101), 0.3, prior=method.calls[0][1])
    assert {n: t.shape for n, t in model_tensors(twin).items()} == {
        n: t.shape for n, t in model_tensors(model).items()
    }


def test_the_default_removal_is_the_structured_step() -> None:
    class Delegating(Method):
        name = "delegating"

        def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
            return remove_units(trimmer, data)

    results = []
    for method in (Lrr(), Delegating(), Method()):
        model, x = _model()
        trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method=method)
        trimmer.step()
        trimmer.step()
        results.append((trimmer.plan, {n: t.clone() for n, t in model_tensors(model).items()}))
    for plan, tensors in results[1:]:
        assert plan == results[0][0]
        assert all(torch.equal(t, results[0][1][n]) for n, t in tensors.items())


@pytest.mark.parametrize("kind", [Trim, Mask, Lrr, Finetune, Reinit])
def test_the_level_is_counted_before_the_hook_whatever_the_kind(kind: type[Method]) -> None:
    seen: list[tuple[int, int, bool]] = []

    class Watched(kind):  # type: ignore[valid-type, misc]
        def after_removal(self, trimmer: Driver) -> None:
            shapes = {n: tuple(t.shape) for n, t in model_tensors(trimmer.model).items()}
            fits = all(shapes[n] == tuple(s) for n, s in trimmer.plan.current_shapes().items())
            seen.append((trimmer.level, len(lotto.history), fits))
            super().after_removal(trimmer)

    model, x = _model()
    lotto = lt.LotteryTrimmer(model, x, amount=0.3, method=Watched())
    lotto.capture_rewind()
    results = [lotto.step(), lotto.step()]
    assert seen == [(1, 0, True), (2, 1, True)]  # new level, history not yet, plan grown
    assert [r.level for r in results] == [1, 2] == [r.level for r in lotto.history]
    state = lotto.state_dict()["meta"]
    assert state["level"] == 2 and [h["level"] for h in state["history"]] == [1, 2]


class LocalMask(Method):
    """Its own kind of removal: the same share of each layer's live weights masked."""

    name = "local-mask"
    removes_units = False
    keeps_masks = True

    def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
        model = trimmer.model
        before = unmasked_params(model)
        masks, weights = masking.current_masks(model), model_tensors(model)
        for name, mask in masks.items():
            alive = mask != 0
            k = round(trimmer.amount * int(alive.sum()))
            ranked = torch.where(alive, weights[name].detach().abs(), torch.inf)
            mask.view(-1)[ranked.view(-1).argsort(stable=True)[:k]] = 0
        masking.apply_masks(model, masks)
        return Removal.in_place(model, before, unmasked_params(model), trimmer.amount, None)

    def live_params(self, model: torch.nn.Module) -> int:
        return unmasked_params(model)


@pytest.fixture
def local_mask() -> Iterator[None]:
    lt.methods.register("local-mask", LocalMask)
    try:
        yield
    finally:
        METHODS.unregister("local-mask")


def test_a_registered_kind_of_removal_is_stepped_saved_and_compacted(local_mask: None) -> None:
    model, x = _model()
    trimmer = lt.LotteryTrimmer(model, x, amount=0.4, method="local-mask")
    stored = trimmer.params
    first, second = trimmer.step(), trimmer.step()  # masks stay on: the method keeps them
    assert trimmer.params == stored and first.params_before == stored
    assert second.params_after == trimmer.live_params == stored - masking.masked_count(model)
    for name, mask in masking.current_masks(model).items():  # each layer: 1 - 0.6**2 masked
        assert abs(float((mask == 0).float().mean()) - 0.64) < 0.05, name
    state = trimmer.state_dict()
    assert state["meta"]["masked"] and state["meta"]["level"] == 2
    fresh, _ = _model()
    resumed = lt.LotteryTrimmer(fresh, x, amount=0.4, method="local-mask")
    resumed.load_state_dict(state)
    assert resumed.level == 2 and resumed.live_params == trimmer.live_params
    assert isinstance(trimmer.compact(), CompactResult)
    with pytest.raises(TrimmerStateError, match=r"trim_to\(\) removes units.*use step"):
        trimmer.trim_to(0.5)
    with pytest.raises(ValueError, match="can only be paced iteratively"):
        check_method_name("local-mask@oneshot")
    assert check_method_name("local-mask+kd") == "local-mask+kd"


def test_a_unit_removing_method_refuses_a_masked_model(local_mask: None) -> None:
    model, x = _model()
    lt.LotteryTrimmer(model, x, amount=0.4, method="local-mask").step()
    with pytest.raises(ModelStateError):
        lt.LotteryTrimmer(model, x, amount=0.4, method="lrr")
    with pytest.raises(TrimmerStateError, match="compact"):
        lt.LotteryTrimmer(_model()[0], x, method="lrr").compact()

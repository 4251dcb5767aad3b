"""How a lottery step takes parameters away: whole units, or single weights under masks.

Each removal changes the model in place and returns a :class:`Removal` for the driver's books:
the step's own plan, the parameters' names before it and the counts its result reports.
``remove_units`` is the structured lottery's step (rank, remove, verify); ``mask_weights`` is
the original lottery's (global magnitude masks; nothing is resized).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lotterytrim.engine.layers import layer_units
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.trimming import masking
from lotterytrim.trimming.driver import Driver
from lotterytrim.trimming.step import TrimResult, trim

__all__ = ["Removal", "remove_units", "mask_weights", "stored_params", "unmasked_params"]


@dataclass
class Removal:
    """What a removal did: enough for the driver to grow its plan, hand the optimizer over and
    report the step."""

    plan: TrimPlan  # the step's own plan, in the model's coordinates before it
    old_names: dict[int, str]  # id -> name of each parameter before, where tensors were replaced
    result: TrimResult  # parameters and units before and after, shortfall

    @classmethod
    def in_place(
        cls, model: nn.Module, before: int, after: int, requested: float, shortfall: str | None
    ) -> Removal:
        """A removal that resized nothing (weights masked in place): identity plan, every
        layer's units unchanged, ``before`` and ``after`` the parameters counted alive."""
        units = layer_units(model)
        result = TrimResult(
            params_before=before,
            params_after=after,
            requested=requested,
            units_before=units,
            units_after=dict(units),
            shortfall=shortfall,
        )
        return cls(TrimPlan.identity(model), {}, result)


def stored_params(model: nn.Module) -> int:
    """Parameters the model stores, each tied tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def unmasked_params(model: nn.Module) -> int:
    """Parameters the model stores less the weights its masks hold at zero."""
    return stored_params(model) - masking.masked_count(model)


def remove_units(driver: Driver, data: Iterable[Any] | None) -> Removal:
    """Rank units by the driver's criterion, remove ``amount`` of the parameters as whole
    units, verify the model (see :func:`~lotterytrim.trimming.step.trim`)."""
    model = driver.model
    before = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    step_plan, result = trim(
        model,
        driver.example_inputs,
        driver.scorer(),
        driver.amount,
        options=driver.options,
        unprunable=driver.unprunable,
        data=data,
        graph=driver.take_graph(),
        prior=driver.plan,
    )
    return Removal(step_plan, before, result)


def mask_weights(driver: Driver, data: Iterable[Any] | None) -> Removal:
    """Mask ``amount`` of the still unmasked conv/linear weights, smallest magnitude first
    across the network; no tensor is resized, so the step's plan is the identity."""
    model, amount = driver.model, driver.amount
    before = unmasked_params(model)
    masking.apply_masks(model, masking.global_magnitude_masks(model, amount))
    after = unmasked_params(model)
    target = int(round(amount * before))
    short = None
    if before - after < target:
        short = f"masked {before - after} weights instead of {target}: too few maskable left"
    return Removal.in_place(model, before, after, amount, short)

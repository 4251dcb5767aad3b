"""``Driver``: the trimmer as a lottery method sees it, so methods need not import the trimmer.

A method's removal reads the model, the settings of a step and the cumulative plan; its turn
after the removal may rewind. ``LotteryTrimmer`` is one such driver; a test double can be one.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from lotterytrim.criteria import Criterion
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.options import TrimOptions

__all__ = ["Driver"]


class Driver(Protocol):
    """What a method may read of the trimmer driving it, and the two things it may ask of it.

    The driver keeps the books (plan, level, history) from what the method's removal returns:
    the method never writes them.
    """

    @property
    def model(self) -> nn.Module:
        """The model being trimmed, changed in place."""

    @property
    def example_inputs(self) -> Any:
        """Inputs the model is traced and verified on."""

    @property
    def amount(self) -> float:
        """Share of the remaining parameters one step removes."""

    @property
    def options(self) -> TrimOptions:
        """Unit selection settings (scope, normalisation, safeguards, ...)."""

    @property
    def unprunable(self) -> list[nn.Module]:
        """Modules that keep all their output units."""

    @property
    def seed(self) -> int:
        """The trimmer's seed (random criterion, re-initialisation)."""

    @property
    def level(self) -> int:
        """Steps taken, this one included once the removal is done."""

    @property
    def plan(self) -> TrimPlan:
        """The cumulative trimming plan, in the original model's coordinates."""

    def scorer(self) -> Criterion:
        """The criterion a step ranks units by (summed over ranks when scores are synced)."""

    def take_graph(self) -> TrimGraph | None:
        """The model's trace kept for the next step, handed over once (None: trace anew)."""

    def rewind(self) -> None:
        """Write the rewind point W_k, sliced by the plan, into the surviving tensors."""

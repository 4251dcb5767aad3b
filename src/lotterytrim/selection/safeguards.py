"""Safeguards of selection: limits that keep a trimming step from emptying a layer.

Global ranking compares units of different layers. Without limits, one layer whose scores happen
to be low (a thin first conv, a layer with small weights) can lose nearly all of its units in a
single step, and the network never recovers. Each safeguard is a per-group limit on how many
units a step may take; the parameter budget is met with the units that remain eligible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lotterytrim.engine.groups import UnitGroup
from lotterytrim.engine.plan import TrimPlan

if TYPE_CHECKING:
    from lotterytrim.engine.graph import TrimGraph

__all__ = ["Safeguards", "COSTS", "original_units"]

COSTS = ("none", "params", "macs")


@dataclass(frozen=True)
class Safeguards:
    """Per-layer limits on what one step may remove, and how unit cost enters the ranking.

    ``step_cap``: the largest share of a group's current units that one step may remove
    (1.0: no cap). ``keep_floor``: the share of a group's *original* units (before the first
    step) that always survives (0.0: no floor); ``min_units`` still applies on top.
    ``cost``: rank units by score per parameter (``"params"``) or per multiply-accumulate
    (``"macs"``) they cost instead of by score alone (``"none"``), so that units cheap in
    parameters but costly in compute are not removed first by accident.
    """

    step_cap: float = 0.5
    keep_floor: float = 0.05
    cost: str = "none"

    def __post_init__(self) -> None:
        for name, low_open in (("step_cap", True), ("keep_floor", False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
            value = float(value)
            if not (0.0 <= value <= 1.0) or (low_open and value == 0.0) or value != value:
                bounds = "(0, 1]" if low_open else "[0, 1)"
                raise ValueError(f"{name} must lie in {bounds}, got {value}")
            object.__setattr__(self, name, value)
        if self.keep_floor >= 1.0:
            raise ValueError(f"keep_floor must lie in [0, 1), got {self.keep_floor}")
        if self.cost not in COSTS:
            raise ValueError(f"cost must be one of {COSTS}, got {self.cost!r}")

    @classmethod
    def off(cls) -> Safeguards:
        """No cap, no floor, plain scores: the unguarded ranking."""
        return cls(step_cap=1.0, keep_floor=0.0, cost="none")

    @classmethod
    def coerce(cls, value: Safeguards | Mapping[str, Any] | bool | None) -> Safeguards:
        """Accept a ``Safeguards``, a mapping of its fields, ``True`` (defaults) or ``False``/None
        (off)."""
        if isinstance(value, Safeguards):
            return value
        if value is True:
            return cls()
        if value is False or value is None:
            return cls.off()
        if isinstance(value, Mapping):
            unknown = set(value) - {"step_cap", "keep_floor", "cost"}
            if unknown:
                raise ValueError(f"unknown safeguard option(s): {sorted(unknown)}")
            return cls(**value)
        raise TypeError(
            f"safeguards must be a Safeguards, a mapping of its fields, or a bool; "
            f"got {type(value).__name__}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return asdict(self)

    @property
    def active(self) -> bool:
        """Whether any limit or cost weighting is in force."""
        return self.step_cap < 1.0 or self.keep_floor > 0.0 or self.cost != "none"

    # ---------------------------------------------------------------- limits
    def limits(self, group: UnitGroup, original: int, min_units: int) -> tuple[int, str | None]:
        """Most units one step may take from ``group``, and which limit sets it (None: min_units).

        ``original`` is the group's unit count before the first step.
        """
        n = group.n_units
        by_min = max(n - min_units, 0)
        by_cap = int(math.floor(self.step_cap * n + 1e-9)) if self.step_cap < 1.0 else n
        keep = int(math.ceil(self.keep_floor * original - 1e-9)) if self.keep_floor > 0 else 0
        by_floor = max(n - keep, 0)
        allowed = min(by_min, by_cap, by_floor)
        if allowed == by_min:
            return allowed, None
        return allowed, "step_cap" if by_cap <= by_floor else "keep_floor"


def original_units(graph: TrimGraph, prior: TrimPlan | None) -> dict[int, int]:
    """Units each group had before the first step, read from the cumulative plan of the steps
    taken so far (without one, the model as traced is the original)."""
    out: dict[int, int] = {}
    for g in graph.groups:
        out[g.id] = g.n_units
        if prior is None:
            continue
        for e in g.entries:
            if e.tensor not in prior.shapes:
                continue
            now = prior.current_shape(e.tensor)[e.dim]
            if now > 0:
                ratio = prior.shapes[e.tensor][e.dim] / now
                out[g.id] = max(g.n_units, int(round(g.n_units * ratio)))
            break
    return out

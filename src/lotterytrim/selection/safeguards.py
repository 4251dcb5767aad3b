"""Safeguards at work: the limits that keep a trimming step from emptying a layer.

Global ranking compares units of different layers. Without limits, one layer whose scores happen
to be low (a thin first conv, a layer with small weights) can lose nearly all of its units in a
single step, and the network never recovers. Each safeguard is a per-group limit on how many
units a step may take; the parameter budget is met with the units that remain eligible.
The settings (:class:`~lotterytrim.options.Safeguards`) and their defaults are in ``options``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch import nn

from lotterytrim.engine.groups import UnitGroup
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.options import Safeguards

if TYPE_CHECKING:
    from lotterytrim.engine.graph import TrimGraph

__all__ = ["unit_limits", "original_units", "residual_groups", "NORMS_ACROSS_UNITS"]

NORMS_ACROSS_UNITS: tuple[type[nn.Module], ...] = (nn.LayerNorm,) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)
"""Norm layers that normalise a token's features together (a residual stream's width)."""


def residual_groups(graph: TrimGraph) -> frozenset[int]:
    """Groups that are a normalised residual width: several layers write into their units and a
    LayerNorm (or RMSNorm) normalises them together, as in a transformer's embedding stream."""
    out = set()
    for g in graph.groups:
        writers = {m.module for m in g.producers()}
        if len(writers) < 2:
            continue
        if any(
            isinstance(graph.model.get_submodule(m.module), NORMS_ACROSS_UNITS)
            for m in g.members
            if m.module
        ):
            out.add(g.id)
    return frozenset(out)


def unit_limits(
    guard: Safeguards, group: UnitGroup, original: int, min_units: int, residual: bool = False
) -> tuple[int, str | None]:
    """Most units one step may take from ``group``, and which limit sets it (None: min_units).

    ``original`` is the group's unit count before the first step; ``residual`` says that the
    group is a normalised residual width, which ``residual="keep"`` keeps whole.
    """
    if residual and guard.residual == "keep" and group.n_units > min_units:
        return 0, "residual"
    n = group.n_units
    by_min = max(n - min_units, 0)
    by_cap = int(math.floor(guard.step_cap * n + 1e-9)) if guard.step_cap < 1.0 else n
    keep = int(math.ceil(guard.keep_floor * original - 1e-9)) if guard.keep_floor > 0 else 0
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

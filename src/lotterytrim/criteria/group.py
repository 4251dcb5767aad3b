"""``group_norm``: the p-norm of every parameter a unit takes with it when it is removed.

torch-pruning's group-norm importance in lotterytrim's engine: the slices scored are the
group's entries, the very indices a trim removes, so every layer kind the engine trims is
covered (conv, linear, recurrent gates, attention heads, flattened consumers, weight norm).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from lotterytrim.calls import tensor_at
from lotterytrim.criteria.base import Criterion
from lotterytrim.criteria.weights import logical_weight
from lotterytrim.engine.adapter import BETA, BIAS, FAN_IN, FAN_OUT, GAMMA, OWNED
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.groups import Entry, UnitGroup
from lotterytrim.errors import CriterionError

__all__ = ["GroupNorm"]

_SCORED = frozenset({FAN_IN, BIAS, GAMMA, BETA, OWNED, FAN_OUT})
"""Roles that are weights of the unit; running statistics (``stat``) are not."""


class GroupNorm(Criterion):
    """p-norm over every parameter entry tied to a unit across its group (each element once).

    A unit's score is ``(sum |w|^p) ** (1/p)`` over its producers' rows and biases (every gate
    of a recurrent unit, q/k/v rows of a head), its norm layers' scale and shift, parameters
    that modules own along the width, and with ``consumers=True`` every column of each
    consumer that reads it (all columns a flatten gives it). Running statistics and buffers
    are left out; weight-normed layers count their effective weight. Layers whose adapter
    lists no slices (activations, pooling) add nothing; a group with nothing to score raises
    :class:`~lotterytrim.errors.CriterionError` naming its layers.
    """

    name = "group_norm"

    def __init__(self, p: int = 2, consumers: bool = True) -> None:
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p!r}")
        super().__init__()
        self.p = p
        self.consumers = bool(consumers)

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        missing: list[UnitGroup] = []
        with torch.no_grad():
            for g in graph.prunable_groups:
                total = self._powered_sums(graph.model, g)
                if total is None:
                    missing.append(g)
                else:
                    out[g.id] = total if self.p == 1 else total.sqrt()
        if missing:
            names = "; ".join(f"group '{g.name}' (layers {', '.join(g.layers)})" for g in missing)
            raise CriterionError(
                f"criterion 'group_norm' finds no weights to score in {names}: their layers "
                "list no parameter slices. Use another criterion or mark them unprunable."
            )
        return out

    def _powered_sums(self, model: nn.Module, group: UnitGroup) -> torch.Tensor | None:
        """Per unit, the sum of |w|^p over its scored entries (None: no entry to score)."""
        tensors: dict[str, tuple[torch.Tensor, dict[int, Entry]]] = {}
        for e in group.entries:
            if e.role not in _SCORED or (e.role == FAN_OUT and not self.consumers):
                continue
            found = _weight_of(model, e.tensor)
            if found is None:
                continue  # a buffer broadcast along the width, not a weight
            key, w = found
            tensors.setdefault(key, (w, {}))[1].setdefault(e.dim, e)
        if not tensors:
            return None
        total = torch.zeros(group.n_units, dtype=torch.float64)
        for w, by_dim in tensors.values():
            vals = w.detach().double()
            vals = vals.abs() if self.p == 1 else vals.square()
            total += _unit_sums(vals, by_dim, group.n_units)
        return total

    def __repr__(self) -> str:
        return f"GroupNorm(p={self.p}, consumers={self.consumers})"


def _weight_of(model: nn.Module, stored: str) -> tuple[str, torch.Tensor] | None:
    """The weight behind a stored tensor name, keyed by its logical name (None: not a weight).

    The parts of a parametrized or weight-normed layer (``parametrizations.weight.original0``,
    ``weight_g``) resolve to the effective weight, so a unit's norm is the one it computes with.
    """
    parts = stored.split(".")
    parametrized = len(parts) >= 3 and parts[-3] == "parametrizations"
    owner, logical = ".".join(parts[:-3] if parametrized else parts[:-1]), ""
    if parametrized:
        logical = parts[-2]
    elif parts[-1].endswith(("_g", "_v")):
        logical = parts[-1][:-2]
    if logical:
        module = model.get_submodule(owner) if owner else model
        if parametrized or all(hasattr(module, logical + s) for s in ("_g", "_v")):
            w = logical_weight(module, logical)
            if w is not None:
                return f"{owner}.{logical}" if owner else logical, w
    t = tensor_at(model, stored)
    return (stored, t) if isinstance(t, nn.Parameter) else None


def _unit_sums(vals: torch.Tensor, by_dim: dict[int, Entry], n_units: int) -> torch.Tensor:
    """Sum ``vals`` into the units owning each element along the given dims, once per unit.

    An element owned through two dims (a recurrent unit's own column in its hidden-to-hidden
    rows) counts once for a unit that owns it both ways, and once for each of two units.
    """
    dims = sorted(by_dim)
    rest = [d for d in range(vals.dim()) if d not in by_dim]
    reduced = vals.sum(dim=rest) if rest else vals  # the owned dims, in order
    total = torch.zeros(n_units, dtype=torch.float64, device=vals.device)
    earlier: list[torch.Tensor] = []
    for k, d in enumerate(dims):
        e = by_dim[d]
        owner = torch.full((reduced.shape[k],), -1, dtype=torch.long, device=vals.device)
        owner[torch.as_tensor(e.indices, device=vals.device)] = torch.as_tensor(
            e.units, dtype=torch.long, device=vals.device
        )
        shape = [1] * reduced.dim()
        shape[k] = -1
        per_elem = owner.view(shape).expand(reduced.shape)
        take = per_elem >= 0
        for prev in earlier:
            take = take & (per_elem != prev)
        total += torch.bincount(per_elem[take], weights=reduced[take], minlength=n_units)
        earlier.append(per_elem)
    return total.cpu()

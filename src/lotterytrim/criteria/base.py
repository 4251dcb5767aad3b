"""The criterion base classes: one score per unit of every group (higher = keep).

Subclass :class:`Criterion` (full control over groups) or :class:`LayerCriterion` (score the
output channels of one layer at a time; lotterytrim maps channels to units and reduces the
scores of coupled layers), then register it with ``lt.criteria.register``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.groups import Member, UnitGroup
from lotterytrim.errors import CriterionError

__all__ = ["Criterion", "LayerCriterion", "REDUCTIONS"]

REDUCTIONS = ("mean", "sum", "max")


class Criterion:
    """Base class: map a traced model (and optional data) to one score per unit of each group.

    Override :meth:`score`. Groups left out of the result are not trimmed this step.
    """

    name = "custom"
    #: whether :meth:`score` needs ``data`` (validation batches)
    needs_data = False
    #: whether the constructor takes ``seed`` (the trimmer passes its own seed then)
    takes_seed = False

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        """Scores per group id: a float tensor with one entry per unit (higher = keep)."""
        raise NotImplementedError

    def _reduce(self, parts: list[np.ndarray]) -> np.ndarray:
        stack = np.stack(parts)
        if self.reduction == "sum":
            return stack.sum(0)
        if self.reduction == "max":
            return stack.max(0)
        return stack.mean(0)

    def _check_data(self, data: Iterable[Any] | None) -> Iterable[Any]:
        if data is None:
            raise CriterionError(
                f"criterion '{self.name}' needs data: pass validation batches, e.g. "
                "trimmer.step(data=val_loader)"
            )
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


def _units_from_channels(member: Member, channel_scores: np.ndarray, n_units: int) -> np.ndarray:
    """Sum a layer's per-channel scores into per-unit scores."""
    return np.bincount(
        member.units, weights=channel_scores[member.channels], minlength=n_units
    ).astype(np.float64)


class LayerCriterion(Criterion):
    """Score output channels layer by layer; coupled layers' unit scores are reduced.

    Override :meth:`channel_scores`; :attr:`scores_producers` chooses whether it is asked about
    producing layers (conv, linear, recurrent) or about norm layers.
    """

    scores_producers = True

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        """One score per output channel of ``module`` (None: this layer has no opinion)."""
        raise NotImplementedError

    def prepare(self, graph: TrimGraph, data: Iterable[Any] | None) -> None:
        """Hook for criteria that must look at data before :meth:`channel_scores`."""

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        if self.needs_data:
            data = self._check_data(data)
        self.prepare(graph, data)
        out: dict[int, torch.Tensor] = {}
        missing: list[UnitGroup] = []
        for g in graph.prunable_groups:
            parts = []
            for mem in g.members:
                if mem.side != "out" or mem.producer != self.scores_producers:
                    continue
                module = graph.model.get_submodule(mem.module)
                s = self.channel_scores(mem.module, module)
                if s is None:
                    continue
                s_np = torch.as_tensor(s).detach().double().cpu().numpy().ravel()
                parts.append(_units_from_channels(mem, s_np, g.n_units))
            if parts:
                out[g.id] = torch.from_numpy(self._reduce(parts))
            else:
                missing.append(g)
        self._missing(missing)
        return out

    def _missing(self, groups: list[UnitGroup]) -> None:
        if groups:
            names = "; ".join(f"group '{g.name}' (layers {', '.join(g.layers)})" for g in groups)
            raise CriterionError(f"criterion '{self.name}' cannot score {names}")

"""The ``random`` criterion: seeded random scores, the control baseline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from lotterytrim.criteria.base import Criterion
from lotterytrim.engine.graph import TrimGraph

__all__ = ["Random"]


class Random(Criterion):
    """Seeded random scores: the control baseline."""

    name = "random"
    takes_seed = True

    def __init__(self, seed: int = 0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.seed = seed
        self.draws = 0  # scorings so far: each one draws afresh, and resuming goes on from here

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.draws)
        self.draws += 1
        return {
            g.id: torch.rand(g.n_units, generator=gen, dtype=torch.float64)
            for g in graph.prunable_groups
        }

"""Trimming under ``torch.distributed``: every rank must remove the same units.

Data-dependent scores (activation, gradient, Taylor, information, and any criterion that needs
data) are summed over ranks with one ``all_reduce`` per step, in a fixed group order, so each
rank ranks identical numbers. Weight-based scores agree already when the ranks hold the same
weights (as under DDP); the random criterion agrees because every rank uses the same seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from lotterytrim.criteria.base import Criterion
from lotterytrim.engine.graph import TrimGraph

__all__ = ["is_distributed", "all_reduce_scores", "SyncedCriterion"]


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_scores(scores: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Sum per-group unit scores over all ranks (one collective, groups in id order)."""
    if not is_distributed() or not scores:
        return scores
    order = sorted(scores)
    sizes = [int(scores[g].numel()) for g in order]
    flat = torch.cat([scores[g].detach().double().ravel().cpu() for g in order])
    shape = [float(len(order)), float(flat.numel()), float(sum(order))]
    check = torch.tensor(shape + [-x for x in shape], dtype=torch.float64)
    dist.all_reduce(check, op=dist.ReduceOp.MAX)
    if not torch.equal(check[:3], -check[3:]):  # max == min on every rank, so all agree
        raise RuntimeError(
            "ranks scored different unit groups: every rank must hold the same model before "
            "trimmer.step()"
        )
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return dict(zip(order, torch.split(flat, sizes), strict=True))


class SyncedCriterion(Criterion):
    """Wraps a criterion so that its scores are summed across ranks before ranking."""

    def __init__(self, inner: Criterion) -> None:
        super().__init__(inner.reduction)
        self.inner = inner
        self.name = inner.name
        self.needs_data = inner.needs_data

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        """The inner criterion's scores, all-reduced (sum) over the process group."""
        return all_reduce_scores(self.inner.score(graph, data))

    def __repr__(self) -> str:
        return f"SyncedCriterion({self.inner!r})"

"""Filling a parameter budget with ranked units whose costs differ by orders of magnitude.

Ranked units are taken in order while they fit the budget (or pass it by at most a point). A
unit that would overshoot it by more (one unit of a transformer's residual width can cost a
third of the model) is passed over, and the next ranked units fill the rest; at the end, the
passed-over unit that lands closest to the budget is taken when it lands closer than stopping
short, with the units ranked after it given back when that lands closer still. Every cost is
exact: what removing the unit takes from every tensor of its coupled group, given the units
already chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lotterytrim.selection.costs import ParamCost

__all__ = ["Fill", "fill_budget"]

_CLOSE_ENOUGH = 1e-3
"""Share of the parameters under which a remaining gap is not worth walking on for."""


@dataclass(frozen=True)
class Fill:
    """Which ranked candidates were taken, what is left, and the cost of the unit at the edge."""

    taken: np.ndarray  # bool per candidate, in rank order
    left: float  # parameters left once the taken units are removed
    edge_cost: float  # exact cost of the unit that decided the end of the fill (0: none)
    edge_group: int | None  # its group

    @property
    def exhausted(self) -> bool:
        """Whether every candidate was taken."""
        return bool(self.taken.all())


class _Counter:
    """Parameters left under a growing removal, updated one unit at a time."""

    def __init__(self, cost: ParamCost, chosen: np.ndarray) -> None:
        self.cost = cost
        flat = np.bincount(cost.td[chosen], weights=cost.c[chosen], minlength=cost.sizes.size)
        self.removed = flat.reshape(cost.sizes.shape)
        self.kept = np.prod(np.maximum(cost.sizes - self.removed, 0), axis=1)
        self.left = float(self.kept.sum())

    def trial(self, rows: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Parameters left if ``rows`` were removed too, and what :meth:`commit` needs."""
        nd = self.cost.ndim
        tensors, inverse = np.unique(self.cost.td[rows] // nd, return_inverse=True)
        sub = self.removed[tensors].copy()
        np.add.at(sub, (inverse, self.cost.td[rows] % nd), self.cost.c[rows])
        kept = np.prod(np.maximum(self.cost.sizes[tensors] - sub, 0), axis=1)
        return self.left + float(kept.sum() - self.kept[tensors].sum()), tensors, sub, kept

    def commit(self, trial: tuple[float, np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Apply a :meth:`trial`."""
        left, tensors, sub, kept = trial
        self.removed[tensors] = sub
        self.kept[tensors] = kept
        self.left = left


def fill_budget(
    cost: ParamCost, cand_g: np.ndarray, cand_u: np.ndarray, target_left: float, slack: float
) -> Fill:
    """Take ranked candidates (group, unit) until ``target_left`` parameters are left.

    The longest prefix that stays within the budget is found by bisection; past it, candidates
    are taken in rank order when they fit, or overshoot by at most ``slack`` parameters and
    less than stopping short would miss; the others are passed over. Of the passed-over ones,
    the one landing closest is taken at the end if that is closer than stopping short: on top
    of everything taken, or with the units ranked after it given back (it ranks before them).
    """
    n = int(cand_g.size)
    span = int(cost.u.max()) + 1 if cost.u.size else 1
    row_keys = cost.g * span + cost.u
    by_key = np.argsort(row_keys, kind="stable")
    sorted_keys = row_keys[by_key]
    cand_keys = cand_g * span + cand_u
    starts = np.searchsorted(sorted_keys, cand_keys, side="left")
    ends = np.searchsorted(sorted_keys, cand_keys, side="right")
    lengths = ends - starts
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rank = np.full(cost.g.size, n, dtype=np.int64)
    rank[by_key[np.repeat(starts, lengths) + offsets]] = np.repeat(np.arange(n), lengths)

    def left_after(k: int) -> float:
        return cost.remaining(rank < k)

    lo, hi = 0, n  # the largest k whose prefix keeps at least target_left
    if left_after(n) >= target_left:
        lo = n
    else:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if left_after(mid) >= target_left:
                lo = mid
            else:
                hi = mid - 1
    taken = np.zeros(n, dtype=bool)
    taken[:lo] = True
    counter = _Counter(cost, rank < lo)
    edge_cost, edge_group = 0.0, None
    if lo:
        edge_cost = left_after(lo - 1) - counter.left
        edge_group = int(cand_g[lo - 1])
    passed: list[int] = []
    alone: dict[int, tuple[float, float]] = {}  # passed unit -> (left before it, left with it)
    enough = _CLOSE_ENOUGH * cost.total
    for i in range(lo, n):
        if counter.left - target_left <= enough:
            break
        trial = counter.trial(by_key[starts[i] : ends[i]])
        over = target_left - trial[0]
        if over <= 0 or (over <= slack and over < counter.left - target_left):
            edge_cost, edge_group = counter.left - trial[0], int(cand_g[i])
            counter.commit(trial)
            taken[i] = True
        else:
            passed.append(i)
            alone[i] = (counter.left, trial[0])
    gap = counter.left - target_left
    if gap > enough and passed:
        trials = [(counter.trial(by_key[starts[i] : ends[i]]), i) for i in passed]
        best, i = min(trials, key=lambda t: abs(t[0][0] - target_left))
        edge_cost, edge_group = counter.left - best[0], int(cand_g[i])
        j = min(passed, key=lambda p: abs(alone[p][1] - target_left))
        if abs(alone[j][1] - target_left) < min(abs(best[0] - target_left), gap):
            # the passed-over unit with only the units ranked before it lands closest
            taken[j:] = False
            taken[j] = True
            before, left = alone[j]
            return Fill(taken=taken, left=left, edge_cost=before - left, edge_group=int(cand_g[j]))
        if target_left - best[0] < gap:
            counter.commit(best)
            taken[i] = True
    return Fill(taken=taken, left=counter.left, edge_cost=edge_cost, edge_group=edge_group)

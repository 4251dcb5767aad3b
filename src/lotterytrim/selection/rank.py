"""Choosing the units to remove: local or global ranking under an exact parameter budget."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.groups import UnitGroup
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.options import OptionKeywords, Safeguards, TrimOptions, Unpack, check_amount
from lotterytrim.selection.costs import ParamCost, unit_costs
from lotterytrim.selection.fill import fill_budget
from lotterytrim.selection.safeguards import original_units, residual_groups, unit_limits

__all__ = ["Selection", "select_units", "normalize_scores", "removed_share"]

_TOLERANCE = 0.02
"""A step that misses its share by more than this (either way) says why."""
_SLACK = 0.01
"""Share of the parameters by which a ranked unit may pass the budget and still be taken."""


@dataclass(frozen=True)
class Selection:
    """The units chosen for removal and what removing them achieves (exact counts)."""

    removal: dict[int, np.ndarray]
    params_before: int
    params_after: int
    requested: float
    reason: str | None = None
    held: dict[str, str] = field(default_factory=dict)  # group -> which safeguard held it, how

    @property
    def achieved(self) -> float:
        """Share of the parameters removed."""
        return removed_share(self.params_before, self.params_after)


def removed_share(before: float, after: float) -> float:
    """Share of ``before`` parameters that are gone when ``after`` are left (0 for no model)."""
    return 1.0 - after / before if before else 0.0


def normalize_scores(scores: np.ndarray, group: UnitGroup, how: str) -> np.ndarray:
    """Per-group normalisation so that scores of different layers can be ranked together."""
    s = np.asarray(scores, dtype=np.float64)
    if how == "none":
        return s
    if how == "fan_in":
        return s / np.maximum(group.unit_params, 1.0)
    if how == "max":
        d = np.abs(s).max(initial=0.0)
    elif how == "l2":
        d = float(np.sqrt((s**2).sum()))
    else:  # mean
        d = float(np.abs(s).mean()) if s.size else 0.0
    return s / d if d > 0 else s


def select_units(
    graph: TrimGraph,
    scores: Mapping[int, torch.Tensor | np.ndarray],
    amount: float,
    options: TrimOptions | None = None,
    *,
    exclude: frozenset[int] = frozenset(),
    prior: TrimPlan | None = None,
    **shorthand: Unpack[OptionKeywords],
) -> Selection:
    """Pick the lowest-scored units so that ``amount`` of the current parameters go.

    The count is exact (a weight shared by two removed units is counted once). Global ranking
    fills the budget: a unit that would overshoot it is passed over and the next ranked units
    fill the rest (see ``selection/fill.py``). ``reason`` says why whenever the result misses
    the target by more than 2 points, either way (protected groups, ``min_units``, the
    safeguards, or units too coarse to land closer).
    ``options`` (or keywords, see :class:`TrimOptions`) choose scope, normalisation, min_units
    and safeguards, with the same defaults as ``trim`` (``safeguards=False`` gives the plain
    ranking). ``prior`` is the cumulative plan of earlier steps: the safeguards'
    floor is a share of the units each group had before them. ``held`` names the groups a
    safeguard kept units in.
    """
    amount = check_amount(amount)
    opts = TrimOptions.resolve(options, **shorthand)
    scope, normalize, min_units, guard = opts.scope, opts.normalize, opts.min_units, opts.safeguards
    residual = residual_groups(graph) if guard.residual != "rank" else frozenset()
    if scope == "local" and guard.residual == "last" and residual:
        # local scope takes a share of every group: residual widths only when the rest is short
        first = _with_residual(opts, "keep")
        sel = select_units(graph, scores, amount, first, exclude=exclude, prior=prior)
        if sel.reason is None or sel.achieved >= amount:
            return sel
        return select_units(
            graph, scores, amount, _with_residual(opts, "rank"), exclude=exclude, prior=prior
        )
    originals = original_units(graph, prior)
    weights = unit_costs(graph, guard.cost) if guard.cost != "none" else {}
    cost = ParamCost(graph)
    total = cost.total
    target_left = total * (1.0 - amount)
    norm: dict[int, np.ndarray] = {}
    skipped: list[str] = []
    for g in graph.prunable_groups:
        if g.id in exclude:
            continue
        if g.id not in scores:
            skipped.append(g.name)
            continue
        s = np.asarray(torch.as_tensor(scores[g.id]).detach().cpu().double().numpy())
        if s.shape != (g.n_units,):
            raise ValueError(
                f"criterion returned {s.shape} scores for group '{g.name}' of {g.n_units} units"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError(f"criterion returned non-finite scores for group '{g.name}'")
        norm[g.id] = normalize_scores(s, g, normalize)
        if g.id in weights:  # cost-aware: score per parameter or per MAC the unit costs
            norm[g.id] = norm[g.id] / weights[g.id]
    limits = {
        gid: unit_limits(guard, graph.groups[gid], originals[gid], min_units, gid in residual)
        for gid in norm
    }
    if scope == "global":
        cand_g, cand_u, cand_s = [], [], []
        for gid, s in norm.items():
            n = s.size
            order = np.lexsort((np.arange(n), s))[: limits[gid][0]]
            cand_g.append(np.full(order.size, gid))
            cand_u.append(order)
            cand_s.append(s[order])
        zero = np.zeros(0, dtype=np.int64)
        gg = np.concatenate(cand_g) if cand_g else zero
        uu = np.concatenate(cand_u) if cand_u else zero
        ss = np.concatenate(cand_s) if cand_s else zero.astype(np.float64)
        late = np.isin(gg, np.fromiter(residual, np.int64, len(residual)))
        order = np.lexsort((uu, gg, ss, late))  # residual widths last unless ranked
        gg, uu, ss, late = gg[order], uu[order], ss[order], late[order]
        fill = fill_budget(cost, gg, uu, target_left, _SLACK * total)
        removal: dict[int, list[int]] = {}
        for a, b in zip(gg[fill.taken].tolist(), uu[fill.taken].tolist(), strict=True):
            removal.setdefault(a, []).append(b)
        chosen = {a: np.sort(np.asarray(b, dtype=np.int64)) for a, b in removal.items()}
        exhausted = fill.exhausted
        boundary = fill.edge_cost
        edge_group = fill.edge_group
    else:
        orders = {gid: np.lexsort((np.arange(s.size), s)) for gid, s in norm.items()}
        within = np.full(cost.g.size, np.iinfo(np.int64).max, dtype=np.int64)
        for gid, order in orders.items():
            rank = np.empty(order.size, dtype=np.int64)
            rank[order] = np.arange(order.size)
            sel = cost.g == gid
            within[sel] = rank[cost.u[sel]]
        sizes = {gid: s.size for gid, s in norm.items()}
        gids = np.array(list(sizes), dtype=np.int64)
        caps = np.array([limits[int(g)][0] for g in gids], dtype=np.int64)
        ns = np.array([sizes[g] for g in gids], dtype=np.float64)
        steps = 1000

        def counts(i: int) -> np.ndarray:
            return np.minimum(np.floor(ns * i / steps + 1e-9).astype(np.int64), caps)

        def left_local(i: int) -> float:
            per = dict(zip(gids.tolist(), counts(i).tolist(), strict=True))
            limit = np.array([per.get(int(g), 0) for g in cost.g], dtype=np.int64)
            return cost.remaining(within < limit)

        i = _search(left_local, steps, target_left)
        chosen = {
            int(g): np.sort(orders[int(g)][:c])
            for g, c in zip(gids.tolist(), counts(i).tolist(), strict=True)
            if c > 0
        }
        exhausted = bool(np.all(counts(i) >= caps))
        boundary, edge_group = 0.0, None
    if scope == "global":
        early = np.flatnonzero(fill.taken & ~late)
        last = (gg[early[-1]], uu[early[-1]]) if early.size else None
        held = _held_global(norm, limits, chosen, last, min_units)
        if last is not None:
            waiting = late & ~fill.taken & (ss < float(norm[int(last[0])][int(last[1])]))
            for gid in np.unique(gg[waiting]).tolist():
                held[int(gid)] = held.get(int(gid), 0) + int((gg[waiting] == gid).sum())
    else:
        wanted = np.floor(ns * i / steps + 1e-9).astype(np.int64)
        held = {
            int(g): int(min(w, max(sizes[int(g)] - min_units, 0)) - c)
            for g, w, c in zip(gids.tolist(), wanted.tolist(), caps.tolist(), strict=True)
            if limits[int(g)][1] is not None and min(w, sizes[int(g)] - min_units) > c
        }
    held_names = {
        graph.groups[g].name: _held_text(guard.residual, limits[g], graph.groups[g].n_units, n)
        if g not in residual or limits[g][1] is not None
        else f"residual={guard.residual!r} kept {n} unit(s) of this residual width the ranking "
        "would have removed: it is cut only once every other group is at its limit"
        for g, n in held.items()
        if n > 0
    }
    left = cost.remaining(cost.rows_for(chosen))
    achieved = 1.0 - left / total if total else 0.0
    reason = None
    if abs(achieved - amount) > _TOLERANCE:
        short = achieved < amount
        why = _exhausted_why(opts, residual) if exhausted and short else []
        protected = [g for g in graph.groups if g.protected or g.id in exclude]
        if protected and short:
            names = ", ".join(f"'{g.name}'" for g in protected[:6])
            more = "" if len(protected) <= 6 else f" and {len(protected) - 6} more"
            why.append(f"protected groups: {names}{more}")
        if short and not exhausted:
            why.extend(_limited_why(graph, guard, limits, chosen))
        if skipped:
            why.append(f"groups without scores: {', '.join(skipped)}")
        if scope == "local" and not exhausted:
            why.append("local scope removes whole units per layer, a coarse step")
        elif (not exhausted or not short) and edge_group is not None:
            edge = graph.groups[edge_group]
            why.append(
                f"units are too coarse to land closer: the unit at the edge of the budget costs "
                f"{boundary / max(total, 1.0):.1%} of the parameters (group "
                f"'{edge.name}') and no cheaper unit was left to fill the rest"
                + _SPLIT_HINT
                * any(
                    isinstance(graph.model.get_submodule(m.module), torch.nn.MultiheadAttention)
                    for m in edge.members
                )
            )
        reason = f"removed {achieved:.1%} of parameters instead of {amount:.1%}: " + "; ".join(why)
    return Selection(
        removal=chosen,
        params_before=int(round(total)),
        params_after=int(round(left)),
        requested=amount,
        reason=reason,
        held=held_names,
    )


_SPLIT_HINT = (
    " (its units are whole heads of an nn.MultiheadAttention; lt.split_attention(model) before"
    " the lottery lets this width lose one feature at a time)"
)


def _limited_why(
    graph: TrimGraph,
    guard: Safeguards,
    limits: dict[int, tuple[int, str | None]],
    chosen: dict[int, np.ndarray],
) -> list[str]:
    """Groups this step took to their step cap or floor: the cheap units a short step left."""
    out = []
    for rule in ("step_cap", "keep_floor"):
        names = [
            f"'{graph.groups[g].name}'"
            for g, (allowed, why) in limits.items()
            if why == rule and allowed > 0 and len(chosen.get(g, ())) >= allowed
        ]
        if names:
            more = "" if len(names) <= 4 else f" and {len(names) - 4} more"
            value = getattr(guard, rule)
            out.append(f"{rule}={value:g} stopped {', '.join(names[:4])}{more} this step")
    return out


def _exhausted_why(opts: TrimOptions, residual: frozenset[int]) -> list[str]:
    """Why nothing more could go once every candidate was taken."""
    guard = opts.safeguards
    why = [f"every removable unit is gone: the rest is protected or at min_units={opts.min_units}"]
    if guard.active:
        why.append(
            f"safeguards step_cap={guard.step_cap:g}, keep_floor={guard.keep_floor:g} "
            "limit each group's share"
            + (
                f" (every layer keeps {guard.keep_floor:.0%} of its original units: "
                "pass a lower keep_floor to trim further)"
                if guard.keep_floor > 0
                else ""
            )
        )
    if residual and guard.residual == "keep":
        why.append(
            "residual='keep' keeps the residual (embedding) width whole: pass "
            "safeguards residual='last' to cut it once the rest is at its limits"
        )
    return why


def _held_text(mode: str, limit: tuple[int, str | None], n_units: int, n: int) -> str:
    """The ``held`` sentence of a group that a safeguard kept ``n`` units in."""
    which = f"residual={mode!r}" if limit[1] == "residual" else limit[1]
    return (
        f"{which} kept {n} unit(s) the ranking would have removed "
        f"({n_units - limit[0]} of {n_units} must stay)"
    )


def _with_residual(opts: TrimOptions, mode: str) -> TrimOptions:
    """``opts`` with the safeguards' ``residual`` set to ``mode``."""
    guard = dataclasses.replace(opts.safeguards, residual=mode)
    return dataclasses.replace(opts, safeguards=guard)


def _held_global(
    norm: Mapping[int, np.ndarray],
    limits: Mapping[int, tuple[int, str | None]],
    chosen: Mapping[int, np.ndarray],
    last: tuple[int, int] | None,
    min_units: int,
) -> dict[int, int]:
    """Units per group that a safeguard kept although they score below the last unit chosen
    (and ``min_units`` would have let go)."""
    if last is None:
        return {}
    threshold = float(norm[int(last[0])][int(last[1])])
    out: dict[int, int] = {}
    for gid, (allowed, which) in limits.items():
        if which is None:
            continue
        s = norm[gid]
        taken = chosen.get(gid, np.zeros(0, dtype=np.int64)).size
        if taken < allowed:
            continue
        below = int((s < threshold).sum())
        extra = min(below, s.size - min_units) - taken
        if extra > 0:
            out[gid] = extra
    return out


def _search(left_after: Callable[[int], float], n: int, target_left: float) -> int:
    """Smallest k whose remaining count reaches the target, or k-1 when that is closer."""
    f = left_after  # non-increasing in k
    if f(n) > target_left:
        return n
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if f(mid) <= target_left:
            hi = mid
        else:
            lo = mid + 1
    if lo > 0 and abs(f(lo - 1) - target_left) < abs(f(lo) - target_left):
        return lo - 1
    return lo

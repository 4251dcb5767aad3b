"""One trimming step as a function: rank, choose, remove, verify. No lottery driver needed."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from lotterytrim.calls import eval_mode, output_signature, run_model
from lotterytrim.criteria import Criterion, get_criterion
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.guards import check_trimmable
from lotterytrim.engine.layers import layer_units
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.errors import ExampleInputError, TrimVerificationError
from lotterytrim.options import OptionKeywords, TrimOptions, Unpack, check_amount
from lotterytrim.selection.rank import Selection, removed_share, select_units
from lotterytrim.trimming.undo import ModuleSnapshot

__all__ = [
    "trim",
    "TrimResult",
    "StepResult",
    "CompactResult",
    "units_lost",
    "apply_verified",
    "breaking_groups",
]


@dataclass
class TrimResult:
    """What one trimming step did.

    Every unit count uses one definition, the width a layer's repr shows: output channels
    (convolution), output features (linear), embedding features, hidden units per direction
    (recurrent ``hidden_size``). For each group that lost units, ``removed_units`` names it by
    its first layer and equals that layer's ``units_before - units_after``.
    """

    params_before: int
    params_after: int
    requested: float  # share of parameters asked to be removed
    units_before: dict[str, int]  # units per trimmable layer before the step
    units_after: dict[str, int]  # ... and after
    removed_units: dict[str, int] = field(default_factory=dict)  # group -> its layer's loss
    protected: dict[str, str] = field(default_factory=dict)  # group -> why it kept its units
    shortfall: str | None = None  # why less than requested was removed (None: on target)
    seconds: float = 0.0
    held: dict[str, str] = field(default_factory=dict)  # group -> the safeguard that held it

    @property
    def achieved(self) -> float:
        """Share of the parameters actually removed."""
        return removed_share(self.params_before, self.params_after)


@dataclass(kw_only=True)
class StepResult(TrimResult):
    """What one lottery step did: a :class:`TrimResult` plus the level and the method."""

    level: int  # lottery level reached by this step (1 after the first step)
    method: str  # the lottery method ("trim", "finetune", "reinit", "mask" or a registered one)
    rewound: bool = False  # whether the survivors were written back from the rewind point

    @classmethod
    def of(cls, result: TrimResult, **extra: Any) -> StepResult:
        """A step result from a trim result and the step's own fields."""
        return cls(**{**{f.name: getattr(result, f.name) for f in fields(TrimResult)}, **extra})


@dataclass
class CompactResult:
    """What ``LotteryTrimmer.compact`` physically removed from a masked model."""

    params_before: int  # parameters stored before compaction (masked ones included)
    params_after: int  # parameters stored after compaction
    removed_units: dict[str, int] = field(default_factory=dict)  # group -> its layer's loss
    skipped: dict[str, str] = field(default_factory=dict)  # group -> why its empty units stayed
    seconds: float = 0.0  # wall time of the compaction

    @property
    def saved(self) -> int:
        """Parameters no longer stored."""
        return self.params_before - self.params_after


def units_lost(
    graph: TrimGraph,
    removal: Mapping[int, np.ndarray],
    before: Mapping[str, int],
    after: Mapping[str, int],
) -> dict[str, int]:
    """Units each group in ``removal`` took from its named layer, counted as ``layer_units`` does.

    A group's own units can be wider (an attention head, a block of residual features), so the
    count is read from the layer itself: ``before[name] - after[name]``.
    """
    out: dict[str, int] = {}
    for gid, units in removal.items():
        name = graph.groups[gid].name
        if name in before and name in after:
            out[name] = before[name] - after[name]
        else:
            out[name] = int(np.asarray(units).size)
    return out


def _runs_like(model: nn.Module, inputs: Any, signature: Any) -> str | None:
    """None when the model runs and its output has the expected structure, else the problem."""
    try:
        with eval_mode(model), torch.no_grad():
            out = run_model(model, inputs)
    except Exception as exc:  # noqa: BLE001 - any failure is a broken model
        return f"{type(exc).__name__}: {exc}"
    got = output_signature(out)
    return None if got == signature else f"output changed from {signature} to {got}"


def apply_verified(graph: TrimGraph, removal: dict[int, np.ndarray]) -> tuple[TrimPlan, str | None]:
    """Apply a removal; undo it and say why when the model no longer runs the same way."""
    plan = graph.plan_for(removal)
    snap = ModuleSnapshot(graph.model)
    try:
        plan.apply_to_model(graph.model)
    except Exception as exc:  # noqa: BLE001
        snap.restore()
        return plan, f"{type(exc).__name__}: {exc}"
    problem = _runs_like(graph.model, graph.example_inputs, graph.signature)
    if problem is not None:
        snap.restore()
    return plan, problem


def _find_breaking(graph: TrimGraph, removal: dict[int, np.ndarray]) -> list[int]:
    """Bisect the groups of a failing removal down to the ones that break the model."""
    culprits: list[int] = []
    stack = [sorted(removal)]
    while stack:
        ids = stack.pop()
        sub = {g: removal[g] for g in ids}
        plan = graph.plan_for(sub)
        snap = ModuleSnapshot(graph.model)
        try:
            plan.apply_to_model(graph.model)
            broken = _runs_like(graph.model, graph.example_inputs, graph.signature) is not None
        except Exception:  # noqa: BLE001
            broken = True
        finally:
            snap.restore()
        if not broken:
            continue
        if len(ids) == 1:
            culprits.append(ids[0])
        else:
            half = len(ids) // 2
            stack += [ids[:half], ids[half:]]
    return culprits


def breaking_groups(
    graph: TrimGraph, removal: dict[int, np.ndarray], problem: str
) -> dict[int, str]:
    """The groups whose removal breaks the model, each with the reason to report."""
    out = {}
    for gid in _find_breaking(graph, removal) or sorted(removal):
        g = graph.groups[gid]
        out[gid] = (
            f"removing units of group '{g.name}' (layers {', '.join(g.layers)}) breaks the "
            f"model ({problem}); a width stored or hard-coded in forward is a common cause"
        )
    return out


def trim(
    model: nn.Module,
    example_inputs: Any,
    criterion: str | Criterion = "magnitude",
    amount: float = 0.3,
    *,
    options: TrimOptions | None = None,
    unprunable: Iterable[nn.Module] = (),
    data: Iterable[Any] | None = None,
    graph: TrimGraph | None = None,
    prior: TrimPlan | None = None,
    **shorthand: Unpack[OptionKeywords],
) -> tuple[TrimPlan, TrimResult]:
    """Remove ``amount`` of the model's parameters in one step, in place.

    Returns the step's plan (relative to the model as passed in) and a :class:`TrimResult`.
    Every argument is checked before the model is touched; a failing step leaves it as it was.
    The trimmed model is verified on ``example_inputs``: a group whose removal breaks it is
    found by bisection, protected and reported, and trimming goes on with the rest.
    ``options`` (a :class:`TrimOptions`, or its fields as keywords) choose scope,
    normalisation, min_units, safeguards and what to do with unsupported layers; ``prior`` is
    the cumulative plan of earlier steps, from which the safeguards read the original unit
    counts (``LotteryTrimmer`` passes it).
    """
    t0 = time.perf_counter()
    amount = check_amount(amount)
    opts = TrimOptions.resolve(options, **shorthand)
    check_trimmable(model, "lt.trim()")
    crit = get_criterion(criterion)
    if graph is None:
        graph = TrimGraph(
            model, example_inputs, unprunable=unprunable, on_unsupported=opts.on_unsupported
        )
    elif graph.model is not model:
        raise ValueError("graph was traced from a different model")
    elif (problem := _runs_like(model, graph.example_inputs, graph.signature)) is not None:
        # a graph traced earlier (a trimmer's): the model may have changed since, and a model
        # that fails before any removal must not be blamed on a group
        raise ExampleInputError(
            f"{type(model).__name__} no longer runs on its example inputs as traced, before "
            f"anything was removed ({problem}); was its dtype or device changed since?"
        )
    units_before = layer_units(model)
    scores = crit.score(graph, data)
    protected = {g.name: g.protected for g in graph.groups if g.protected}
    broken: set[int] = set()
    for _ in range(len(graph.groups) + 1):
        sel: Selection = select_units(
            graph, scores, amount, opts, exclude=frozenset(broken), prior=prior
        )
        if not sel.removal:
            break
        plan, problem = apply_verified(graph, sel.removal)
        if problem is None:
            break
        for gid, why in breaking_groups(graph, sel.removal, problem).items():
            broken.add(gid)
            protected[graph.groups[gid].name] = why
    else:  # pragma: no cover - the loop always ends by success or by running out of groups
        sel = select_units(graph, scores, amount, opts, exclude=frozenset(broken), prior=prior)
    if not sel.removal:
        plan = TrimPlan.identity(model)
        if broken and not any(g.protected is None and g.id not in broken for g in graph.groups):
            names = ", ".join(f"'{graph.groups[g].name}'" for g in sorted(broken))
            raise TrimVerificationError(
                f"no unit of {type(model).__name__} can be removed without breaking it; "
                f"groups tried: {names}"
            )
    params_after = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    if sel.removal and params_after != sel.params_after:
        raise AssertionError(
            f"internal count mismatch: expected {sel.params_after} parameters, got {params_after}"
        )
    units_after = layer_units(model)
    result = TrimResult(
        params_before=sel.params_before,
        params_after=params_after if sel.removal else sel.params_before,
        requested=amount,
        units_before=units_before,
        units_after=units_after,
        removed_units=units_lost(graph, sel.removal, units_before, units_after),
        protected=protected,
        shortfall=sel.reason,
        seconds=time.perf_counter() - t0,
        held=sel.held,
    )
    return plan, result

"""Trimming to a size: ``LotteryTrimmer.trim_to(keep)`` in as many steps as the safeguards need.

A step removes at most the trimmer's ``amount`` of the remaining parameters and ``step_cap`` of
each layer's units, so reaching a small share of the original model takes several steps. The
way to the target is split into the fewest equal ratios under that limit, recomputed after each
sub-step from what it really removed; the last asks for exactly what is left. Each sub-step is
an ordinary ``trimmer.step()`` (history, level, plan, optimizer hand-over and per-step
atomicity as usual), planned first so that no empty step is taken. Every sub-step ranks the
trained values: between sub-steps the survivors keep them, and the method's own turn
(rewinding for ``trim``, re-initialising for ``reinit``) comes once, after the last sub-step.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lotterytrim.calls import eval_mode
from lotterytrim.criteria import Criterion
from lotterytrim.criteria.batches import model_device, to_device
from lotterytrim.criteria.distributed import all_reduce_scores, is_distributed
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.masknames import model_tensors
from lotterytrim.errors import TrimmerStateError, TrimVerificationError
from lotterytrim.selection.rank import Selection, select_units
from lotterytrim.trimming.driver import Driver
from lotterytrim.trimming.methods import Method
from lotterytrim.trimming.removal import Removal
from lotterytrim.trimming.step import StepResult
from lotterytrim.trimming.undo import UndoPoint

if TYPE_CHECKING:
    from lotterytrim.trimming.trimmer import LotteryTrimmer

__all__ = [
    "TargetResult",
    "trim_to",
    "keeping_values",
    "check_keep",
    "original_params",
    "removal_for",
    "trace_current",
    "score_current",
]


@dataclass
class TargetResult:
    """What ``trimmer.trim_to(keep)`` did: sizes, the sub-steps taken, and any shortfall."""

    keep: float  # share of the original model's parameters asked to stay
    params_original: int  # parameters of the model before its first step
    params_target: int  # keep times params_original, rounded
    params_before: int  # parameters when trim_to was called
    params_after: int  # parameters when it returned
    steps: list[StepResult] = field(default_factory=list)  # one per sub-step, as in history
    shortfall: str | None = None  # why the target was not reached (None: within one unit)
    seconds: float = 0.0

    @property
    def sub_steps(self) -> int:
        """Number of trimming steps taken (0 when the model was on target already)."""
        return len(self.steps)

    @property
    def kept(self) -> float:
        """Share of the original model's parameters left."""
        return self.params_after / self.params_original if self.params_original else 0.0


def check_keep(keep: object) -> float:
    """Validate ``keep``: a share of the original parameters in (0, 1] (a 0-d tensor too)."""
    value = keep
    item = getattr(value, "item", None)
    if getattr(value, "ndim", None) == 0 and callable(item):
        value = item()  # a 0-d torch tensor or numpy array
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, numbers.Real)
        or not 0.0 < float(value) <= 1.0  # False for NaN too
    ):
        raise ValueError(
            f"keep must be the share of the original model's parameters to keep, a number in "
            f"(0, 1]; got {keep!r}"
        )
    return float(value)


def original_params(trimmer: LotteryTrimmer) -> int:
    """Parameters of the trimmer's model before its first step, read from the cumulative plan
    (each tied tensor counted once)."""
    params = {id(p) for p in trimmer.model.parameters()}
    seen: set[int] = set()
    total = 0
    for name, t in model_tensors(trimmer.model).items():
        if id(t) in params and id(t) not in seen:
            seen.add(id(t))
            total += math.prod(trimmer.plan.shapes.get(name, tuple(t.shape)))
    return total


def removal_for(trimmer: LotteryTrimmer, keep: float) -> tuple[int, int, float]:
    """``(original, current, amount)``: the share of the *current* parameters that trimming to
    ``keep`` of the original removes (0.0: none). A ``keep`` above what the model still holds
    is a ValueError naming it."""
    original, current = original_params(trimmer), trimmer.params
    share = current / original if original else 1.0
    if keep > share * (1.0 + 1e-12):
        raise ValueError(
            f"keep={keep!r} is more than the model holds already ({current} of its original "
            f"{original} parameters, a share of {share:.4g}): trimming cannot grow a model"
        )
    return original, current, max(0.0, 1.0 - keep * original / current) if current else 0.0


def trace_current(trimmer: LotteryTrimmer) -> TrimGraph:
    """The trimmer's model traced as it is now, as a step would trace it (in eval mode), on
    the device the model trains on (a monitor reads it between epochs, on the GPU too)."""
    inputs = to_device(trimmer.example_inputs, model_device(trimmer.model))
    with eval_mode(trimmer.model):
        return TrimGraph(
            trimmer.model,
            inputs,
            unprunable=trimmer.unprunable,
            on_unsupported=trimmer.options.on_unsupported,
        )


def score_current(
    trimmer: LotteryTrimmer, graph: TrimGraph, data: Iterable[Any] | None
) -> dict[int, torch.Tensor]:
    """The trimmer's criterion on ``graph`` as a step scores it (summed over ranks when the
    trimmer syncs scores). Criteria that read only weights run without autograd; data-driven
    ones choose their own gradient mode (gradient and Taylor need it)."""
    crit = trimmer.criterion
    sync = trimmer.sync_scores
    if sync is None:
        sync = crit.needs_data and is_distributed()
    if crit.needs_data:
        scores = crit.score(graph, data)
    else:
        with torch.no_grad():
            scores = crit.score(graph, data)
    return all_reduce_scores(scores) if sync else scores


def keeping_values(method: Method) -> Method:
    """A stand-in for ``method`` during sub-steps: it removes units like ``method`` and moves the
    attached schedule and optimizer state as it does, but the survivors keep their values."""
    return _KeepValues(method)


class _KeepValues(Method):
    def __init__(self, method: Method) -> None:
        self.method = method
        self.name = method.name
        self.schedule = method.schedule
        self.carries_optimizer_state = method.carries_optimizer_state
        self.fixed_criterion = method.fixed_criterion
        self.removes_units = method.removes_units
        self.keeps_masks = method.keeps_masks

    def remove(self, trimmer: Driver, data: Iterable[Any] | None) -> Removal:
        return self.method.remove(trimmer, data)


class _FrozenScores(Criterion):
    """Scores computed already (by group name): a sub-step ranks exactly what was planned."""

    def __init__(self, inner: Criterion, scores: Mapping[str, torch.Tensor]) -> None:
        super().__init__(inner.reduction)
        self.name = inner.name
        self.scores = dict(scores)

    def score(self, graph: TrimGraph, data: Iterable[Any] | None = None) -> dict[int, torch.Tensor]:
        return {g.id: self.scores[g.name] for g in graph.groups if g.name in self.scores}


def _planned(
    trimmer: LotteryTrimmer, amount: float, data: Iterable[Any] | None
) -> tuple[TrimGraph, dict[str, torch.Tensor], Selection]:
    """Score the model as it is and choose what a step of ``amount`` removes (a dry run)."""
    graph = trace_current(trimmer)
    scores = score_current(trimmer, graph, data)
    sel = select_units(graph, scores, amount, trimmer.options, prior=trimmer.plan)
    return graph, {graph.groups[g].name: s for g, s in scores.items()}, sel


def _paced(left: float, limit: float) -> float:
    """The share one sub-step asks for when ``left`` of the current parameters must go and a
    step takes at most ``limit``: the fewest equal shares (in ratio) that get there."""
    if left <= limit or limit >= 1.0:
        return left
    n = math.ceil(math.log1p(-left) / math.log1p(-limit) - 1e-9)
    return -math.expm1(math.log1p(-left) / n)


def _why(trimmer: LotteryTrimmer, last: Selection | None, step: StepResult | None) -> str:
    """The reasons the last selection or sub-step gave for removing less than asked."""
    for text in (last.reason if last else None, step.shortfall if step else None):
        if text:
            return text.partition(": ")[2] or text
    if step is not None and step.protected:
        return "protected groups: " + "; ".join(f"'{g}': {w}" for g, w in step.protected.items())
    guard = trimmer.options.safeguards
    return (
        f"no unit can go: the safeguards (keep_floor={guard.keep_floor:g}), "
        f"min_units={trimmer.options.min_units} and protected layers hold the rest"
    )


def trim_to(
    trimmer: LotteryTrimmer, method: Method, keep: float, data: Iterable[Any] | None = None
) -> TargetResult:
    """Trim ``trimmer``'s model to ``keep`` of its original parameters (see the module doc).

    ``method`` is the trimmer's own method; the trimmer runs its sub-steps with
    :func:`keeping_values` in its place. Each sub-step asks for the share that lands on the
    target and is planned first (scored once, on the trained values): when the plan removes
    nothing, the target is reached or nothing more may go, and no empty step is taken.
    """
    t0 = time.perf_counter()
    keep = check_keep(keep)
    if not method.removes_units:
        how = "masks single weights" if method.keeps_masks else "does not remove whole units"
        raise TrimmerStateError(
            f"trim_to() removes units; method {method.name!r} {how}: use step()"
        )
    if method.rewinds and trimmer.rewind_point is None:
        raise TrimmerStateError(
            f"method {method.name!r} rewinds the survivors, but no rewind point was captured: "
            "call trimmer.capture_rewind() before trim_to()"
        )
    trimmer.check_model()
    original, before, left = removal_for(trimmer, keep)
    target = keep * original
    limit = min(trimmer.amount, trimmer.options.safeguards.step_cap)
    steps: list[StepResult] = []
    sel: Selection | None = None
    blocked: str | None = None
    unit = 0.0
    while left > 0.0:
        ask = _paced(left, limit)
        graph, scores, sel = _planned(trimmer, ask, data)
        if not sel.removal and ask < left:  # one unit costs more than a paced share: go whole
            ask = left
            graph, scores, sel = _planned(trimmer, ask, data)
        unit = max((float(g.unit_params.max()) for g in graph.prunable_groups), default=0.0)
        if not sel.removal:
            break  # on target within a unit, or nothing more may go
        criterion, per_step = trimmer.criterion, trimmer.amount
        trimmer.criterion, trimmer.amount = _FrozenScores(criterion, scores), ask
        try:
            steps.append(trimmer.step(data))
        except TrimVerificationError as exc:  # the step was undone: nothing more can go
            blocked = str(exc)
            break
        finally:
            trimmer.criterion, trimmer.amount = criterion, per_step
        if steps[-1].params_after >= steps[-1].params_before:
            break  # the planned units break the model (the step protected them): stop here
        left = max(0.0, 1.0 - target / trimmer.params)
    if steps and type(method).after_removal is not Method.after_removal:
        undo = UndoPoint(trimmer.model, trimmer, None)
        try:
            method.after_removal(trimmer)  # rewind, re-initialise: once, after the last sub-step
        except BaseException:
            undo.restore()
            raise
        steps[-1].rewound = method.rewinds
    after = trimmer.params
    shortfall = None
    if after - target > max(unit, 1.0):
        shortfall = (
            f"kept {after} parameters ({after / original:.1%} of the original {original}) "
            f"instead of {round(target)} ({keep:.1%}): "
            + (blocked or _why(trimmer, sel, steps[-1] if steps else None))
        )
    return TargetResult(
        keep=keep,
        params_original=original,
        params_target=round(target),
        params_before=before,
        params_after=after,
        steps=steps,
        shortfall=shortfall,
        seconds=time.perf_counter() - t0,
    )

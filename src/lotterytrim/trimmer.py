"""``LotteryTrimmer``: the lottery driver. Rank, remove, rewind; keep the cumulative plan.

One trimmer drives one model through the levels of a lottery. It checks that nobody changed the
model behind its back, keeps the rewind point W_k, a history of :class:`StepResult` and enough
state (:meth:`LotteryTrimmer.state_dict`) to resume a run exactly where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import _guards, masking
from ._handover import Handover, make_handover, watch_removed
from .criteria import Criterion, Random, get_criterion
from .distributed import SyncedCriterion, is_distributed
from .errors import LotteryTrimError
from .functional import _apply, _breaking_groups, layer_units, trim
from .graph import TrimGraph
from .plan import TrimPlan
from .rewind import RewindPoint, model_tensors
from .safeguards import Safeguards
from .selection import check_amount, check_options

__all__ = ["LotteryTrimmer", "StepResult", "CompactResult", "TrimmerStateError", "METHODS"]

METHODS = ("trim", "finetune", "reinit", "mask")
_STATE_FORMAT = 1


class TrimmerStateError(LotteryTrimError, RuntimeError):
    """The trimmer cannot step: no rewind point yet, or the model changed outside the trimmer."""


@dataclass
class StepResult:
    """What one lottery step did."""

    level: int  # lottery level reached by this step (1 after the first step)
    method: str  # "trim", "finetune", "reinit" or "mask"
    params_before: int  # parameters before the step (mask: weights not masked)
    params_after: int  # parameters after the step (mask: weights not masked)
    requested: float  # share of the remaining parameters asked to be removed
    units_before: dict[str, int] = field(default_factory=dict)  # output units per layer, before
    units_after: dict[str, int] = field(default_factory=dict)  # output units per layer, after
    removed_units: dict[str, int] = field(default_factory=dict)  # units removed per group
    protected: dict[str, str] = field(default_factory=dict)  # group -> why it kept its units
    shortfall: str | None = None  # why less than requested was removed (None: on target)
    rewound: bool = False  # whether the survivors were written back from the rewind point
    seconds: float = 0.0  # wall time of the step
    held: dict[str, str] = field(default_factory=dict)  # group -> safeguard that kept its units

    @property
    def achieved(self) -> float:
        """Share of the parameters actually removed."""
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0


@dataclass
class CompactResult:
    """What :meth:`LotteryTrimmer.compact` physically removed from a masked model."""

    params_before: int  # parameters stored before compaction (masked ones included)
    params_after: int  # parameters stored after compaction
    removed_units: dict[str, int] = field(default_factory=dict)  # units removed per group
    skipped: dict[str, str] = field(default_factory=dict)  # group -> why its empty units stayed
    seconds: float = 0.0  # wall time of the compaction

    @property
    def saved(self) -> int:
        """Parameters no longer stored."""
        return self.params_before - self.params_after


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


class LotteryTrimmer:
    """Drive a model through a structured lottery: rank, remove, rewind, retrain, repeat."""

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        criterion: str | Criterion = "magnitude",
        amount: float = 0.3,
        *,
        scope: str = "global",
        normalize: str = "max",
        method: str = "trim",
        unprunable: Iterable[nn.Module] | None = None,
        min_units: int = 1,
        seed: int = 0,
        rewind_to_disk: str | Path | None = None,
        on_unsupported: str = "error",
        criterion_options: Mapping[str, Any] | None = None,
        sync_scores: bool | None = None,
        safeguards: Safeguards | Mapping[str, Any] | bool = True,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.amount = check_amount(amount)
        check_options(scope, normalize, min_units)
        self.safeguards = Safeguards.coerce(safeguards)
        options = dict(criterion_options or {})
        if criterion == "random":
            options.setdefault("seed", seed)
        self.criterion = get_criterion(criterion, **options)
        self.model = model
        self.example_inputs = example_inputs
        self.scope, self.normalize, self.method = scope, normalize, method
        self.unprunable = list(unprunable or [])
        self.min_units, self.seed = min_units, seed
        self.on_unsupported = on_unsupported
        self.sync_scores = sync_scores
        self.rewind_to_disk = Path(rewind_to_disk) if rewind_to_disk is not None else None
        self._handover: Handover | None = None
        _guards.check_trimmable(model, "LotteryTrimmer", masks_ok=method == "mask")
        # trace once now so that bad inputs or unsupported layers fail here, not at step 1;
        # the trace serves the first step too (training changes values, not structure)
        self._graph: TrimGraph | None = TrimGraph(
            model, example_inputs, unprunable=self.unprunable, on_unsupported=on_unsupported
        )
        self.plan = TrimPlan.identity(model)
        self.level = 0
        self.history: list[StepResult] = []
        self.rewind_point: RewindPoint | None = None
        self.last_step_plan: TrimPlan | None = None
        self._old_names: dict[int, str] = {}
        self._remember()

    # ---------------------------------------------------------------- bookkeeping
    def _remember(self) -> None:
        """Record the identity of every parameter, to notice replacements outside the trimmer."""
        self._ids = {n: id(t) for n, t in model_tensors(self.model).items()}

    def _check_model(self) -> None:
        """Raise when the model's tensors no longer match the plan or were replaced."""
        _guards.check_trimmable(self.model, "LotteryTrimmer", masks_ok=self.method == "mask")
        current = model_tensors(self.model)
        for name, shape in self.plan.current_shapes().items():
            t = current.get(name)
            if t is None:
                raise TrimmerStateError(
                    f"tensor {name!r} of the trimming plan is gone from the model: it was "
                    "changed outside the trimmer"
                )
            if tuple(t.shape) != tuple(shape):
                raise TrimmerStateError(
                    f"tensor {name!r} has shape {tuple(t.shape)} but the trimmer's plan says "
                    f"{tuple(shape)}: the model was changed outside the trimmer"
                )
        params = {id(p) for p in self.model.parameters()}
        for name, t in current.items():
            if id(t) in params and self._ids.get(name) != id(t):
                raise TrimmerStateError(
                    f"parameter {name!r} was replaced outside the trimmer since its last step; "
                    "trim only through the trimmer, or build a new LotteryTrimmer"
                )

    def _scorer(self) -> Criterion:
        sync = self.sync_scores
        if sync is None:
            sync = self.criterion.needs_data and is_distributed()
        return SyncedCriterion(self.criterion) if sync else self.criterion

    @property
    def params(self) -> int:
        """Parameters the model stores now."""
        return _n_params(self.model)

    # ---------------------------------------------------------------- rewind
    def capture_rewind(self) -> RewindPoint:
        """Capture W_k (every parameter and buffer) under the current plan."""
        self._check_model()
        self.rewind_point = RewindPoint.capture(self.model, self.plan, self.rewind_to_disk)
        return self.rewind_point

    def _require_rewind(self) -> RewindPoint:
        if self.rewind_point is None:
            raise TrimmerStateError(
                f"method {self.method!r} rewinds the survivors, but no rewind point was "
                "captured: call trimmer.capture_rewind() early in the first training round"
            )
        return self.rewind_point

    # ---------------------------------------------------------------- stepping
    def step(self, data: Iterable[Any] | None = None) -> StepResult:
        """One lottery level: rank and remove units (or mask weights), then rewind or reinit."""
        if self.method in ("trim", "mask"):
            self._require_rewind()
        self._check_model()
        before = dict(self.model.named_parameters(remove_duplicate=False))
        if self.method == "mask":
            result = self._mask_step()
        else:
            result = self._trim_step(data)
        self.history.append(result)
        self._remember()
        self._hand_over(before)
        return result

    def attach(
        self, optimizer: torch.optim.Optimizer, *schedulers: Any, carry_state: bool | None = None
    ) -> LotteryTrimmer:
        """Rebuild ``optimizer`` in place after every step; ``schedulers`` go on with it.

        The optimizer object stays the same (its groups get the new parameters), so references
        to it and the LR schedulers bound to it stay valid and keep their schedule.
        Per-parameter state is dropped (a rewind starts afresh) unless ``carry_state``; None
        carries it, sliced, for ``"finetune"`` only. Returns the trimmer, for chaining.
        """
        if carry_state is None:
            carry_state = self.method == "finetune"
        self._handover = make_handover(self.model, optimizer, schedulers, carry_state)
        return self

    def _hand_over(self, before: Mapping[str, nn.Parameter]) -> None:
        """Rebuild the attached optimizer; watch the removed parameters for stale optimizers."""
        now = {id(p) for p in self.model.parameters()}
        removed = {n: p for n, p in before.items() if id(p) not in now}
        if self._handover is not None:
            self._handover.after_step(self.model, self.last_step_plan, self._old_names)
        watch_removed(removed, self.level)

    def _trim_step(self, data: Iterable[Any] | None) -> StepResult:
        t0 = time.perf_counter()
        before = {id(p): n for n, p in self.model.named_parameters(remove_duplicate=False)}
        step_plan, res = trim(
            self.model,
            self.example_inputs,
            self._scorer(),
            self.amount,
            scope=self.scope,
            normalize=self.normalize,
            min_units=self.min_units,
            unprunable=self.unprunable,
            data=data,
            on_unsupported=self.on_unsupported,
            graph=self._graph,
            safeguards=self.safeguards,
            prior=self.plan,
        )
        self._graph = None
        self.plan = self.plan.then(step_plan)
        self.last_step_plan = step_plan
        self._old_names = before
        self.level += 1
        if self.method == "trim":
            self._require_rewind().restore(self.model, self.plan)
        elif self.method == "reinit":
            self._reinit()
        return StepResult(
            level=self.level,
            method=self.method,
            params_before=res.params_before,
            params_after=res.params_after,
            requested=self.amount,
            units_before=res.units_before,
            units_after=res.units_after,
            removed_units=res.removed_units,
            protected=res.protected,
            shortfall=res.shortfall,
            rewound=self.method == "trim",
            seconds=time.perf_counter() - t0,
            held=res.held,
        )

    def _reinit(self) -> None:
        """Re-initialise survivors with each layer's own ``reset_parameters()``, seeded."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.level)
            for m in self.model.modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset) and any(True for _ in m.parameters(recurse=False)):
                    reset()

    def _mask_step(self) -> StepResult:
        t0 = time.perf_counter()
        total = _n_params(self.model)
        units = layer_units(self.model)
        before = total - masking.masked_count(self.model)
        masks = masking.global_magnitude_masks(self.model, self.amount)
        masking.apply_masks(self.model, masks)
        self._require_rewind().restore(self.model, self.plan)
        masking.enforce_masks(self.model)
        self.last_step_plan = TrimPlan.identity(self.model)
        self._old_names = {}
        self.level += 1
        after = total - masking.masked_count(self.model)
        target = int(round(self.amount * before))
        short = None
        if before - after < target:
            short = f"masked {before - after} weights instead of {target}: too few maskable left"
        return StepResult(
            level=self.level,
            method="mask",
            params_before=before,
            params_after=after,
            requested=self.amount,
            units_before=units,
            units_after=units,
            shortfall=short,
            rewound=True,
            seconds=time.perf_counter() - t0,
        )

    # ---------------------------------------------------------------- compaction
    def compact(self) -> CompactResult:
        """Physically remove units whose masked fan-in weights are all zero (``mask`` method).

        Masks and the masked weights' stored values are kept for the survivors; the removal is
        verified like any trim and the cumulative plan grows by it.
        """
        if self.method != "mask":
            raise TrimmerStateError("compact() applies to method='mask' only")
        self._check_model()
        t0 = time.perf_counter()
        before = _n_params(self.model)
        origs = {n: t.detach().clone() for n, t in model_tensors(self.model).items()}
        params = dict(self.model.named_parameters(remove_duplicate=False))
        masks = masking.strip_masks(self.model)
        self._graph = None
        skipped: dict[str, str] = {}
        try:
            graph = TrimGraph(
                self.model,
                self.example_inputs,
                unprunable=self.unprunable,
                on_unsupported=self.on_unsupported,
            )
            removal = masking.zero_fan_in_removal(graph, masks, self.min_units)
            step_plan = TrimPlan.identity(self.model)
            while removal:
                step_plan, problem = _apply(graph, removal)
                if problem is None:
                    break
                for gid, why in _breaking_groups(graph, removal, problem).items():
                    skipped[graph.groups[gid].name] = why
                    removal.pop(gid, None)
                step_plan = TrimPlan.identity(self.model)
            removed = {graph.groups[g].name: int(np.asarray(u).size) for g, u in removal.items()}
        except Exception:
            masking.apply_masks(self.model, masks)
            self._write(origs)
            raise
        masking.apply_masks(self.model, step_plan.apply_to_state_dict(masks))
        self._write(step_plan.apply_to_state_dict(origs))
        self.plan = self.plan.then(step_plan)
        self.last_step_plan = step_plan
        self._old_names = {id(p): n for n, p in params.items()}
        self._remember()
        self._hand_over(params)
        return CompactResult(
            params_before=before,
            params_after=_n_params(self.model),
            removed_units=removed,
            skipped=skipped,
            seconds=time.perf_counter() - t0,
        )

    def _write(self, values: Mapping[str, torch.Tensor]) -> None:
        """Copy values into the model's tensors (stored values, under masks where applied)."""
        with torch.no_grad():
            for name, t in model_tensors(self.model).items():
                if name in values:
                    t.copy_(values[name])
        masking.enforce_masks(self.model)

    # ---------------------------------------------------------------- optimizer
    def rebuild_optimizer(
        self, optimizer: torch.optim.Optimizer, carry_state: bool = False
    ) -> torch.optim.Optimizer:
        """:func:`rebuild_optimizer` for the model's last step (knows the replaced parameters)."""
        from .optim import rebuild_optimizer

        return rebuild_optimizer(
            optimizer,
            self.model,
            plan_step=self.last_step_plan,
            carry_state=carry_state,
            old_names=self._old_names,
        )

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: ``{"meta": JSON-able dict, "tensors": {name: tensor}}``."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "method": self.method,
            "criterion": self.criterion.name,
            "amount": self.amount,
            "seed": self.seed,
            "level": self.level,
            "plan": self.plan.to_dict(),
            "history": [asdict(r) for r in self.history],
            "criterion_draws": getattr(self.criterion, "_draws", None),
            "rewind_plan": None,
            "masked": [],
        }
        if self.rewind_point is not None:
            meta["rewind_plan"] = self.rewind_point.plan.to_dict()
            for k, v in self.rewind_point.tensors().items():
                tensors["rewind/" + k] = v.detach().clone()
        if self.method == "mask":
            masks = {
                n: m
                for n, m in masking.current_masks(self.model).items()
                if n in _masked_names(self.model)
            }
            stored = model_tensors(self.model)
            meta["masked"] = sorted(masks)
            for n, m in masks.items():
                tensors["mask/" + n] = m
                tensors["orig/" + n] = stored[n].detach().clone()
        return {"meta": meta, "tensors": tensors}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; resizes a freshly built original model to the plan."""
        try:
            meta, tensors = state["meta"], state["tensors"]
            if meta.get("format") != _STATE_FORMAT:
                raise TrimmerStateError(f"unknown trimmer state format {meta.get('format')!r}")
            if meta["method"] != self.method:
                raise TrimmerStateError(
                    f"state was saved by a trimmer with method {meta['method']!r}, this one uses "
                    f"{self.method!r}"
                )
            plan = TrimPlan.from_dict(meta["plan"])
            rewind_plan = (
                TrimPlan.from_dict(meta["rewind_plan"]) if meta["rewind_plan"] is not None else None
            )
            history = [StepResult(**r) for r in meta["history"]]
            level = int(meta["level"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TrimmerStateError(f"malformed trimmer state: {exc!r}") from exc
        current = {n: tuple(t.shape) for n, t in model_tensors(self.model).items()}
        fits = all(current.get(n) == tuple(s) for n, s in plan.current_shapes().items())
        original = all(current.get(n) == tuple(s) for n, s in plan.shapes.items())
        if not fits and not original:
            bad = next(n for n, s in plan.current_shapes().items() if current.get(n) != tuple(s))
            raise TrimmerStateError(
                f"the model fits neither the saved plan nor its original architecture: tensor "
                f"{bad!r} is {current.get(bad)}, the plan says {plan.current_shape(bad)}"
            )
        if not fits:
            _resize_checked(self.model, plan)
            self._graph = None
        rewind = {k[len("rewind/") :]: v for k, v in tensors.items() if k.startswith("rewind/")}
        self.rewind_point = (
            RewindPoint.restored(rewind_plan, rewind, self.rewind_to_disk)
            if rewind_plan is not None
            else None
        )
        if meta.get("masked"):
            masks = {n: tensors["mask/" + n] for n in meta["masked"]}
            masking.apply_masks(self.model, masks)
            self._write({n: tensors["orig/" + n] for n in meta["masked"]})
        self.plan = plan
        self.level = level
        self.history = history
        if isinstance(self.criterion, Random) and meta.get("criterion_draws") is not None:
            self.criterion._draws = int(meta["criterion_draws"])
        self.last_step_plan = None
        self._old_names = {}
        self._remember()


def _resize_checked(model: nn.Module, plan: TrimPlan) -> None:
    """Resize ``model`` to a plan from saved state, with the checks a file's plan gets."""
    from . import _plancheck

    try:
        _plancheck.check_before(plan, model)
        plan.apply_to_model(model)
        _plancheck.check_after(plan, model)
    except (KeyError, ValueError) as exc:
        raise TrimmerStateError(f"the saved plan does not fit the model: {exc}") from exc


def _masked_names(model: nn.Module) -> set[str]:
    """Names of the weights that carry a mask now."""
    return {n for n, (m, a) in masking.maskable(model).items() if a + "_orig" in m._parameters}

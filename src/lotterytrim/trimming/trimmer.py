"""``LotteryTrimmer``: the lottery driver. Rank, remove, rewind; keep the cumulative plan.

One trimmer drives one model through the levels of a lottery. It checks that nobody changed the
model behind its back, keeps the rewind point W_k, a history of :class:`StepResult` and enough
state (:meth:`LotteryTrimmer.state_dict`) to resume a run exactly where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lotterytrim.criteria import Criterion, get_criterion
from lotterytrim.criteria.batches import model_device, to_device
from lotterytrim.criteria.distributed import SyncedCriterion, is_distributed
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.guards import check_trimmable
from lotterytrim.engine.masknames import model_tensors
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.engine.plancheck import apply_checked
from lotterytrim.errors import TrimmerStateError
from lotterytrim.options import OptionKeywords, TrimOptions, Unpack, check_amount, expose_options
from lotterytrim.trimming import masking
from lotterytrim.trimming.compaction import compact_masks
from lotterytrim.trimming.handover import Handover, make_handover, watch_removed
from lotterytrim.trimming.methods import Method, get_method
from lotterytrim.trimming.optimizer import OptimizerT, rebuild_optimizer
from lotterytrim.trimming.removal import stored_params
from lotterytrim.trimming.rewind import RewindPoint
from lotterytrim.trimming.state import REWIND_PREFIX, parse_state
from lotterytrim.trimming.step import CompactResult, StepResult
from lotterytrim.trimming.target import TargetResult, keeping_values, trim_to
from lotterytrim.trimming.undo import UndoPoint

__all__ = ["LotteryTrimmer", "STATE_FORMAT"]

STATE_FORMAT = 1


@expose_options
class LotteryTrimmer:
    """Drive a model through a structured lottery: rank, remove, rewind, retrain, repeat."""

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        criterion: str | Criterion = "magnitude",
        amount: float = 0.3,
        *,
        options: TrimOptions | None = None,
        method: str | Method = "trim",
        unprunable: Iterable[nn.Module] | None = None,
        seed: int = 0,
        rewind_to_disk: str | Path | None = None,
        criterion_options: Mapping[str, Any] | None = None,
        sync_scores: bool | None = None,
        **shorthand: Unpack[OptionKeywords],
    ) -> None:
        """``options`` (a :class:`TrimOptions`, or its fields as keywords) choose scope,
        normalisation, min_units, safeguards and what to do with unsupported layers."""
        self._method = get_method(method)
        self.method = self._method.name
        self.amount = check_amount(amount)
        self.options = TrimOptions.resolve(options, **shorthand)
        self.criterion = get_criterion(criterion, seed=seed, **dict(criterion_options or {}))
        self.model = model
        self.example_inputs = example_inputs
        self.unprunable = list(unprunable or [])
        self.seed = seed
        self.sync_scores = sync_scores
        self.rewind_to_disk = Path(rewind_to_disk) if rewind_to_disk is not None else None
        self._handover: Handover | None = None
        check_trimmable(model, "LotteryTrimmer", masks_ok=self._method.keeps_masks)
        # trace once now so that bad inputs or unsupported layers fail here, not at step 1;
        # the trace serves the first step too (training changes values, not structure)
        self._graph: TrimGraph | None = self._trace()
        self.plan = TrimPlan.identity(model)
        self.level = 0
        self.history: list[StepResult] = []
        self.rewind_point: RewindPoint | None = None
        self.last_step_plan: TrimPlan | None = None
        self._old_names: dict[int, str] = {}
        self._remember()

    def _trace(self) -> TrimGraph:
        # the inputs follow the model: built on the CPU, a model may train and step on a GPU
        return TrimGraph(
            self.model,
            to_device(self.example_inputs, model_device(self.model)),
            unprunable=self.unprunable,
            on_unsupported=self.options.on_unsupported,
        )

    # ---------------------------------------------------------------- bookkeeping
    def _remember(self) -> None:
        """Record the identity of every parameter, to notice replacements outside the trimmer."""
        self._ids = {n: id(t) for n, t in model_tensors(self.model).items()}

    def check_model(self) -> None:
        """Raise ``TrimmerStateError`` when the model's tensors no longer match the plan or were
        replaced outside the trimmer (and ``ModelStateError`` for models it cannot trim)."""
        check_trimmable(self.model, "LotteryTrimmer", masks_ok=self._method.keeps_masks)
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

    def scorer(self) -> Criterion:
        """The criterion a step ranks by: summed over ranks when scores are synced."""
        sync = self.sync_scores
        if sync is None:
            sync = self.criterion.needs_data and is_distributed()
        return SyncedCriterion(self.criterion) if sync else self.criterion

    def take_graph(self) -> TrimGraph | None:
        """The trace kept for the next step (from construction), handed over once."""
        graph, self._graph = self._graph, None
        return graph

    @property
    def params(self) -> int:
        """Parameters the model stores now."""
        return stored_params(self.model)

    @property
    def live_params(self) -> int:
        """Parameters the model holds as its method counts them: stored ones, less the weights
        masks hold at zero for a masking method."""
        return self._method.live_params(self.model)

    # ---------------------------------------------------------------- rewind
    def capture_rewind(self) -> RewindPoint:
        """Capture W_k (every parameter and buffer) under the current plan."""
        self.check_model()
        self.rewind_point = RewindPoint.capture(self.model, self.plan, self.rewind_to_disk)
        if self._handover is not None:
            self._handover.capture_schedule()
        return self.rewind_point

    def _require_rewind(self) -> RewindPoint:
        if self.rewind_point is None:
            raise TrimmerStateError(
                f"method {self.method!r} rewinds the survivors, but no rewind point was "
                "captured: call trimmer.capture_rewind() early in the first training round"
            )
        return self.rewind_point

    def rewind(self) -> None:
        """Write W_k, sliced by the current plan, into the surviving tensors, bit for bit
        (masked entries of masked weights stay zero)."""
        self._require_rewind().restore(self.model, self.plan)
        masking.enforce_masks(self.model)

    # ---------------------------------------------------------------- stepping
    def step(self, data: Iterable[Any] | None = None) -> StepResult:
        """One lottery level: the method's removal (units, or weights under masks), the level
        counted, then the method's turn (rewind, keep, re-initialise). Atomic: a failure leaves
        model, trimmer and optimizer as they were."""
        method = self._method
        if method.rewinds:
            self._require_rewind()
        self.check_model()
        optimizer = self._handover.optimizer if self._handover is not None else None
        undo = UndoPoint(self.model, self, optimizer)
        try:
            t0 = time.perf_counter()
            before = dict(self.model.named_parameters(remove_duplicate=False))
            removal = method.remove(self, data)
            self.plan = self.plan.then(removal.plan)
            self.last_step_plan = removal.plan
            self._old_names = removal.old_names
            self.level += 1
            method.after_removal(self)
            result = StepResult.of(
                removal.result,
                level=self.level,
                method=self.method,
                requested=self.amount,
                rewound=method.rewinds,
                seconds=time.perf_counter() - t0,
            )
            self.history.append(result)
            self._remember()
            self._hand_over(before)
        except BaseException:
            undo.restore()  # a failed step changes nothing: model, trimmer and optimizer
            self._graph = None  # the traced graph may have seen the half-done step: retrace
            raise
        return result

    def trim_to(self, keep: float, data: Iterable[Any] | None = None) -> TargetResult:
        """Trim to ``keep`` of the original model's parameters in one call: sub-steps ranked on
        the trained values, then the method's turn once (see ``trimming/target.py``)."""
        method, self._method = self._method, keeping_values(self._method)
        try:
            return trim_to(self, method, keep, data)
        finally:
            self._method = method

    def attach(
        self, optimizer: torch.optim.Optimizer, *schedulers: Any, carry_state: bool | None = None
    ) -> LotteryTrimmer:
        """Rebuild ``optimizer`` in place after every step; ``schedulers`` follow the weights.

        The optimizer object stays the same (its groups get the new parameters), so references
        to it and the LR schedulers bound to it stay valid. After each step the schedule goes
        where the method says: ``trim`` and ``mask`` put it back where it was at
        :meth:`capture_rewind` (or here, if later), ``lrr`` and ``reinit`` where it was here,
        and ``finetune`` carries it on. Per-parameter state is dropped unless ``carry_state``;
        None carries it, sliced, for ``"finetune"``. Returns self.
        """
        if carry_state is None:
            carry_state = self._method.carries_optimizer_state
        self._handover = make_handover(self.model, optimizer, schedulers, carry_state)
        return self

    def _hand_over(self, before: Mapping[str, nn.Parameter]) -> None:
        """Rebuild the attached optimizer; watch the removed parameters for stale optimizers."""
        now = {id(p) for p in self.model.parameters()}
        removed = {n: p for n, p in before.items() if id(p) not in now}
        if self._handover is not None:
            schedule = self._method.schedule
            self._handover.after_step(self.model, self.last_step_plan, self._old_names, schedule)
        watch_removed(removed, self.level)

    # ---------------------------------------------------------------- compaction
    def compact(self) -> CompactResult:
        """Physically remove units whose masked fan-in weights are all zero (``mask`` method).

        Masks and the masked weights' stored values are kept for the survivors; the removal is
        verified like any trim and the cumulative plan grows by it.
        """
        if not self._method.keeps_masks:
            raise TrimmerStateError(
                f"compact() applies to methods that keep masks (method='mask'), not {self.method!r}"
            )
        self.check_model()
        t0 = time.perf_counter()
        before = stored_params(self.model)
        params = dict(self.model.named_parameters(remove_duplicate=False))
        self._graph = None
        step_plan, removed, skipped = compact_masks(
            self.model, self.example_inputs, self.unprunable, self.options
        )
        self.plan = self.plan.then(step_plan)
        self.last_step_plan = step_plan
        self._old_names = {id(p): n for n, p in params.items()}
        self._remember()
        self._hand_over(params)
        return CompactResult(
            params_before=before,
            params_after=stored_params(self.model),
            removed_units=removed,
            skipped=skipped,
            seconds=time.perf_counter() - t0,
        )

    # ---------------------------------------------------------------- optimizer
    def rebuild_optimizer(self, optimizer: OptimizerT, carry_state: bool = False) -> OptimizerT:
        """A new optimizer over the model's parameters after the last step (it knows which
        parameters replaced which); prefer :meth:`attach`, which keeps the same object."""
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
            "format": STATE_FORMAT,
            "method": self.method,
            "criterion": self.criterion.name,
            "amount": self.amount,
            "seed": self.seed,
            "level": self.level,
            "plan": self.plan.to_dict(),
            "history": [asdict(r) for r in self.history],
            "criterion_draws": getattr(self.criterion, "draws", None),
            "rewind_plan": None,
            "masked": [],
        }
        if self.rewind_point is not None:
            meta["rewind_plan"] = self.rewind_point.plan.to_dict()
            for k, v in self.rewind_point.tensors().items():
                tensors[REWIND_PREFIX + k] = v.detach().clone()
        masked = masking.masked_names(self.model)  # none unless the method keeps masks
        if masked:
            masks = {n: m for n, m in masking.current_masks(self.model).items() if n in masked}
            stored = model_tensors(self.model)
            meta["masked"] = sorted(masks)
            for n, m in masks.items():
                tensors["mask/" + n] = m
                tensors["orig/" + n] = stored[n].detach().clone()
        return {"meta": meta, "tensors": tensors}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict`; resizes a freshly built original model to the plan."""
        meta, tensors, plan, rewind_plan, history, level, masked = parse_state(
            state, self.method, STATE_FORMAT
        )
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
            try:
                apply_checked(plan, self.model)
            except (KeyError, ValueError) as exc:
                raise TrimmerStateError(f"the saved plan does not fit the model: {exc}") from exc
            self._graph = None
        n = len(REWIND_PREFIX)
        rewind = {k[n:]: v for k, v in tensors.items() if k.startswith(REWIND_PREFIX)}
        self.rewind_point = (
            RewindPoint.restored(rewind_plan, rewind, self.rewind_to_disk)
            if rewind_plan is not None
            else None
        )
        if masked:
            masking.apply_masks(self.model, {n: tensors["mask/" + n] for n in masked})
            masking.write_stored(self.model, {n: tensors["orig/" + n] for n in masked})
        self.plan = plan
        self.level = level
        self.history = history
        if meta.get("criterion_draws") is not None and hasattr(self.criterion, "draws"):
            self.criterion.draws = int(meta["criterion_draws"])
        self.last_step_plan = None
        self._old_names = {}
        self._remember()

    def saved_state(self, model: nn.Module) -> tuple[TrimPlan, dict[str, Any]]:
        """The plan and :meth:`state_dict` to store with ``model`` (``lt.save`` asks for them)."""
        if model is not self.model:
            raise ValueError("trimmer drives a different model than the one being saved")
        self.check_model()  # the plan written must describe the tensors written
        return self.plan, self.state_dict()

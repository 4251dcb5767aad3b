"""The optimizer and LR schedulers across a trimming step, and a warning for stale optimizers.

A step replaces every resized parameter, so an optimizer built before it updates tensors the
model no longer uses: training then changes nothing, silently. An optimizer handed to
``trimmer.attach`` is rebuilt in place after each step (same object, so the schedulers bound to
it stay valid). After a step the schedule goes where the method says (``Method.schedule``):
back to the rewind point (weight rewinding retrains each round on the first round's schedule
from W_k), back to where it was at ``attach`` (learning-rate rewinding), or on. Any
other optimizer that still steps removed parameters triggers a :class:`StaleOptimizerWarning`
naming it, at its first ``step()`` after the trim.
"""

from __future__ import annotations

import copy
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lotterytrim.errors import StaleOptimizerWarning
from lotterytrim.trimming.optimizer import rebuild_in_place

__all__ = ["Handover", "make_handover", "watch_removed"]

_Position = tuple[list[Any], list[dict[str, Any]]]


@dataclass
class Handover:
    """The optimizer and schedulers a trimmer rebuilds after each step."""

    optimizer: torch.optim.Optimizer
    schedulers: Sequence[Any] = field(default_factory=tuple)
    carry_state: bool = False
    schedule: _Position | None = None
    start: _Position | None = None

    def capture_schedule(self) -> None:
        """Remember where the schedule is (each scheduler's state, each group's learning
        rates): a step that rewinds the weights to here rewinds the schedule to here too."""
        self.schedule = self._position()

    def _position(self) -> _Position:
        states = [copy.deepcopy(s.state_dict()) for s in self.schedulers]
        rates: list[dict[str, Any]] = [
            {k: g[k] for k in ("lr", "initial_lr") if k in g} for g in self.optimizer.param_groups
        ]
        return states, rates

    def after_step(
        self,
        model: nn.Module,
        plan_step: Any,
        old_names: Mapping[int, str] | None,
        schedule: str = "continue",
    ) -> None:
        """Point the optimizer at the model's new parameters, then move the schedule:
        ``"rewind"`` to the rewind point's position, ``"start"`` to ``attach``'s, or on."""
        rebuild_in_place(self.optimizer, model, plan_step, self.carry_state, old_names)
        position = {"rewind": self.schedule, "start": self.start}.get(schedule)
        if position is not None:
            states, rates = position
            for sched, state in zip(self.schedulers, states, strict=True):
                sched.load_state_dict(copy.deepcopy(state))
            for group, saved in zip(self.optimizer.param_groups, rates, strict=True):
                group.update(saved)


def make_handover(
    model: nn.Module,
    optimizer: Any,
    schedulers: Sequence[Any],
    carry_state: bool,
) -> Handover:
    """Check that ``optimizer`` trains ``model`` and each scheduler drives ``optimizer``."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    ours = {id(p) for p in model.parameters()}
    foreign = [
        i for i, g in enumerate(optimizer.param_groups) for p in g["params"] if id(p) not in ours
    ]
    if foreign:
        raise ValueError(
            f"optimizer {type(optimizer).__name__} holds parameters (group {foreign[0]}) that "
            "are not the trimmer's model's: attach the optimizer built over model.parameters()"
        )
    for i, sched in enumerate(schedulers):
        if getattr(sched, "optimizer", None) is not optimizer:
            raise ValueError(
                f"scheduler {i} ({type(sched).__name__}) does not drive the attached optimizer"
            )
    handover = Handover(optimizer, tuple(schedulers), carry_state)
    handover.capture_schedule()
    handover.start = handover.schedule
    return handover


# ---------------------------------------------------------------- stale optimizer watch
_LOCK = threading.Lock()
_REMOVED: dict[int, tuple[weakref.ref[torch.Tensor], str, int]] = {}
_WARNED: weakref.WeakKeyDictionary[torch.optim.Optimizer, set[int]] = weakref.WeakKeyDictionary()
_HOOK: list[Any] = []


def _forget(key: int) -> Callable[[weakref.ref[torch.Tensor]], None]:
    """The callback of a watched parameter's weak reference: drop ``key`` once it is gone."""

    def forget(_ref: weakref.ref[torch.Tensor]) -> None:
        _REMOVED.pop(key, None)

    return forget


def watch_removed(removed: Mapping[str, torch.Tensor], level: int) -> None:
    """Remember parameters a step removed (weakly), to warn about optimizers that step them."""
    with _LOCK:
        for name, p in removed.items():
            key = id(p)
            ref = weakref.ref(p, _forget(key))
            _REMOVED[key] = (ref, name, level)
        if removed and not _HOOK:
            _HOOK.append(register_optimizer_step_pre_hook(_check))


def _check(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Global pre-step hook: warn once per optimizer and level when it steps removed tensors."""
    if not _REMOVED:
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            entry = _REMOVED.get(id(p))
            if entry is None or entry[0]() is not p:
                continue
            _, name, level = entry
            seen = _WARNED.setdefault(optimizer, set())
            if level in seen:
                return
            seen.add(level)
            warnings.warn(
                f"{type(optimizer).__name__} optimizer steps parameter {name!r} that trimming "
                f"level {level} removed from the model: it no longer trains the model. Call "
                "trimmer.attach(optimizer, *schedulers) once so that every step() rebuilds it, "
                "or replace it with trimmer.rebuild_optimizer(optimizer) after each step",
                StaleOptimizerWarning,
                stacklevel=3,
            )
            return

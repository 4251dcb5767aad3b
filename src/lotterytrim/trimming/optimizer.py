"""Rebuild an optimizer after a trimming step replaced the model's parameters.

Trimming swaps every resized parameter for a new, smaller tensor, so an optimizer built before
the step points at tensors the model no longer uses. :func:`rebuild_optimizer` makes a new
optimizer of the same class, with the same hyperparameters per parameter group, over the new
parameters; on request it carries per-parameter state (momentum, Adam moments) over, sliced by
the step's plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from lotterytrim.engine.masknames import base_name
from lotterytrim.engine.plan import TrimPlan

__all__ = ["rebuild_optimizer", "rebuild_in_place", "OptimizerT"]

OptimizerT = TypeVar("OptimizerT", bound=torch.optim.Optimizer)
"""An optimizer class: a rebuilt optimizer is of the class of the one it replaces."""


def _names_of(
    optimizer: torch.optim.Optimizer, model: nn.Module, old_names: Mapping[int, str] | None
) -> list[list[str | None]]:
    """The model name of every parameter of every group (None when it cannot be named)."""
    now = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    known = dict(old_names or {})
    return [
        [known.get(id(p)) or now.get(id(p)) for p in g["params"]] for g in optimizer.param_groups
    ]


def rebuild_optimizer(
    optimizer: OptimizerT,
    model: nn.Module,
    plan_step: TrimPlan | None = None,
    carry_state: bool = False,
    old_names: Mapping[int, str] | None = None,
) -> OptimizerT:
    """A new optimizer of the same class and group options over ``model``'s current parameters.

    Parameters are matched to groups by name; ``old_names`` maps ``id(old parameter)`` to its
    name (``trimmer.rebuild_optimizer`` passes it). With one group and unnamed parameters, every
    trainable parameter of the model joins that group. ``carry_state=True`` copies per-parameter
    state, slicing tensors shaped like the parameter by ``plan_step`` (the step's plan).
    """
    names, groups = _regroup(optimizer, model, old_names)
    cls: Callable[..., OptimizerT] = type(optimizer)  # a subclass's own signature
    try:
        new = cls(groups, **optimizer.defaults)
    except TypeError:
        new = cls(groups)
    if carry_state:
        current = dict(model.named_parameters())
        new.state.update(_carried(optimizer, names, current, plan_step))
    return new


def rebuild_in_place(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    plan_step: TrimPlan | None = None,
    carry_state: bool = False,
    old_names: Mapping[int, str] | None = None,
) -> None:
    """Point ``optimizer`` at ``model``'s current parameters without replacing the object.

    Groups keep their options (so an LR scheduler bound to ``optimizer`` goes on with its
    schedule); each group's ``params`` is replaced, and per-parameter state is dropped, or with
    ``carry_state=True`` sliced by ``plan_step``. References the user holds stay valid.
    """
    names, groups = _regroup(optimizer, model, old_names)
    state: dict[Any, Any] = {}
    if carry_state:
        state = _carried(optimizer, names, dict(model.named_parameters()), plan_step)
    for group, new in zip(optimizer.param_groups, groups, strict=True):
        group["params"] = new["params"]
    optimizer.state.clear()
    optimizer.state.update(state)
    if hasattr(optimizer, "_params"):  # LBFGS caches its single group's parameter list
        optimizer._params = optimizer.param_groups[0]["params"]


def _regroup(
    optimizer: torch.optim.Optimizer, model: nn.Module, old_names: Mapping[int, str] | None
) -> tuple[list[list[str | None]], list[dict[str, Any]]]:
    """The names of the optimizer's parameters and its groups over the model's current ones."""
    names = _names_of(optimizer, model, old_names)
    current = dict(model.named_parameters())
    groups: list[dict[str, Any]] = []
    for group, group_names in zip(optimizer.param_groups, names, strict=True):
        opts = {k: v for k, v in group.items() if k != "params"}
        if any(n is None for n in group_names):
            if len(optimizer.param_groups) != 1:
                raise ValueError(
                    "cannot tell which group the model's new parameters belong to: use "
                    "trimmer.rebuild_optimizer(optimizer) or pass old_names"
                )
            params = [p for p in current.values() if p.requires_grad]
        else:
            params = [current[n] for n in group_names if n in current]
        groups.append({"params": params, **opts})
    return names, groups


def _carried(
    old: torch.optim.Optimizer,
    names: list[list[str | None]],
    current: Mapping[str, nn.Parameter],
    plan_step: TrimPlan | None,
) -> dict[torch.Tensor, dict[str, Any]]:
    """Per-parameter state of ``old`` for the current parameters, sliced by the step plan."""
    out: dict[torch.Tensor, dict[str, Any]] = {}
    for group, group_names in zip(old.param_groups, names, strict=True):
        for p, name in zip(group["params"], group_names, strict=True):
            if name is None or name not in current or p not in old.state:
                continue
            target = current[name]
            base = base_name(name)
            state: dict[str, Any] = {}
            for key, value in old.state[p].items():
                if isinstance(value, torch.Tensor) and tuple(value.shape) == tuple(p.shape):
                    if plan_step is not None and base in plan_step.shapes:
                        value = plan_step.apply_to_state_dict({base: value})[base]
                    if tuple(value.shape) != tuple(target.shape):
                        raise ValueError(
                            f"optimizer state {key!r} of {name!r} is {tuple(value.shape)}, the "
                            f"parameter is {tuple(target.shape)}: pass the step's plan_step"
                        )
                    state[key] = value.clone()
                elif isinstance(value, torch.Tensor):
                    state[key] = value.clone()
                else:
                    state[key] = value
            out[target] = state
    return out

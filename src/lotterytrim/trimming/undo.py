"""Undo points: what a failed ``step()`` must put back so that it changed nothing.

A step replaces tensors, writes rewound values into tensors in place, appends masks and hooks,
advances the trimmer's level and plan, and rebuilds the attached optimizer. An
:class:`UndoPoint` taken before all that restores every one of them, values included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ModuleSnapshot", "UndoPoint"]


class ModuleSnapshot:
    """Every module's tensor objects, buffer persistence, pre-forward hooks (masks) and plain
    attributes, to undo a removal exactly; values are not copied."""

    def __init__(self, model: nn.Module) -> None:
        self.saved = [
            (
                m,
                dict(m._parameters),
                dict(m._buffers),
                set(m._non_persistent_buffers_set),
                dict(m._forward_pre_hooks),
                {k: v for k, v in m.__dict__.items() if not k.startswith("_")},
            )
            for m in model.modules()
        ]

    def restore(self) -> None:
        """Put every module's tensors, hooks and attributes back."""
        for m, params, bufs, non_persistent, hooks, attrs in self.saved:
            m._parameters.clear()
            m._parameters.update(params)
            m._buffers.clear()
            m._buffers.update(bufs)
            m._non_persistent_buffers_set.clear()
            m._non_persistent_buffers_set.update(non_persistent)
            m._forward_pre_hooks.clear()
            m._forward_pre_hooks.update(hooks)
            for k in [k for k in m.__dict__ if not k.startswith("_") and k not in attrs]:
                del m.__dict__[k]
            m.__dict__.update(attrs)
            if isinstance(m, nn.RNNBase):
                m._init_flat_weights()


class UndoPoint:
    """The model (a :class:`ModuleSnapshot` plus its tensors' values), an owner's fields and an
    optimizer's groups and state, as they are now."""

    def __init__(self, model: nn.Module, owner: Any, optimizer: torch.optim.Optimizer | None):
        self._modules = ModuleSnapshot(model)
        tensors = {id(t): t for m in self._modules.saved for d in (m[1], m[2]) for t in d.values()}
        with torch.no_grad():
            self._values = [(t, t.detach().clone()) for t in tensors.values() if t is not None]
        self._owner = owner
        self._fields = dict(owner.__dict__)
        self._history = list(getattr(owner, "history", []))
        self._optimizer = optimizer
        if optimizer is not None:
            self._groups = [list(g["params"]) for g in optimizer.param_groups]
            self._state = dict(optimizer.state)
            self._cached = getattr(optimizer, "_params", None)

    def restore(self) -> None:
        """Put everything back as it was when the point was taken."""
        self._modules.restore()
        with torch.no_grad():
            for tensor, value in self._values:
                tensor.copy_(value)
        self._owner.__dict__.clear()
        self._owner.__dict__.update(self._fields)
        if hasattr(self._owner, "history"):
            self._owner.history[:] = self._history
        if self._optimizer is not None:
            for group, params in zip(self._optimizer.param_groups, self._groups, strict=True):
                group["params"] = params
            self._optimizer.state.clear()
            self._optimizer.state.update(self._state)
            if self._cached is not None:
                self._optimizer._params = self._cached  # type: ignore[attr-defined]

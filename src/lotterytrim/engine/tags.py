"""The ``unprunable`` tag: modules (or module classes) that keep all their output units."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["unprunable", "is_unprunable"]

_UNPRUNABLE_ATTR = "_lotterytrim_unprunable"


def unprunable(target: Any) -> Any:
    """Mark a module (or every instance of a module class) so it keeps all its output units.

    Usable as a call (``lt.unprunable(model.head)``) or as a class decorator. Its inputs may
    still shrink when the layer feeding it loses units.
    """
    if isinstance(target, nn.Module) or (
        isinstance(target, type) and issubclass(target, nn.Module)
    ):
        setattr(target, _UNPRUNABLE_ATTR, True)
        return target
    raise TypeError(f"unprunable() takes an nn.Module or an nn.Module class, got {target!r}")


def is_unprunable(module: nn.Module) -> bool:
    """Whether ``module`` (or its class) carries the ``unprunable`` tag."""
    return bool(getattr(module, _UNPRUNABLE_ATTR, False))

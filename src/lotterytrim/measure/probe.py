"""The one example every measurement runs: inputs cut to batch 1, checked, and MACs counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from lotterytrim.calls import split_inputs
from lotterytrim.measure.flops import MacCount, count_macs

__all__ = [
    "check_module",
    "check_positive",
    "one_example",
    "cut_dim",
    "check_runs",
    "count_macs_of",
]


def check_module(model: Any) -> None:
    """Reject anything that is not an nn.Module with a TypeError naming its type."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Module, got {type(model).__module__}.{type(model).__qualname__}"
        )


def check_positive(**values: int) -> None:
    """Raise ValueError for any count below one."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def one_example(
    example_inputs: Any, batch_dim: int | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Split example inputs into (args, kwargs), cut to one example along ``batch_dim``."""
    if not isinstance(example_inputs, (torch.Tensor, tuple, list, Mapping)):
        raise TypeError(
            "example_inputs must be a tensor, a tuple of inputs or a dict of keyword inputs, "
            f"got {type(example_inputs).__name__}"
        )
    args, kwargs = split_inputs(example_inputs)
    if batch_dim is None:
        return args, kwargs
    if not isinstance(batch_dim, int) or batch_dim < 0:
        raise ValueError(f"batch_dim must be None or a non-negative int, got {batch_dim!r}")
    return tree_map(lambda x: _first_example(x, batch_dim), (args, kwargs))


def _first_example(value: Any, batch_dim: int) -> Any:
    """Cut a tensor to its first element along ``batch_dim`` when that size exceeds one."""
    if not isinstance(value, torch.Tensor) or value.dim() <= batch_dim:
        return value
    if value.shape[batch_dim] <= 1:
        return value
    return value.narrow(batch_dim, 0, 1).clone()


def _call(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Run the model once."""
    return model(*args, **kwargs)


def cut_dim(
    original: Any, args: Sequence[Any], kwargs: Mapping[str, Any], batch_dim: int | None
) -> int | None:
    """``batch_dim`` when cutting to one example changed some input's shape, else None."""
    before = [t.shape for t in tree_leaves(original) if isinstance(t, torch.Tensor)]
    after = [t.shape for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    return None if before == after else batch_dim


def check_runs(
    model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any], cut_dim: int | None
) -> None:
    """Run one forward pass; turn any failure into a ValueError naming the model class."""
    try:
        with torch.inference_mode():
            model(*args, **kwargs)
    except Exception as err:
        hint = ""
        if cut_dim is not None:
            hint = (
                f" (inputs were cut to one example along dim {cut_dim}; "
                "pass batch_dim=None if they hold a single unbatched example)"
            )
        raise ValueError(
            f"{type(model).__name__} failed on the example inputs{hint}: "
            f"{type(err).__name__}: {err}"
        ) from err


def count_macs_of(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> MacCount:
    """MAC count of one forward pass (see ``lotterytrim._flops``)."""
    try:
        return count_macs(model, args, kwargs)
    except Exception as err:
        raise ValueError(
            f"could not trace {type(model).__name__} to count MACs: {type(err).__name__}: {err}"
        ) from err

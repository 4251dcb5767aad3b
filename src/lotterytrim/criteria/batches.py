"""Validation batches for data-driven criteria: on the model's device, and named when they fail.

Criteria stream the user's batches through the model. Each batch (tensors inside tuples, lists
and dicts) is moved to the device of the model's first parameter; a batch the model cannot run
becomes a ``CriterionError`` naming its index and shapes next to the example inputs', and empty
data is refused instead of leaving every layer unscored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from lotterytrim.errors import CriterionError, LotteryTrimError

__all__ = ["model_device", "to_device", "describe", "batch_errors", "no_batches"]


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (or buffer); None for a model without any."""
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return None


def to_device(value: Any, device: torch.device | None) -> Any:
    """``value`` with every tensor inside moved to ``device`` (dtypes are left alone)."""
    if device is None:
        return value
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device)
    if isinstance(value, Mapping):
        return type(value)({k: to_device(v, device) for k, v in value.items()})  # type: ignore[call-arg]
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(to_device(v, device) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    return value


def describe(value: Any) -> str:
    """Shapes and dtypes of the tensors in ``value``, for error messages."""
    if isinstance(value, torch.Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe(v) for v in value) + ")"
    return type(value).__name__


@contextmanager
def batch_errors(criterion: str, index: int, inputs: Any, example: Any) -> Iterator[None]:
    """Turn a failure of the model on batch ``index`` into a ``CriterionError`` naming it."""
    try:
        yield
    except LotteryTrimError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CriterionError(
            f"criterion '{criterion}': batch {index} does not fit the model: its inputs are "
            f"{describe(inputs)}, the example inputs were {describe(example)} ({first})"
        ) from exc


def no_batches(criterion: str) -> CriterionError:
    """The error for data that yielded no batch at all."""
    return CriterionError(
        f"criterion '{criterion}' got no batches: the data is empty (pass validation batches, "
        "e.g. trimmer.step(data=val_loader))"
    )

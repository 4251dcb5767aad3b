"""Calling a model on example inputs: the one place that splits inputs, runs and flattens.

Example inputs are a tensor, a tuple/list of positional inputs or a mapping of keyword inputs.
Every part of lotterytrim that runs a model (tracing, scoring, verifying, measuring, exporting)
goes through these helpers, so they all agree on what the inputs and outputs are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

__all__ = [
    "tensor_at",
    "split_inputs",
    "run_model",
    "tensor_leaves",
    "output_signature",
    "kept_modes",
    "eval_mode",
    "TensorCall",
]


def split_inputs(inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments of example inputs (anything else is one argument)."""
    if isinstance(inputs, Mapping):
        return (), {str(k): v for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    return (inputs,), {}


def run_model(model: nn.Module, inputs: Any) -> Any:
    """Call ``model`` on example inputs: a tensor, a tuple/list of positional args, or a dict."""
    args, kwargs = split_inputs(inputs)
    return model(*args, **kwargs)


def tensor_leaves(value: Any) -> list[torch.Tensor]:
    """Every tensor in inputs or outputs: tensors, sequences, mappings, dataclasses, namedtuples."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in tensor_leaves(v)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in tensor_leaves(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensor_leaves(v)]
    return []


def output_signature(out: Any) -> Any:
    """The structure and shapes of a model output, for checking a trim kept them."""
    if isinstance(out, torch.Tensor):
        return ("tensor", tuple(out.shape))
    if isinstance(out, Mapping):
        return (type(out).__name__, tuple((k, output_signature(v)) for k, v in out.items()))
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return (
            type(out).__name__,
            tuple(
                (f.name, output_signature(getattr(out, f.name))) for f in dataclasses.fields(out)
            ),
        )
    if isinstance(out, (tuple, list)):
        return (type(out).__name__, tuple(output_signature(v) for v in out))
    return (type(out).__name__,)


@contextmanager
def kept_modes(model: nn.Module) -> Iterator[None]:
    """Put every module's train/eval flag back as it was when the block ends."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run the block with the model in eval mode; every module's own flag is restored after."""
    with kept_modes(model):
        model.eval()
        yield


class TensorCall(nn.Module):
    """Call a model with tensors only: non-tensor inputs are bound, tensor outputs flattened.

    Tracers (fvcore, the ONNX exporter) take a tuple of tensors and want tensors back. The
    wrapper shares the model's submodules, parameters and buffers (not as a child), so traced
    names are the model's own state_dict and module names. :attr:`tensors` are the inputs to
    pass, in order.
    """

    _call: Callable[..., Any]  # the model, kept off the module tree

    def __init__(self, model: nn.Module, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self._modules = model._modules
        self._parameters = model._parameters
        self._buffers = model._buffers
        self.training = model.training
        leaves, self._spec = tree_flatten((tuple(args), dict(kwargs)))
        self._leaves = leaves
        self._slots = [i for i, v in enumerate(leaves) if isinstance(v, torch.Tensor)]
        object.__setattr__(self, "_call", model)  # not registered: no name prefix

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensor inputs, in the order :meth:`forward` takes them."""
        return tuple(self._leaves[i] for i in self._slots)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Rebuild the original call, run the model and return its tensor outputs."""
        leaves = list(self._leaves)
        for slot, t in zip(self._slots, tensors, strict=True):
            leaves[slot] = t
        args, kwargs = tree_unflatten(leaves, self._spec)
        return tuple(tensor_leaves(self._call(*args, **kwargs)))


def tensor_at(module: nn.Module, dotted: str) -> torch.Tensor | None:
    """The tensor at a dotted attribute path below ``module`` (``"0.weight"``), or None."""
    obj: Any = module
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, torch.Tensor) else None

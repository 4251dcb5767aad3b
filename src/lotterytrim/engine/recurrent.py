"""Recurrent layers for the dependency graph: tracing stand-ins and a torch-pruning pruner.

Autograd records RNN, GRU and LSTM layers as a tangle of internal ops, so the graph engine
cannot see them as one layer. While tracing, each recurrent layer runs for real and its output
is re-attached to its input by a single op, which the engine then records as the layer's node.
The hidden state it returns is attached to that output, so a model reading ``h_n`` stays traced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch.autograd.graph import Node
from torch.overrides import TorchFunctionMode

from lotterytrim.engine.indexmap import ExpandHidden, ModHidden
from lotterytrim.engine.layers import RecurrentAdapter
from lotterytrim.engine.plan import TrimPlan

__all__ = [
    "STATE_NODE_NAME",
    "RecurrentPruner",
    "recurrent_pruners",
    "dead_ends",
    "recording",
    "traceable",
    "fix_recurrent_states",
]


class _RecurrentOutput(torch.autograd.Function):
    """Identity on the real output whose graph node hangs on the layer's input and weights."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, source: torch.Tensor, *params: torch.Tensor) -> Any:
        ctx.n = 1 + len(params)
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return (grad,) + (None,) * ctx.n


class _RecurrentState(torch.autograd.Function):
    """Identity on a returned hidden state, attached to the layer's output sequence."""

    @staticmethod
    def forward(ctx: Any, value: torch.Tensor, source: torch.Tensor) -> Any:
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        return grad, None


STATE_NODE_NAME = "_RecurrentStateBackward"


def _traced_forward(module: nn.RNNBase) -> Any:
    original = module.forward

    def forward(input: Any, hx: Any = None) -> Any:
        if isinstance(input, nn.utils.rnn.PackedSequence):
            return original(input, hx)
        with torch.no_grad():
            out, hidden = original(input, hx)
        params = [p for p in module.parameters() if p.requires_grad]
        src = input if input.is_floating_point() else input.float()
        y = _RecurrentOutput.apply(out, src, *params)
        if isinstance(hidden, tuple):
            hidden = tuple(_RecurrentState.apply(h, y) for h in hidden)
        else:
            hidden = _RecurrentState.apply(hidden, y)
        return y, hidden

    return forward


class _Recorder(TorchFunctionMode):
    """Keep every tensor with a gradient history that an op produces while tracing."""

    def __init__(self) -> None:
        super().__init__()
        self.tensors: list[torch.Tensor] = []

    def __torch_function__(
        self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                self.tensors.append(t)
        return out


@contextlib.contextmanager
def recording() -> Iterator[_Recorder]:
    """Record the tensors computed inside the block (see :func:`dead_ends`)."""
    with _Recorder() as rec:
        yield rec


def dead_ends(outputs: Sequence[torch.Tensor], recorded: Sequence[torch.Tensor]) -> list[Any]:
    """Recorded tensors no output depends on, such as WaveNet's unused last residual sum.

    Tracing from the outputs alone would miss the layers that feed them, and trimming those
    layers' inputs without their consumers would break the forward pass; tracing from these
    dead ends as well puts them in the graph.
    """
    seen: set[int] = set()
    stack: list[Node | None] = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        stack.extend(nxt for nxt, _ in fn.next_functions)
    dead = []
    for t in recorded:
        if type(t.grad_fn).__name__ == STATE_NODE_NAME:
            continue  # an unread hidden state is no branch: it adds no layer to the graph
        if id(t.grad_fn) not in seen:
            dead.append(t)
            seen.add(id(t.grad_fn))
    return dead


@contextlib.contextmanager
def traceable(model: nn.Module) -> Iterator[None]:
    """Swap every recurrent layer's forward for its traceable stand-in, then restore it."""
    patched = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    try:
        for m in patched:
            m.forward = _traced_forward(m)
        yield
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)


class RecurrentPruner(tp.pruner.BasePruningFunc):
    """torch-pruning pruner for RNN, GRU and LSTM (any depth, either direction).

    A unit is one hidden index across every gate, layer and direction; the output channels are
    the ``directions * hidden_size`` features of the output sequence.
    """

    TARGET_MODULES = nn.RNNBase

    def __init__(self) -> None:
        super().__init__(pruning_dim=-1)
        self._adapter = RecurrentAdapter()

    def get_out_channels(self, layer: nn.RNNBase) -> int:
        return self._adapter.out_channels(layer)

    def get_in_channels(self, layer: nn.RNNBase) -> int:
        return self._adapter.in_channels(layer)

    def prune_out_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        h = layer.hidden_size
        units = np.unique(np.asarray(list(idxs), dtype=np.int64) % h)
        feats = (units[:, None] + h * np.arange(self._adapter._dirs(layer))[None, :]).ravel()
        n_out = self.get_out_channels(layer) - feats.size
        self._apply(layer, self._adapter.out_pieces(layer, feats), out=n_out, inp=None)
        return layer

    def prune_in_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        idx = np.unique(np.asarray(list(idxs), dtype=np.int64))
        n_in = self.get_in_channels(layer) - idx.size
        self._apply(layer, self._adapter.in_pieces(layer, idx), out=None, inp=n_in)
        return layer

    def _apply(self, layer: nn.RNNBase, pieces: list, out: int | None, inp: int | None) -> None:

        plan = TrimPlan.identity(layer)
        removed: dict[tuple[str, int], np.ndarray] = {}
        for p in pieces:
            key = (p.tensor, p.dim)
            cur = removed.get(key, np.zeros(0, dtype=np.int64))
            removed[key] = np.union1d(cur, p.rows.ravel())
        for (name, dim), rem in removed.items():
            ks = plan.keep.setdefault(name, [None] * len(plan.shapes[name]))
            ks[dim] = np.setdiff1d(np.arange(plan.shapes[name][dim]), rem)
        plan.attributes[""] = self._adapter.attributes(layer, out, inp)
        plan.apply_to_model(layer)


def recurrent_pruners(model: nn.Module) -> dict[type[nn.Module], RecurrentPruner]:
    """One pruner for every recurrent class in ``model``, subclasses of ``nn.GRU`` included.

    torch-pruning matches pruners by exact class; a subclass left out would have its weights
    taken for loose parameters, and its units protected.
    """
    found = [type(m) for m in model.modules() if isinstance(m, nn.RNNBase)]
    return dict.fromkeys([nn.RNNBase, nn.RNN, nn.GRU, nn.LSTM, *found], RecurrentPruner())


def fix_recurrent_states(dg: tp.DependencyGraph) -> None:
    """Hidden states have ``hidden_size`` features where the output has one per direction."""
    for node in dg.module2node.values():
        if getattr(node.module, "_grad_fn", None) != STATE_NODE_NAME:
            continue
        for src in node.inputs:
            rnn = src.module
            if not isinstance(rnn, nn.RNNBase):
                continue
            dirs = 2 if rnn.bidirectional else 1
            for dep in src.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = ModHidden(rnn.hidden_size)
            for dep in node.dependencies:
                if dep.target is src:
                    dep.index_mapping[0] = ExpandHidden(rnn.hidden_size, dirs)

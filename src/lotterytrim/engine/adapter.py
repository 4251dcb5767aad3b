"""The adapter interface: where a layer type keeps its units, and how its attributes follow a trim.

An adapter answers three questions for one layer type: how many channels flow out of and into
the layer, which tensor indices belong to a given set of channels (a *piece*), and which module
attributes must change once tensors have been sliced. Built-in adapters and the registry are in
:mod:`lotterytrim.engine.layers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import nn

__all__ = [
    "Adapter",
    "Piece",
    "underlying",
    "logical_shape",
    "tensor_pieces",
    "column",
    "FAN_IN",
    "FAN_OUT",
    "BIAS",
    "GAMMA",
    "BETA",
    "STAT",
    "OWNED",
]

# Roles tell criteria what a piece is: the unit's own incoming weights, a consumer's columns,
# a bias, a norm's scale, a norm's shift, a running statistic, or a module-owned parameter.
FAN_IN = "fan_in"
FAN_OUT = "fan_out"
BIAS = "bias"
GAMMA = "gamma"
BETA = "beta"
STAT = "stat"
OWNED = "owned"  # a module-owned parameter along the width (class token, positions, scale)


@dataclass(frozen=True)
class Piece:
    """Indices of one tensor along one dim that belong to given channels.

    ``rows[i]`` lists the tensor indices owned by the i-th requested channel, so the owner of
    every index is known (needed for exact costs and for scoring).
    """

    tensor: str
    dim: int
    rows: np.ndarray
    role: str


def underlying(module: nn.Module, name: str) -> list[tuple[str, torch.Tensor]]:
    """The stored tensors behind a logical weight: plain, parametrized or old-style weight norm."""
    plist = getattr(module, "parametrizations", None)
    if plist is not None and name in plist:
        entry = plist[name]
        out = []
        for attr in ("original", "original0", "original1"):
            t = getattr(entry, attr, None)
            if isinstance(t, torch.Tensor):
                out.append((f"parametrizations.{name}.{attr}", t))
        return out
    g, v = getattr(module, name + "_g", None), getattr(module, name + "_v", None)
    if isinstance(g, torch.Tensor) and isinstance(v, torch.Tensor):
        return [(name + "_g", g), (name + "_v", v)]
    t = getattr(module, name, None)
    return [(name, t)] if isinstance(t, torch.Tensor) else []


def logical_shape(module: nn.Module, name: str) -> tuple[int, ...]:
    """Shape of a logical weight without computing a parametrization."""
    parts = underlying(module, name)
    shape: list[int] = []
    for _, t in parts:
        if not shape:
            shape = list(t.shape)
        else:
            shape = [max(a, b) for a, b in zip(shape, t.shape, strict=False)]
    return tuple(shape)


def tensor_pieces(
    module: nn.Module, name: str, dim: int, rows: np.ndarray, role: str
) -> list[Piece]:
    """Pieces for a logical weight, expanded to its stored tensors (size-1 dims are shared)."""
    full = logical_shape(module, name)
    out = []
    for rel, t in underlying(module, name):
        if t.dim() == len(full) and t.shape[dim] == full[dim]:
            out.append(Piece(rel, dim, rows, role))
    return out


def column(idx: np.ndarray) -> np.ndarray:
    """Channel indices as a column: one row per channel, for a :class:`Piece`."""
    return np.asarray(idx, dtype=np.int64).reshape(-1, 1)


M = TypeVar("M", bound=nn.Module)


class Adapter(Generic[M]):
    """How one layer type stores its units. Subclass and register to support a new layer.

    ``Adapter[nn.Linear]`` types ``m`` as the layer class it is registered for.
    """

    #: whether the layer computes new features (conv, linear, recurrent) rather than passing
    #: channels through (norms, activations); criteria score producers.
    producer: bool = True

    def out_channels(self, m: M) -> int | None:
        """Number of channels the layer emits (None: not defined)."""
        raise NotImplementedError

    def in_channels(self, m: M) -> int | None:
        """Number of channels the layer consumes (None: not defined)."""
        raise NotImplementedError

    def units(self, m: M) -> int | None:
        """Width of the layer as its constructor and repr state it (None: not defined).

        Results and reports count units with it; it differs from ``out_channels`` only where
        one unit emits several channels (a bidirectional recurrent layer).
        """
        return self.out_channels(m)

    def out_pieces(self, m: M, idx: np.ndarray) -> list[Piece]:
        """Tensor indices owned by output channels ``idx``."""
        raise NotImplementedError

    def in_pieces(self, m: M, idx: np.ndarray) -> list[Piece]:
        """Tensor indices that read input channels ``idx``."""
        return []

    def attributes(self, m: M, out: int | None, inp: int | None) -> dict[str, Any]:
        """Attributes to set once the layer has ``out`` output and ``inp`` input channels."""
        raise NotImplementedError

    def unsupported(self, m: M) -> str | None:
        """Why this particular layer cannot lose units (None when it can)."""
        return None

    def channel_dim(self, m: M, output: torch.Tensor) -> int:
        """Dim of the layer's output tensor that indexes its output channels."""
        return 1 if output.dim() > 1 else 0

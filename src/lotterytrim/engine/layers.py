"""Layer adapters: where each layer type keeps its units, and how its attributes follow a trim.

An adapter answers three questions for one layer type: how many channels flow out of and into
the layer, which tensor indices belong to a given set of channels (a *piece*), and which module
attributes must change once tensors have been sliced. The engine never slices a tensor it has
no adapter for; a layer without one is protected or reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Adapter",
    "Piece",
    "RecurrentAdapter",
    "register_adapter",
    "adapter_for",
    "is_recurrent",
    "underlying",
    "logical_shape",
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


def _pieces(module: nn.Module, name: str, dim: int, rows: np.ndarray, role: str) -> list[Piece]:
    """Pieces for a logical weight, expanded to its stored tensors (size-1 dims are shared)."""
    full = logical_shape(module, name)
    out = []
    for rel, t in underlying(module, name):
        if t.dim() == len(full) and t.shape[dim] == full[dim]:
            out.append(Piece(rel, dim, rows, role))
    return out


def _col(idx: np.ndarray) -> np.ndarray:
    return np.asarray(idx, dtype=np.int64).reshape(-1, 1)


class Adapter:
    """How one layer type stores its units. Subclass and register to support a new layer."""

    #: whether the layer computes new features (conv, linear, recurrent) rather than passing
    #: channels through (norms, activations); criteria score producers.
    producer: bool = True

    def out_channels(self, m: nn.Module) -> int | None:
        """Number of channels the layer emits (None: not defined)."""
        raise NotImplementedError

    def in_channels(self, m: nn.Module) -> int | None:
        """Number of channels the layer consumes (None: not defined)."""
        raise NotImplementedError

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        """Tensor indices owned by output channels ``idx``."""
        raise NotImplementedError

    def in_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        """Tensor indices that read input channels ``idx``."""
        return []

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        """Attributes to set once the layer has ``out`` output and ``inp`` input channels."""
        raise NotImplementedError

    def unsupported(self, m: nn.Module) -> str | None:
        """Why this particular layer cannot lose units (None when it can)."""
        return None

    def channel_dim(self, m: nn.Module, output: torch.Tensor) -> int:
        """Dim of the layer's output tensor that indexes its output channels."""
        return 1 if output.dim() > 1 else 0


class _ConvAdapter(Adapter):
    def _depthwise(self, m: nn.Module) -> bool:
        return m.groups > 1 and m.groups == m.in_channels == m.out_channels

    def out_channels(self, m: nn.Module) -> int:
        return int(m.out_channels)

    def in_channels(self, m: nn.Module) -> int:
        return int(m.in_channels)

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        dim = 1 if m.transposed and not self._depthwise(m) else 0
        pieces = _pieces(m, "weight", dim, _col(idx), FAN_IN)
        if m.bias is not None:
            pieces.append(Piece("bias", 0, _col(idx), BIAS))
        return pieces

    def in_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        if self._depthwise(m):
            return []  # input and output channels are the same units; out_pieces covers them
        dim = 0 if m.transposed else 1
        return _pieces(m, "weight", dim, _col(idx), FAN_OUT)

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        if self._depthwise(m):
            n = out if out is not None else inp
            return {"out_channels": n, "in_channels": n, "groups": n}
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["out_channels"] = out
        if inp is not None:
            attrs["in_channels"] = inp
        return attrs

    def unsupported(self, m: nn.Module) -> str | None:
        if m.groups > 1 and not self._depthwise(m):
            return (
                f"grouped convolution (groups={m.groups}): removing channels would break the "
                "equal split between groups"
            )
        return None


class _LinearAdapter(Adapter):
    def out_channels(self, m: nn.Module) -> int:
        return int(m.out_features)

    def in_channels(self, m: nn.Module) -> int:
        return int(m.in_features)

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        pieces = _pieces(m, "weight", 0, _col(idx), FAN_IN)
        if m.bias is not None:
            pieces.append(Piece("bias", 0, _col(idx), BIAS))
        return pieces

    def in_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        return _pieces(m, "weight", 1, _col(idx), FAN_OUT)

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["out_features"] = out
        if inp is not None:
            attrs["in_features"] = inp
        return attrs

    def channel_dim(self, m: nn.Module, output: torch.Tensor) -> int:
        return output.dim() - 1


class _NormAdapter(Adapter):
    """BatchNorm and InstanceNorm: one scale, shift and running statistic per channel."""

    producer = False

    def out_channels(self, m: nn.Module) -> int:
        return int(m.num_features)

    in_channels = out_channels

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        rows = _col(idx)
        pieces = []
        if isinstance(getattr(m, "weight", None), torch.Tensor):
            pieces.append(Piece("weight", 0, rows, GAMMA))
        if isinstance(getattr(m, "bias", None), torch.Tensor):
            pieces.append(Piece("bias", 0, rows, BETA))
        for buf in ("running_mean", "running_var"):
            if isinstance(getattr(m, buf, None), torch.Tensor):
                pieces.append(Piece(buf, 0, rows, STAT))
        return pieces

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        return {"num_features": out if out is not None else inp}


class _LayerNormAdapter(Adapter):
    producer = False

    def out_channels(self, m: nn.Module) -> int:
        return int(m.normalized_shape[-1])

    in_channels = out_channels

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        pieces = []
        dim = len(m.normalized_shape) - 1
        if isinstance(m.weight, torch.Tensor):
            pieces.append(Piece("weight", dim, _col(idx), GAMMA))
        if isinstance(getattr(m, "bias", None), torch.Tensor):
            pieces.append(Piece("bias", dim, _col(idx), BETA))
        return pieces

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        n = out if out is not None else inp
        return {"normalized_shape": [*list(m.normalized_shape[:-1]), n]}

    def unsupported(self, m: nn.Module) -> str | None:
        if len(m.normalized_shape) > 1:
            return f"LayerNorm over {len(m.normalized_shape)} dims: only the last dim can shrink"
        return None

    def channel_dim(self, m: nn.Module, output: torch.Tensor) -> int:
        return output.dim() - 1


class _GroupNormAdapter(Adapter):
    producer = False

    def out_channels(self, m: nn.Module) -> int:
        return int(m.num_channels)

    in_channels = out_channels

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        pieces = []
        if isinstance(m.weight, torch.Tensor):
            pieces.append(Piece("weight", 0, _col(idx), GAMMA))
            pieces.append(Piece("bias", 0, _col(idx), BETA))
        return pieces

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        n = out if out is not None else inp
        groups = n if m.num_groups == m.num_channels else 1
        return {"num_channels": n, "num_groups": groups}

    def unsupported(self, m: nn.Module) -> str | None:
        if m.num_groups not in (1, m.num_channels):
            return (
                f"GroupNorm with {m.num_groups} groups of {m.num_channels} channels: removing "
                "channels would break the equal split between groups"
            )
        return None


class _PReLUAdapter(Adapter):
    producer = False

    def out_channels(self, m: nn.Module) -> int | None:
        return int(m.num_parameters) if m.num_parameters > 1 else None

    in_channels = out_channels

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        if m.num_parameters == 1:
            return []
        return [Piece("weight", 0, _col(idx), GAMMA)]

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        if m.num_parameters == 1:
            return {}
        return {"num_parameters": out if out is not None else inp}


class _EmbeddingAdapter(Adapter):
    def out_channels(self, m: nn.Module) -> int:
        return int(m.embedding_dim)

    def in_channels(self, m: nn.Module) -> None:
        return None

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        return _pieces(m, "weight", 1, _col(idx), FAN_IN)

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        return {"embedding_dim": out} if out is not None else {}

    def channel_dim(self, m: nn.Module, output: torch.Tensor) -> int:
        return output.dim() - 1


class RecurrentAdapter(Adapter):
    """RNN, GRU and LSTM: a unit is one hidden index across all gates, layers and directions.

    The output channels are the features of the output sequence, ``directions * hidden_size``;
    feature ``k * hidden_size + u`` belongs to unit ``u`` for every direction ``k``.
    """

    def _gates(self, m: nn.Module) -> int:
        return {"LSTM": 4, "GRU": 3}.get(m.mode, 1)

    def _dirs(self, m: nn.Module) -> int:
        return 2 if m.bidirectional else 1

    def out_channels(self, m: nn.Module) -> int:
        return int(m.hidden_size) * self._dirs(m)

    def in_channels(self, m: nn.Module) -> int:
        return int(m.input_size)

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        h, g, dirs = m.hidden_size, self._gates(m), self._dirs(m)
        units = np.asarray(idx, dtype=np.int64) % h
        gated = units[:, None] + h * np.arange(g)[None, :]
        across = units[:, None] + h * np.arange(dirs)[None, :]
        pieces = []
        for layer in range(m.num_layers):
            for sfx in ("", "_reverse")[:dirs]:
                tag = f"_l{layer}{sfx}"
                pieces += _pieces(m, "weight_ih" + tag, 0, gated, FAN_IN)
                pieces += _pieces(m, "weight_hh" + tag, 0, gated, FAN_IN)
                pieces += _pieces(m, "weight_hh" + tag, 1, _col(units), FAN_IN)
                if m.bias:
                    pieces.append(Piece("bias_ih" + tag, 0, gated, BIAS))
                    pieces.append(Piece("bias_hh" + tag, 0, gated, BIAS))
                if layer > 0:
                    pieces += _pieces(m, "weight_ih" + tag, 1, across, FAN_IN)
        return pieces

    def in_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        pieces = []
        for sfx in ("", "_reverse")[: self._dirs(m)]:
            pieces += _pieces(m, "weight_ih_l0" + sfx, 1, _col(idx), FAN_OUT)
        return pieces

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["hidden_size"] = out // self._dirs(m)
        if inp is not None:
            attrs["input_size"] = inp
        return attrs

    def unsupported(self, m: nn.Module) -> str | None:
        if getattr(m, "proj_size", 0):
            return f"LSTM with proj_size={m.proj_size}: projected hidden units are not trimmed"
        return None

    def channel_dim(self, m: nn.Module, output: torch.Tensor) -> int:
        return output.dim() - 1


_REGISTRY: dict[type, Adapter] = {
    nn.modules.conv._ConvNd: _ConvAdapter(),
    nn.Linear: _LinearAdapter(),
    nn.modules.batchnorm._BatchNorm: _NormAdapter(),
    nn.modules.instancenorm._InstanceNorm: _NormAdapter(),
    nn.LayerNorm: _LayerNormAdapter(),
    nn.GroupNorm: _GroupNormAdapter(),
    nn.PReLU: _PReLUAdapter(),
    nn.Embedding: _EmbeddingAdapter(),
    nn.RNNBase: RecurrentAdapter(),
}


def register_adapter(layer_type: type, adapter: Adapter) -> None:
    """Teach the engine a new layer type (subclasses of ``layer_type`` use it too)."""
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise TypeError(f"layer_type must be an nn.Module subclass, got {layer_type!r}")
    if not isinstance(adapter, Adapter):
        raise TypeError(f"adapter must be a lotterytrim Adapter, got {type(adapter).__name__}")
    _REGISTRY[layer_type] = adapter


def adapter_for(module: nn.Module) -> Adapter | None:
    """The adapter for a module, searching its class hierarchy (None: unknown layer)."""
    for cls in type(module).__mro__:
        if cls in _REGISTRY:
            return _REGISTRY[cls]
    return None


def is_recurrent(module: nn.Module) -> bool:
    """True for RNN, GRU and LSTM layers."""
    return isinstance(module, nn.RNNBase)

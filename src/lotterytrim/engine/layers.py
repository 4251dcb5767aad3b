"""The built-in layer adapters and the registry that finds a layer's adapter by its class.

The engine never slices a tensor it has no adapter for; a layer without one is protected or
reported. :func:`register_adapter` teaches it a new layer type; the built-in adapters are public
so that a layer extending a known one needs only what differs (see ``docs/architecture.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from lotterytrim.engine.adapter import (
    BETA,
    BIAS,
    FAN_IN,
    FAN_OUT,
    GAMMA,
    STAT,
    Adapter,
    Piece,
    column,
    tensor_pieces,
)
from lotterytrim.registry import Registry

__all__ = [
    "ConvAdapter",
    "LinearAdapter",
    "BatchNormAdapter",
    "LayerNormAdapter",
    "GroupNormAdapter",
    "PReLUAdapter",
    "EmbeddingAdapter",
    "RecurrentAdapter",
    "ADAPTERS",
    "register_adapter",
    "adapter_for",
    "layer_units",
    "is_recurrent",
]


class ConvAdapter(Adapter[_ConvNd]):
    """Convolutions (1d, 2d, 3d, transposed): a unit is one output channel, its filter and bias.

    Depthwise convolutions shrink their input, output and groups together; other grouped
    convolutions are refused, since removing channels would unbalance the groups.
    """

    def _depthwise(self, m: _ConvNd) -> bool:
        return m.groups > 1 and m.groups == m.in_channels == m.out_channels

    def out_channels(self, m: _ConvNd) -> int:
        return int(m.out_channels)

    def in_channels(self, m: _ConvNd) -> int:
        return int(m.in_channels)

    def out_pieces(self, m: _ConvNd, idx: np.ndarray) -> list[Piece]:
        dim = 1 if m.transposed and not self._depthwise(m) else 0
        pieces = tensor_pieces(m, "weight", dim, column(idx), FAN_IN)
        if m.bias is not None:
            pieces.append(Piece("bias", 0, column(idx), BIAS))
        return pieces

    def in_pieces(self, m: _ConvNd, idx: np.ndarray) -> list[Piece]:
        if self._depthwise(m):
            return []  # input and output channels are the same units; out_pieces covers them
        dim = 0 if m.transposed else 1
        return tensor_pieces(m, "weight", dim, column(idx), FAN_OUT)

    def attributes(self, m: _ConvNd, out: int | None, inp: int | None) -> dict[str, Any]:
        if self._depthwise(m):
            n = out if out is not None else inp
            return {"out_channels": n, "in_channels": n, "groups": n}
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["out_channels"] = out
        if inp is not None:
            attrs["in_channels"] = inp
        return attrs

    def unsupported(self, m: _ConvNd) -> str | None:
        if m.groups > 1 and not self._depthwise(m):
            return (
                f"grouped convolution (groups={m.groups}): removing channels would break the "
                "equal split between groups"
            )
        return None


class LinearAdapter(Adapter[nn.Linear]):
    """``nn.Linear``: a unit is one output feature, its weight row and bias; features are last."""

    def out_channels(self, m: nn.Linear) -> int:
        return int(m.out_features)

    def in_channels(self, m: nn.Linear) -> int:
        return int(m.in_features)

    def out_pieces(self, m: nn.Linear, idx: np.ndarray) -> list[Piece]:
        pieces = tensor_pieces(m, "weight", 0, column(idx), FAN_IN)
        if m.bias is not None:
            pieces.append(Piece("bias", 0, column(idx), BIAS))
        return pieces

    def in_pieces(self, m: nn.Linear, idx: np.ndarray) -> list[Piece]:
        return tensor_pieces(m, "weight", 1, column(idx), FAN_OUT)

    def attributes(self, m: nn.Linear, out: int | None, inp: int | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["out_features"] = out
        if inp is not None:
            attrs["in_features"] = inp
        return attrs

    def channel_dim(self, m: nn.Linear, output: torch.Tensor) -> int:
        return output.dim() - 1


class BatchNormAdapter(Adapter[_NormBase]):
    """BatchNorm and InstanceNorm: one scale, shift and running statistic per channel.

    Norms pass channels through (``producer = False``): they follow the layer that feeds them.
    """

    producer = False

    def out_channels(self, m: _NormBase) -> int:
        return int(m.num_features)

    in_channels = out_channels

    def out_pieces(self, m: _NormBase, idx: np.ndarray) -> list[Piece]:
        rows = column(idx)
        pieces = []
        if isinstance(getattr(m, "weight", None), torch.Tensor):
            pieces.append(Piece("weight", 0, rows, GAMMA))
        if isinstance(getattr(m, "bias", None), torch.Tensor):
            pieces.append(Piece("bias", 0, rows, BETA))
        for buf in ("running_mean", "running_var"):
            if isinstance(getattr(m, buf, None), torch.Tensor):
                pieces.append(Piece(buf, 0, rows, STAT))
        return pieces

    def attributes(self, m: _NormBase, out: int | None, inp: int | None) -> dict[str, Any]:
        return {"num_features": out if out is not None else inp}


class LayerNormAdapter(Adapter[nn.LayerNorm]):
    """``nn.LayerNorm`` over the last dim: one scale and shift per feature, following its input."""

    producer = False

    def out_channels(self, m: nn.LayerNorm) -> int:
        return int(m.normalized_shape[-1])

    in_channels = out_channels

    def out_pieces(self, m: nn.LayerNorm, idx: np.ndarray) -> list[Piece]:
        pieces = []
        dim = len(m.normalized_shape) - 1
        if isinstance(m.weight, torch.Tensor):
            pieces.append(Piece("weight", dim, column(idx), GAMMA))
        if isinstance(getattr(m, "bias", None), torch.Tensor):
            pieces.append(Piece("bias", dim, column(idx), BETA))
        return pieces

    def attributes(self, m: nn.LayerNorm, out: int | None, inp: int | None) -> dict[str, Any]:
        n = out if out is not None else inp
        return {"normalized_shape": [*list(m.normalized_shape[:-1]), n]}

    def unsupported(self, m: nn.LayerNorm) -> str | None:
        if len(m.normalized_shape) > 1:
            return f"LayerNorm over {len(m.normalized_shape)} dims: only the last dim can shrink"
        return None

    def channel_dim(self, m: nn.LayerNorm, output: torch.Tensor) -> int:
        return output.dim() - 1


class GroupNormAdapter(Adapter[nn.GroupNorm]):
    """``nn.GroupNorm`` with one group or one group per channel (other splits are refused)."""

    producer = False

    def out_channels(self, m: nn.GroupNorm) -> int:
        return int(m.num_channels)

    in_channels = out_channels

    def out_pieces(self, m: nn.GroupNorm, idx: np.ndarray) -> list[Piece]:
        pieces = []
        if isinstance(m.weight, torch.Tensor):
            pieces.append(Piece("weight", 0, column(idx), GAMMA))
            pieces.append(Piece("bias", 0, column(idx), BETA))
        return pieces

    def attributes(self, m: nn.GroupNorm, out: int | None, inp: int | None) -> dict[str, Any]:
        n = out if out is not None else inp
        groups = n if m.num_groups == m.num_channels else 1
        return {"num_channels": n, "num_groups": groups}

    def unsupported(self, m: nn.GroupNorm) -> str | None:
        if m.num_groups not in (1, m.num_channels):
            return (
                f"GroupNorm with {m.num_groups} groups of {m.num_channels} channels: removing "
                "channels would break the equal split between groups"
            )
        return None


class PReLUAdapter(Adapter[nn.PReLU]):
    """``nn.PReLU``: one slope per channel follows its input; a single shared slope stays."""

    producer = False

    def out_channels(self, m: nn.PReLU) -> int | None:
        return int(m.num_parameters) if m.num_parameters > 1 else None

    in_channels = out_channels

    def out_pieces(self, m: nn.PReLU, idx: np.ndarray) -> list[Piece]:
        if m.num_parameters == 1:
            return []
        return [Piece("weight", 0, column(idx), GAMMA)]

    def attributes(self, m: nn.PReLU, out: int | None, inp: int | None) -> dict[str, Any]:
        if m.num_parameters == 1:
            return {}
        return {"num_parameters": out if out is not None else inp}


class EmbeddingAdapter(Adapter[nn.Embedding]):
    """``nn.Embedding``: a unit is one embedding feature, a column of the table."""

    def out_channels(self, m: nn.Embedding) -> int:
        return int(m.embedding_dim)

    def in_channels(self, m: nn.Embedding) -> None:
        return None

    def out_pieces(self, m: nn.Embedding, idx: np.ndarray) -> list[Piece]:
        return tensor_pieces(m, "weight", 1, column(idx), FAN_IN)

    def attributes(self, m: nn.Embedding, out: int | None, inp: int | None) -> dict[str, Any]:
        return {"embedding_dim": out} if out is not None else {}

    def channel_dim(self, m: nn.Embedding, output: torch.Tensor) -> int:
        return output.dim() - 1


class RecurrentAdapter(Adapter[nn.RNNBase]):
    """RNN, GRU and LSTM: a unit is one hidden index across all gates, layers and directions.

    The output channels are the features of the output sequence, ``directions * hidden_size``;
    feature ``k * hidden_size + u`` belongs to unit ``u`` for every direction ``k``.
    """

    def _gates(self, m: nn.RNNBase) -> int:
        return {"LSTM": 4, "GRU": 3}.get(m.mode, 1)

    def _dirs(self, m: nn.RNNBase) -> int:
        return 2 if m.bidirectional else 1

    def out_channels(self, m: nn.RNNBase) -> int:
        return int(m.hidden_size) * self._dirs(m)

    def in_channels(self, m: nn.RNNBase) -> int:
        return int(m.input_size)

    def units(self, m: nn.RNNBase) -> int:
        """Hidden units per direction (``hidden_size``), each emitting one feature per direction."""
        return int(m.hidden_size)

    def out_pieces(self, m: nn.RNNBase, idx: np.ndarray) -> list[Piece]:
        h, g, dirs = m.hidden_size, self._gates(m), self._dirs(m)
        units = np.asarray(idx, dtype=np.int64) % h
        gated = units[:, None] + h * np.arange(g)[None, :]
        across = units[:, None] + h * np.arange(dirs)[None, :]
        pieces = []
        for layer in range(m.num_layers):
            for sfx in ("", "_reverse")[:dirs]:
                tag = f"_l{layer}{sfx}"
                pieces += tensor_pieces(m, "weight_ih" + tag, 0, gated, FAN_IN)
                pieces += tensor_pieces(m, "weight_hh" + tag, 0, gated, FAN_IN)
                pieces += tensor_pieces(m, "weight_hh" + tag, 1, column(units), FAN_IN)
                if m.bias:
                    pieces.append(Piece("bias_ih" + tag, 0, gated, BIAS))
                    pieces.append(Piece("bias_hh" + tag, 0, gated, BIAS))
                if layer > 0:
                    pieces += tensor_pieces(m, "weight_ih" + tag, 1, across, FAN_IN)
        return pieces

    def in_pieces(self, m: nn.RNNBase, idx: np.ndarray) -> list[Piece]:
        pieces = []
        for sfx in ("", "_reverse")[: self._dirs(m)]:
            pieces += tensor_pieces(m, "weight_ih_l0" + sfx, 1, column(idx), FAN_OUT)
        return pieces

    def attributes(self, m: nn.RNNBase, out: int | None, inp: int | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if out is not None:
            attrs["hidden_size"] = out // self._dirs(m)
        if inp is not None:
            attrs["input_size"] = inp
        return attrs

    def unsupported(self, m: nn.RNNBase) -> str | None:
        if getattr(m, "proj_size", 0):
            return f"LSTM with proj_size={m.proj_size}: projected hidden units are not trimmed"
        return None

    def channel_dim(self, m: nn.RNNBase, output: torch.Tensor) -> int:
        return output.dim() - 1


ADAPTERS: Registry[type[nn.Module], Adapter] = Registry("adapter", Adapter, nn.Module)
"""Every layer type the engine can slice, mapped to its adapter class (subclasses match too)."""

for _layer, _adapter in (
    (_ConvNd, ConvAdapter),
    (nn.Linear, LinearAdapter),
    (nn.modules.batchnorm._BatchNorm, BatchNormAdapter),
    (nn.modules.instancenorm._InstanceNorm, BatchNormAdapter),
    (nn.LayerNorm, LayerNormAdapter),
    (nn.GroupNorm, GroupNormAdapter),
    (nn.PReLU, PReLUAdapter),
    (nn.Embedding, EmbeddingAdapter),
    (nn.RNNBase, RecurrentAdapter),
):
    ADAPTERS.register(_layer, _adapter)


def register_adapter(
    layer_type: type[nn.Module],
    adapter: type[Adapter] | Callable[[], Adapter] | None = None,
    *,
    replace: bool = False,
) -> Any:
    """Teach the engine a layer type: ``adapter`` is an :class:`Adapter` subclass (or a factory).

    Subclasses of ``layer_type`` use it too, unless they have their own. A layer type has one
    adapter: registering a second raises ``ValueError`` unless ``replace=True``. Without
    ``adapter``, a class decorator: ``@register_adapter(MyLayer)``.
    """
    return ADAPTERS.register(layer_type, adapter, replace=replace)


def adapter_for(module: nn.Module) -> Adapter | None:
    """The adapter for a module, searching its class hierarchy (None: unknown layer)."""
    for cls in type(module).__mro__:
        if cls in ADAPTERS:
            return ADAPTERS.build(cls)
    return None


def layer_units(model: nn.Module) -> dict[str, int]:
    """Units of every layer lotterytrim can trim, by module name.

    A unit is an output channel (convolution), an output feature (linear), an embedding
    feature, or a hidden unit per direction (recurrent: ``hidden_size``, whatever the number
    of directions), so the count is the width the layer's repr shows.
    """
    out: dict[str, int] = {}
    for name, m in model.named_modules():
        ad = adapter_for(m)
        if ad is not None and ad.producer:
            n = ad.units(m)
            if n is not None:
                out[name] = n
    return out


def is_recurrent(module: nn.Module) -> bool:
    """True for RNN, GRU and LSTM layers."""
    return isinstance(module, nn.RNNBase)

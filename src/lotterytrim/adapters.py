"""Layer adapters: how the engine slices each layer type, and how to teach it a new one.

A layer that extends a known one (say an ``nn.Linear`` with a learnt gate per feature)
subclasses that layer's adapter, overrides only what differs and registers it with
:func:`register_adapter`; a new kind of layer subclasses :class:`Adapter` itself.
``docs/architecture.md`` shows an example.
"""

from __future__ import annotations

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
from lotterytrim.engine.attention import MultiheadAttentionAdapter
from lotterytrim.engine.layers import (
    ADAPTERS,
    BatchNormAdapter,
    ConvAdapter,
    EmbeddingAdapter,
    GroupNormAdapter,
    LayerNormAdapter,
    LinearAdapter,
    PReLUAdapter,
    RecurrentAdapter,
    register_adapter,
)

__all__ = [
    # write and register an adapter
    "Adapter",
    "Piece",
    "column",
    "tensor_pieces",
    "register_adapter",
    "ADAPTERS",
    # what a piece is, for criteria: a unit's own weights, a consumer's, a bias, a norm's ...
    "FAN_IN",
    "FAN_OUT",
    "BIAS",
    "GAMMA",
    "BETA",
    "STAT",
    # the built-in adapters, to subclass
    "ConvAdapter",
    "LinearAdapter",
    "BatchNormAdapter",
    "LayerNormAdapter",
    "GroupNormAdapter",
    "PReLUAdapter",
    "EmbeddingAdapter",
    "RecurrentAdapter",
    "MultiheadAttentionAdapter",
]

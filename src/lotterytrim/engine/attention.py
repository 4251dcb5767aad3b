"""Attention for the graph engine: whole heads as units, and head counts that follow a trim.

Two forms are supported. ``nn.MultiheadAttention`` computes with a width equal to its
embedding width, so one of its heads is a block of ``head_dim`` embedding channels: removing
head ``h`` removes its q, k and v rows, its out-projection columns and the same block of the
residual stream it reads and writes. Attention written with separate q/k/v Linear layers and
a ``num_heads`` attribute (the usual head reshape) keeps its inner width apart from the
embedding: its heads are units of their own, and the module's head count attributes follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from lotterytrim.engine.adapter import BIAS, FAN_IN, FAN_OUT, Adapter, Piece
from lotterytrim.engine.layers import register_adapter

__all__ = [
    "HeadSpec",
    "MultiheadAttentionAdapter",
    "find_heads",
    "head_attributes",
    "whole_heads",
]

HEAD_ATTRS = ("num_heads", "num_attention_heads", "n_heads", "n_head", "heads")
"""Attributes read as a module's head count."""

WIDTH_ATTRS = ("all_head_size", "inner_dim", "inner_size", "attn_dim", "hidden_dim")
"""Attributes read as the inner width (heads x head size) when they equal it."""

OUTPUT_NAMES = frozenset(
    {"out", "o", "out_proj", "o_proj", "proj", "to_out", "wo", "dense", "output", "c_proj"}
)
"""Child Linear names taken as the output projection (its input columns follow the heads)."""


def whole_heads(idx: np.ndarray, root: np.ndarray, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Every channel of the heads that ``idx`` touches, each keeping the root that reached it."""
    start = (np.asarray(idx, dtype=np.int64) // head_dim) * head_dim
    full = (start[:, None] + np.arange(head_dim)[None, :]).ravel()
    return full, np.repeat(root, head_dim)


@dataclass(frozen=True)
class HeadSpec:
    """A hand-written attention module: where its head count lives and its q/k/v layers."""

    module: str
    heads_attr: str
    heads: int
    head_dim: int
    projections: tuple[str, ...]  # q/k/v Linear layers whose outputs are split into heads
    width_attrs: tuple[str, ...]  # attributes holding heads x head_dim


def find_heads(model: nn.Module) -> dict[str, HeadSpec]:
    """Hand-written attention modules, keyed by each q/k/v projection's module name.

    A module qualifies when it has an integer head count attribute and at least three child
    Linear layers, not named like an output projection, whose width splits into that many
    heads. Fused qkv layers do not qualify (their thirds are not told apart).
    """
    found: dict[str, HeadSpec] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            continue
        attr = next((a for a in HEAD_ATTRS if type(getattr(m, a, None)) is int), None)
        if attr is None or getattr(m, attr) < 1:
            continue
        heads = int(getattr(m, attr))
        projs = [
            (child, lin)
            for child, lin in m.named_children()
            if isinstance(lin, nn.Linear) and child not in OUTPUT_NAMES
        ]
        widths = {lin.out_features for _, lin in projs}
        if len(projs) < 3 or len(widths) != 1:
            continue
        width = widths.pop()
        if width % heads:
            continue
        prefix = f"{name}." if name else ""
        spec = HeadSpec(
            module=name,
            heads_attr=attr,
            heads=heads,
            head_dim=width // heads,
            projections=tuple(prefix + child for child, _ in projs),
            width_attrs=tuple(a for a in WIDTH_ATTRS if getattr(m, a, None) == width),
        )
        for proj in spec.projections:
            found[proj] = spec
    return found


def head_attributes(spec: HeadSpec, width: int) -> dict[str, Any]:
    """Attribute values of a hand-written attention module whose q/k/v width became ``width``."""
    attrs: dict[str, Any] = {spec.heads_attr: width // spec.head_dim}
    attrs.update({a: width for a in spec.width_attrs})
    return attrs


class MultiheadAttentionAdapter(Adapter[nn.MultiheadAttention]):
    """``nn.MultiheadAttention``: a unit is one head, a block of ``head_dim`` embedding channels.

    Input and output channels are the same units (the layer reads and writes the embedding),
    so every tensor is listed on the output side: q/k/v rows and columns, the out-projection's
    rows and columns, and the key/value biases.
    """

    def out_channels(self, m: nn.MultiheadAttention) -> int:
        return int(m.embed_dim)

    in_channels = out_channels

    def out_pieces(self, m: nn.MultiheadAttention, idx: np.ndarray) -> list[Piece]:
        e = m.embed_dim
        idx = np.asarray(idx, dtype=np.int64)
        col = idx.reshape(-1, 1)
        qkv = np.stack([idx, idx + e, idx + 2 * e], axis=1)
        pieces = [
            Piece("in_proj_weight", 0, qkv, FAN_IN),
            Piece("in_proj_weight", 1, col, FAN_OUT),
            Piece("out_proj.weight", 0, col, FAN_IN),
            Piece("out_proj.weight", 1, col, FAN_OUT),
        ]
        if m.in_proj_bias is not None:
            pieces.append(Piece("in_proj_bias", 0, qkv, BIAS))
        if m.out_proj.bias is not None:
            pieces.append(Piece("out_proj.bias", 0, col, BIAS))
        for name in ("bias_k", "bias_v"):
            if getattr(m, name, None) is not None:
                pieces.append(Piece(name, 2, col, BIAS))
        return pieces

    def attributes(
        self, m: nn.MultiheadAttention, out: int | None, inp: int | None
    ) -> dict[str, Any]:
        n = out if out is not None else inp
        assert n is not None
        return {
            "embed_dim": n,
            "kdim": n,
            "vdim": n,
            "num_heads": n // m.head_dim,
            "head_dim": m.head_dim,
            "out_proj.in_features": n,
            "out_proj.out_features": n,
        }

    def unsupported(self, m: nn.MultiheadAttention) -> str | None:
        if not m._qkv_same_embed_dim:
            return (
                f"multi-head attention with key/value widths ({m.kdim}, {m.vdim}) other than "
                f"its embedding width ({m.embed_dim}): its heads are kept"
            )
        return None

    def channel_dim(self, m: nn.MultiheadAttention, output: Any) -> int:
        return output.dim() - 1  # (batch, seq, embed) or (seq, batch, embed)


register_adapter(nn.MultiheadAttention, MultiheadAttentionAdapter)

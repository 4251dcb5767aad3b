"""``nn.MultiheadAttention`` rewritten as four Linear layers, so that its width trims apart.

``nn.MultiheadAttention`` computes with a width equal to its embedding width: one head is a
block of the residual stream, and a transformer's residual width can only lose whole heads, a
quarter or a third of a small model at a time. :class:`SplitAttention` computes the same
function with separate q/k/v/out Linear layers and a ``num_heads`` attribute, so its heads are
units of their own and the residual width trims one feature at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from lotterytrim.errors import UnsupportedLayerError

__all__ = ["SplitAttention", "split_attention"]


class SplitAttention(nn.Module):
    """Multi-head attention with separate projections; a drop-in for ``nn.MultiheadAttention``.

    Takes the same call (``query, key, value, key_padding_mask, need_weights, attn_mask,
    average_attn_weights, is_causal``) and returns the same ``(output, weights)`` pair. The
    inner width ``num_heads * head_dim`` is free of the embedding width, and ``head_dim`` (so
    the softmax scale) stays fixed when heads are removed.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        batch_first: bool = False,
        add_zero_attn: bool = False,
    ) -> None:
        super().__init__()
        inner = num_heads * head_dim
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.batch_first = batch_first
        self.add_zero_attn = add_zero_attn
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, inner, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    # read by nn.TransformerEncoderLayer and nn.TransformerDecoderLayer: these keep them off
    # their fused fast path, which needs nn.MultiheadAttention's packed weights
    _qkv_same_embed_dim = False
    in_proj_weight = None
    in_proj_bias = None

    @property
    def embed_dim(self) -> int:
        """The width the layer reads (its query input) and writes."""
        return int(self.q_proj.in_features)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> SplitAttention:
        """The same function as ``mha``, its weights copied into four Linear layers."""
        if mha.bias_k is not None or mha.bias_v is not None:
            raise UnsupportedLayerError(
                "an nn.MultiheadAttention built with add_bias_kv=True cannot be split: its "
                "learnt key/value biases have no place among four Linear layers"
            )
        e = mha.embed_dim
        bias = mha.in_proj_bias is not None
        split = cls(
            e,
            mha.num_heads,
            mha.head_dim,
            kdim=mha.kdim,
            vdim=mha.vdim,
            bias=bias,
            dropout=mha.dropout,
            batch_first=mha.batch_first,
            add_zero_attn=mha.add_zero_attn,
        )
        like = mha.out_proj.weight
        split.to(device=like.device, dtype=like.dtype)
        with torch.no_grad():
            if mha._qkv_same_embed_dim:
                weights = mha.in_proj_weight.chunk(3)
            else:
                weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
            projections = (split.q_proj, split.k_proj, split.v_proj)
            for lin, w in zip(projections, weights, strict=True):
                lin.weight.copy_(w)
            if bias:
                for lin, b in zip(projections, mha.in_proj_bias.chunk(3), strict=True):
                    lin.bias.copy_(b)
            split.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                split.out_proj.bias.copy_(mha.out_proj.bias)
        split.train(mha.training)
        return split

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        tgt, n = query.shape[:2]
        h, d = self.num_heads, self.head_dim
        # (L, N, inner) -> (N, H, L, D): the head reshape the graph engine reads
        q = self.q_proj(query).view(tgt, n, h, d).permute(1, 2, 0, 3)
        k = self.k_proj(key).view(key.shape[0], n, h, d).permute(1, 2, 0, 3)
        v = self.v_proj(value).view(value.shape[0], n, h, d).permute(1, 2, 0, 3)
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(n, h, 1, d)], dim=2)
            v = torch.cat([v, v.new_zeros(n, h, 1, d)], dim=2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, tgt, k.shape[2], q)
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = (q * d**-0.5) @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1)
            out = F.dropout(weights, p=p) @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.out_proj(out.permute(2, 0, 1, 3).reshape(tgt, n, h * d))
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out = out.squeeze(1)
            weights = None if weights is None else weights.squeeze(0)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _mask(
        self,
        attn_mask: torch.Tensor | None,
        key_padding_mask: torch.Tensor | None,
        is_causal: bool,
        tgt: int,
        src: int,
        like: torch.Tensor,
    ) -> torch.Tensor | None:
        """One additive float mask (N or 1, H or 1, L, S) from the masks given, or None."""
        n, h = like.shape[:2]
        if attn_mask is None and is_causal:
            attn_mask = torch.ones(tgt, src, dtype=torch.bool, device=like.device).triu(1)
        total = None
        if attn_mask is not None:
            m = _additive(attn_mask, like.dtype)
            m = m.view(n, h, tgt, -1) if m.dim() == 3 else m.view(1, 1, tgt, -1)
            total = m
        if key_padding_mask is not None:
            m = _additive(key_padding_mask, like.dtype).view(n, 1, 1, -1)
            total = m if total is None else total + m
        if total is not None and total.shape[-1] < src:  # the zero attention's extra key
            total = F.pad(total, (0, src - total.shape[-1]))
        return total


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True = masked out) as -inf/0, a float mask as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


def _attention_layers(model: nn.Module) -> Iterator[tuple[nn.Module, str, str]]:
    """(parent, child name, full name) of every ``nn.MultiheadAttention`` in ``model``."""
    for name, parent in model.named_modules():
        for child, m in parent._modules.items():  # named_children() yields a shared one once
            if isinstance(m, nn.MultiheadAttention):
                yield parent, child, f"{name}.{child}" if name else child


def split_attention(model: nn.Module) -> list[str]:
    """Replace every ``nn.MultiheadAttention`` of ``model`` by an equal :class:`SplitAttention`.

    Call it before the lottery starts (before :class:`~lotterytrim.LotteryTrimmer` or
    :func:`~lotterytrim.trim`) when the residual width should trim one feature at a time
    rather than one head at a time. The model computes the same function; its state dict
    names change (``q_proj.weight`` and so on instead of ``in_proj_weight``). Returns the names
    of the layers replaced. A layer that cannot be split raises before anything changes.
    """
    found = list(_attention_layers(model))
    splits: dict[int, SplitAttention] = {}  # a layer used in two places stays one layer
    for parent, child, name in found:
        mha = getattr(parent, child)
        if id(mha) in splits:
            continue
        try:
            splits[id(mha)] = SplitAttention.from_multihead(mha)
        except UnsupportedLayerError as err:
            raise UnsupportedLayerError(f"layer '{name}': {err}") from None
    for parent, child, _ in found:
        setattr(parent, child, splits[id(getattr(parent, child))])
    for m in model.modules():  # a nested-tensor encoder would read the packed weights
        if isinstance(m, nn.TransformerEncoder):
            m.use_nested_tensor = False
    return [name for _, _, name in found]

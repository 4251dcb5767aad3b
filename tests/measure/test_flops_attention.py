"""MACs of attention: scaled dot-product, and PyTorch's fused fast-path kernels, in closed form."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.measure.flops import count_macs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zoo_transformers import EncoderClassifier  # noqa: E402


def attention_macs(tokens_q: int, tokens_k: int, embed: int, heads: int) -> int:
    """Self/cross attention: 4 projections of width embed, then per head q.k and att.v (head
    size each) plus one operation per attention weight (scale/softmax)."""
    weights = tokens_q * tokens_k * heads
    projections = tokens_q * embed * embed * 2 + tokens_k * embed * embed * 2
    return projections + weights * (2 * (embed // heads) + 1)


def encoder_layer_macs(tokens: int, embed: int, heads: int, ff: int) -> int:
    """nn.TransformerEncoderLayer (post-norm, ReLU): attention, FFN, ReLU, 2 adds, 2 norms."""
    return (
        attention_macs(tokens, tokens, embed, heads)
        + 2 * tokens * embed * ff
        + tokens * ff
        + 2 * tokens * embed
        + 2 * 5 * tokens * embed
    )


def classifier_macs(model: EncoderClassifier, length: int) -> int:
    """EncoderClassifier at batch 1: embedding, positions, every layer, mean, head."""
    embed = model.embed.out_features
    total = length * model.embed.in_features * embed + length * embed
    for layer in model.encoder.layers:
        attn = layer.self_attn
        total += encoder_layer_macs(
            length, attn.embed_dim, attn.num_heads, layer.linear1.out_features
        )
    return total + length * embed + embed * model.head.out_features


class _Fused(nn.Module):
    """Calls nn.TransformerEncoderLayer's fused kernel directly, as its eval fast path does."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lay, attn = self.layer, self.layer.self_attn
        return torch._transformer_encoder_layer_fwd(
            x, attn.embed_dim, attn.num_heads, attn.in_proj_weight, attn.in_proj_bias,
            attn.out_proj.weight, attn.out_proj.bias, False, lay.norm_first, lay.norm1.eps,
            lay.norm1.weight, lay.norm1.bias, lay.norm2.weight, lay.norm2.bias,
            lay.linear1.weight, lay.linear1.bias, lay.linear2.weight, lay.linear2.bias,
            None, None,
        )  # fmt: skip


def test_fused_encoder_layer_kernel_matches_closed_form() -> None:
    layer = nn.TransformerEncoderLayer(64, 4, 192, dropout=0.0, batch_first=True).eval()
    got = count_macs(_Fused(layer), (torch.randn(2, 10, 64),))
    assert not got.uncounted
    assert got.total == 2 * encoder_layer_macs(10, 64, 4, 192)
    assert got.by_operator["multi_head_attention"] == 2 * attention_macs(10, 10, 64, 4)


class _Attend(nn.Module):
    """nn.MultiheadAttention on (query, memory): self-attention when both are the same."""

    def __init__(self) -> None:
        super().__init__()
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        b = a if b is None else b
        return self.mha(a, b, b, need_weights=False)[0]


def test_fused_self_attention_matches_closed_form_and_math_path() -> None:
    model, q = _Attend().eval(), torch.randn(1, 7, 32)
    fast = count_macs(model, (q,))
    assert "multi_head_attention" in fast.by_operator and not fast.uncounted
    assert fast.total == attention_macs(7, 7, 32, 4)
    model.train()  # training runs the math path: linear products and scaled_dot_product_attention
    slow = count_macs(model, (q,))
    assert "multi_head_attention" not in slow.by_operator
    assert "scaled_dot_product_attention" in slow.by_operator
    assert abs(slow.total - fast.total) <= 0.01 * fast.total


def test_cross_attention_math_path_matches_closed_form() -> None:
    got = count_macs(_Attend().eval(), (torch.randn(1, 7, 32), torch.randn(1, 5, 32)))
    want = attention_macs(7, 5, 32, 4)
    assert got.by_operator["scaled_dot_product_attention"] == 7 * 5 * 4 * (2 * 8 + 1)
    assert abs(got.total - want) <= 0.01 * want


def test_fast_and_math_paths_count_the_same_encoder() -> None:
    x = torch.randn(1, 10, 16)
    torch.manual_seed(0)
    fast = count_macs(EncoderClassifier().eval(), (x,))
    torch.manual_seed(0)
    slow = count_macs(EncoderClassifier(batch_first=False).eval(), (x,))
    assert "multi_head_attention" in fast.by_operator and not fast.uncounted
    want = classifier_macs(EncoderClassifier(), 10)
    for got in (fast.total, slow.total):
        assert abs(got - want) <= 0.01 * want, (got, want)


def test_trimmed_transformer_macs_match_closed_form() -> None:
    """After losing a head block and feed-forward units, the count follows the new shapes."""
    torch.manual_seed(0)
    model, x = EncoderClassifier().eval(), torch.randn(2, 10, 16)
    graph = TrimGraph(model, x)
    removal = {g.id: np.arange(1 if g.name == "embed" else 50) for g in graph.prunable_groups}
    graph.plan_for(removal).apply_to_model(model)
    assert model.encoder.layers[0].self_attn.num_heads == 3
    assert model.encoder.layers[0].linear1.out_features == 142
    rep_macs = lt.report(model, x[:1], latency=False).macs
    want = classifier_macs(model, 10)
    assert abs(rep_macs - want) <= 0.01 * want, (rep_macs, want)

"""nn.MultiheadAttention split into four Linear layers: the same function, a finer residual."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from helpers import masked_copy, randomize_norms
from torch import nn
from zoo_transformers import ConformerBlock, EncoderClassifier

import lotterytrim as lt
from lotterytrim.errors import UnsupportedLayerError

L, S, N, E, H = 6, 5, 3, 16, 4


def _inputs(batch_first: bool, kdim: int, vdim: int) -> tuple[torch.Tensor, ...]:
    def shaped(t: int, width: int) -> torch.Tensor:
        return torch.randn((N, t, width) if batch_first else (t, N, width))

    return shaped(L, E), shaped(S, kdim), shaped(S, vdim)


def _masks() -> list[dict[str, Any]]:
    padding = torch.zeros(N, S, dtype=torch.bool)
    padding[0, -2:] = True
    return [
        {},
        {"key_padding_mask": padding},
        {"attn_mask": torch.randn(L, S)},
        {"attn_mask": torch.randn(L, S) > 1.0},
        {"attn_mask": torch.randn(N * H, L, S), "key_padding_mask": padding.float() * -1e4},
    ]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(
    "options",
    [{}, {"kdim": 5, "vdim": 7}, {"add_zero_attn": True}, {"bias": False}],
    ids=["plain", "kdim-vdim", "zero-attn", "no-bias"],
)
def test_split_attention_computes_what_multihead_attention_computes(
    batch_first: bool, options: dict[str, Any]
) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H, batch_first=batch_first, **options).eval()
    split = lt.SplitAttention.from_multihead(mha).eval()
    q, k, v = _inputs(batch_first, options.get("kdim", E), options.get("vdim", E))
    for masks in _masks():
        for need_weights in (True, False):
            for average in (True, False):
                kwargs = dict(masks, need_weights=need_weights, average_attn_weights=average)
                want, want_w = mha(q, k, v, **kwargs)
                got, got_w = split(q, k, v, **kwargs)
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
                if need_weights:
                    torch.testing.assert_close(got_w, want_w, atol=1e-5, rtol=1e-5)
                else:
                    assert got_w is None and want_w is None


def test_split_attention_unbatched_and_causal() -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(E, H).eval()
    split = lt.SplitAttention.from_multihead(mha)
    x = torch.randn(L, E)  # unbatched
    torch.testing.assert_close(split(x, x, x)[0], mha(x, x, x)[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(split(x, x, x)[1], mha(x, x, x)[1], atol=1e-5, rtol=1e-5)
    x = torch.randn(L, N, E)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    want = mha(x, x, x, attn_mask=causal, is_causal=True, need_weights=False)[0]
    # the hint alone is enough: the split layer builds the causal mask itself
    got = split(x, x, x, is_causal=True, need_weights=False)[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_split_attention_replaces_every_layer_of_an_encoder_and_keeps_its_outputs() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, H, 32, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2).eval()  # nested tensors on: the fused path
    split = copy.deepcopy(encoder)
    assert lt.split_attention(split) == ["layers.0.self_attn", "layers.1.self_attn"]
    assert not any(isinstance(m, nn.MultiheadAttention) for m in split.modules())
    assert split.use_nested_tensor is False
    x = torch.randn(2, L, E)
    padding = torch.zeros(2, L, dtype=torch.bool)
    padding[1, -2:] = True
    with torch.no_grad():
        torch.testing.assert_close(split(x), encoder(x), atol=1e-5, rtol=1e-5)
        got = split(x, src_key_padding_mask=padding)
        want = encoder(x, src_key_padding_mask=padding)  # padded positions come back as zeros
    torch.testing.assert_close(got[~padding], want[~padding], atol=1e-5, rtol=1e-5)


def test_split_attention_keeps_a_decoder_layer_with_a_causal_mask() -> None:
    torch.manual_seed(0)
    decoder = nn.TransformerDecoderLayer(E, H, 32, dropout=0.0).eval()
    split = copy.deepcopy(decoder)
    assert lt.split_attention(split) == ["self_attn", "multihead_attn"]
    tgt, memory = torch.randn(L, N, E), torch.randn(S, N, E)
    causal = nn.Transformer.generate_square_subsequent_mask(L)
    with torch.no_grad():
        want = decoder(tgt, memory, tgt_mask=causal, tgt_is_causal=True)
        got = split(tgt, memory, tgt_mask=causal, tgt_is_causal=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_layer_used_twice_stays_one_layer() -> None:
    mha = nn.MultiheadAttention(E, H)
    model = nn.ModuleDict({"a": mha, "b": mha})
    lt.split_attention(model)
    assert model["a"] is model["b"] and isinstance(model["a"], lt.SplitAttention)


def test_a_layer_that_cannot_be_split_raises_and_changes_nothing() -> None:
    model = nn.ModuleDict(
        {"ok": nn.MultiheadAttention(E, H), "kv": nn.MultiheadAttention(E, H, add_bias_kv=True)}
    )
    with pytest.raises(UnsupportedLayerError, match="'kv'.*add_bias_kv"):
        lt.split_attention(model)
    assert all(isinstance(m, nn.MultiheadAttention) for m in model.values())


def _step_shares(model: nn.Module, x: torch.Tensor, steps: int = 4) -> list[lt.StepResult]:
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method="lrr")
    return [trimmer.step() for _ in range(steps)]


@pytest.mark.parametrize(
    "build, shape",
    [(EncoderClassifier, (2, 10, 16)), (ConformerBlock, (2, 10, 12))],
    ids=["encoder", "conformer"],
)
def test_a_split_transformer_holds_every_step_to_its_share(build: Any, shape: tuple) -> None:
    """With whole heads in the residual width, steps overshoot; split, each lands within 2
    points (the selection's tolerance) and the model still runs and trains."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    plain = randomize_norms(build(), 0).eval()
    split = copy.deepcopy(plain)
    lt.split_attention(split)
    with torch.no_grad():
        torch.testing.assert_close(split(x), plain(x), atol=1e-5, rtol=1e-5)
    misses = [abs(r.achieved - 0.3) for r in _step_shares(plain, x)]
    assert max(misses) > 0.02  # whole heads: the coarse units this option is for
    results = _step_shares(split, x)
    assert all(abs(r.achieved - 0.3) <= 0.02 for r in results), [r.achieved for r in results]
    assert all(r.shortfall is None for r in results)
    heads = [m.num_heads for m in split.modules() if isinstance(m, lt.SplitAttention)]
    assert heads and all(h >= 1 for h in heads)
    split.train()
    split(x).sum().backward()


def test_a_split_step_equals_the_masked_original() -> None:
    """Removing heads of a split layer is exact: the trimmed model equals the original with
    the removed q/k/v rows and output columns zeroed (fed through no LayerNorm)."""
    torch.manual_seed(0)
    attn = lt.SplitAttention(E, H, E // H, batch_first=True)

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.head = attn, nn.Linear(E, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.attn(x, x, x, need_weights=False)[0])

    model, x = Wrapped().eval(), torch.randn(2, L, E)
    original = copy.deepcopy(model)
    plan, _ = lt.trim(model, x, amount=0.4)
    assert model.attn.num_heads < H
    with torch.no_grad():
        torch.testing.assert_close(model(x), masked_copy(original, plan)(x), atol=1e-5, rtol=1e-5)


def test_the_shortfall_of_a_whole_head_step_points_to_split_attention() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 10, 16)
    results = _step_shares(randomize_norms(EncoderClassifier(), 0).eval(), x)
    coarse = [r.shortfall for r in results if r.shortfall and "too coarse" in r.shortfall]
    assert coarse and all("lt.split_attention" in s for s in coarse if "'embed'" in s)
    assert any("'embed'" in s for s in coarse)


def test_a_trimmed_split_model_saves_and_loads(tmp_path: Any) -> None:
    """The builder splits, the plan resizes the split layers and sets their head counts."""

    def build() -> nn.Module:
        torch.manual_seed(0)
        model = EncoderClassifier()
        lt.split_attention(model)
        return model

    model, x = build().eval(), torch.randn(2, 10, 16)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method="lrr")
    for _ in range(3):
        trimmer.step()
    lt.save(model, tmp_path / "m.safetensors", trimmer)
    loaded = lt.load(tmp_path / "m.safetensors", build).eval()
    heads = [m.num_heads for m in loaded.modules() if isinstance(m, lt.SplitAttention)]
    assert heads == [m.num_heads for m in model.modules() if isinstance(m, lt.SplitAttention)]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_the_hint_also_names_subclasses_of_multihead_attention() -> None:
    class Gated(nn.MultiheadAttention):  # a user's subclass: the same coarse heads
        pass

    torch.manual_seed(0)
    model = randomize_norms(EncoderClassifier(), 0).eval()
    for layer in model.encoder.layers:
        plain = layer.self_attn
        layer.self_attn = Gated(plain.embed_dim, plain.num_heads, batch_first=True)
        layer.self_attn.load_state_dict(plain.state_dict())
    results = _step_shares(model, torch.randn(2, 10, 16))
    coarse = [r.shortfall for r in results if r.shortfall and "'embed'" in r.shortfall]
    assert coarse and all("lt.split_attention" in s for s in coarse)

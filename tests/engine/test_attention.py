"""Attention heads as units, module-owned parameters along the embedding, fast-path runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from helpers import masked_copy, randomize_norms
from torch import nn
from zoo_patterns import MHAOnly
from zoo_transformers import EncoderClassifier, SelfAttention, SpectrogramViT, SpeechEncoder

import lotterytrim as lt
from lotterytrim.calls import run_model
from lotterytrim.engine.graph import TrimGraph


def _group(graph: TrimGraph, name: str) -> Any:
    return next(g for g in graph.groups if g.name == name)


def _remove(model: nn.Module, x: Any, group: str, units: list[int]) -> tuple[nn.Module, Any]:
    """Remove the given units of one group; returns the masked original and the plan."""
    original = copy.deepcopy(model)
    graph = TrimGraph(model, x)
    plan = graph.plan_for({_group(graph, group).id: torch.tensor(units).numpy()})
    plan.apply_to_model(model)
    return masked_copy(original, plan), plan


def _eval(model: nn.Module, x: Any) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return run_model(model, x)


def test_multihead_attention_loses_whole_heads_exactly() -> None:
    """One nn.MultiheadAttention head goes with its embedding block; outputs equal the masked."""
    torch.manual_seed(0)
    model, x = MHAOnly().eval(), torch.randn(2, 5, 6)
    graph = TrimGraph(model, x)
    embed = _group(graph, "embed")
    assert embed.protected is None and embed.n_units == 3  # one unit per head of 8 channels
    masked, plan = _remove(model, x, "embed", [1])
    mha = model.mha
    assert (mha.embed_dim, mha.num_heads, mha.head_dim) == (16, 2, 8)
    assert mha.in_proj_weight.shape == (48, 16) and mha.out_proj.weight.shape == (16, 16)
    assert (mha.out_proj.in_features, mha.out_proj.out_features) == (16, 16)
    assert plan.kept_indices("embed.weight", 0).tolist() == [*range(8), *range(16, 24)]
    q_rows = plan.kept_indices("mha.in_proj_weight", 0).tolist()
    assert q_rows == [i for i in range(72) if i % 24 not in range(8, 16)]
    torch.testing.assert_close(_eval(model, x), _eval(masked, x), atol=1e-5, rtol=1e-5)
    model.train()
    assert run_model(model, x).shape == (2, 5, 2)  # the math path (training) runs as well


def test_fast_path_encoder_runs_after_losing_a_head() -> None:
    """nn.TransformerEncoderLayer's fused eval path accepts the trimmed attention."""
    torch.manual_seed(0)
    model, x = EncoderClassifier().eval(), torch.randn(2, 10, 16)
    _remove(model, x, "embed", [0, 3])
    for layer in model.encoder.layers:
        assert (layer.self_attn.embed_dim, layer.self_attn.num_heads) == (32, 2)
        assert layer.linear1.in_features == 32 and layer.norm1.normalized_shape == (32,)
    assert model.pos.shape == (1, 10, 32)
    assert _eval(model, x).shape == (2, 4)


def test_separate_qkv_heads_are_units_and_attributes_follow() -> None:
    """q/k/v rows and the output columns of a head go together; num_heads follows, exactly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), SelfAttention(16, 4), nn.Linear(16, 3)).eval()
    x = torch.randn(2, 5, 8)
    graph = TrimGraph(model, x)
    heads = _group(graph, "1.query")
    assert heads.n_units == 4 and sorted(heads.layers) == ["1.key", "1.out", "1.query", "1.value"]
    masked, plan = _remove(model, x, "1.query", [2])
    attn = model[1]
    assert (attn.num_heads, attn.head_dim, attn.all_head_size) == (3, 4, 12)
    for name in ("query", "key", "value"):
        assert plan.kept_indices(f"1.{name}.weight", 0).tolist() == [*range(8), 12, 13, 14, 15]
    assert plan.kept_indices("1.out.weight", 1).tolist() == [*range(8), 12, 13, 14, 15]
    torch.testing.assert_close(_eval(model, x), _eval(masked, x), atol=1e-5, rtol=1e-5)


def test_head_score_sums_its_channels_and_averages_q_k_v() -> None:
    """Magnitude of a head: per layer the sum of its channels' L1 fan-in, mean over q, k, v."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), SelfAttention(16, 4), nn.Linear(16, 3)).eval()
    graph = TrimGraph(model, torch.randn(2, 5, 8))
    scores = lt.criteria.get_criterion("magnitude").score(graph)[_group(graph, "1.query").id]
    attn = model[1]
    per_layer = [
        lin.weight.detach().abs().sum(1).reshape(4, 4).sum(1).double()
        for lin in (attn.query, attn.key, attn.value)
    ]
    torch.testing.assert_close(scores, torch.stack(per_layer).mean(0))


def test_vit_class_token_positions_and_layer_scale_follow_the_embedding() -> None:
    """Module-owned parameters along the embedding are sliced with it, bit for bit."""
    torch.manual_seed(0)
    model, x = randomize_norms(SpectrogramViT()).eval(), torch.randn(2, 1, 16, 16)
    original = copy.deepcopy(model)
    _, plan = _remove(model, x, "patch", [0, 5, 31])
    keep = plan.kept_indices("patch.weight", 0)
    assert keep.size == 29
    for name in ("cls_token", "pos_embed", "blocks.0.gamma", "blocks.1.gamma"):
        got, before = model.get_parameter(name), original.get_parameter(name)
        assert torch.equal(got, before.index_select(before.dim() - 1, torch.as_tensor(keep)))
    assert _eval(model, x).shape == (2, 5)


def test_vit_trims_without_on_unsupported() -> None:
    """Class token and positions no longer stop a default trim."""
    torch.manual_seed(0)
    model, x = SpectrogramViT().eval(), torch.randn(2, 1, 16, 16)
    _, res = lt.trim(model, x, "magnitude", 0.3)
    assert res.achieved >= 0.25 and set(res.protected) == {"head"}


def test_mask_embedding_sliced_when_used_and_protected_when_not() -> None:
    """The mask embedding follows the embedding when traced; unseen, its width is protected."""
    torch.manual_seed(0)
    wav, mask = torch.randn(2, 1, 400), torch.rand(2, 39) < 0.3
    used = TrimGraph(SpeechEncoder().eval(), {"wav": wav, "mask": mask})
    proj = _group(used, "projection")
    assert proj.protected is None
    assert any(e.tensor == "masked_spec_embed" for e in proj.entries)
    unseen = TrimGraph(SpeechEncoder().eval(), {"wav": wav})
    why = _group(unseen, "projection").protected
    assert why is not None and "'masked_spec_embed' (32,) is not used" in why
    model = SpeechEncoder().eval()
    _, res = lt.trim(model, {"wav": wav}, "magnitude", 0.3)
    assert "masked_spec_embed" in res.protected["projection"]
    assert model.masked_spec_embed.shape == (32,) and model.projection.out_features == 32


def test_parameter_concatenated_along_its_width_is_reported() -> None:
    """A learned channel block concatenated along the width: coupling unknown, named."""

    class Extra(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 6)
            self.extra = nn.Parameter(torch.randn(1, 1, 6))
            self.b = nn.Linear(12, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.b(torch.cat([h, self.extra.expand(*h.shape[:2], -1)], dim=-1))

    model, x = Extra(), torch.randn(2, 3, 4)
    with pytest.raises(
        lt.errors.UnsupportedLayerError, match=r"owns extra \(used by a concatenation"
    ):
        lt.trim(model, x, "magnitude", 0.3)
    _, res = lt.trim(model, x, "magnitude", 0.3, on_unsupported="protect")
    assert model.extra.shape == (1, 1, 6)
    assert run_model(model, x).shape == (2, 3, 2)
    assert all(why for why in res.protected.values())


def test_a_file_whose_plan_leaves_out_the_head_count_is_refused(tmp_path) -> None:
    """q/k/v sliced to 3 heads but num_heads left at 4: the file must not load silently."""
    import json

    from lotterytrim.storage.io import read_tensors, write_tensors

    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), SelfAttention(16, 4), nn.Linear(16, 3)).eval()

    model, x = build(), torch.randn(2, 5, 8)
    _, plan = _remove(model, x, "1.query", [2])
    path = tmp_path / "heads.lt"
    lt.save(model, path, plan=plan)
    assert lt.load(path, build)[1].num_heads == 3
    tensors, meta = read_tensors(path)
    header = json.loads(meta["lotterytrim"])
    header["plan"]["attributes"].pop("1")
    write_tensors(path, tensors, {"lotterytrim": json.dumps(header)})
    with pytest.raises(lt.errors.LoadError, match="num_heads=4 of attention module '1'"):
        lt.load(path, build)

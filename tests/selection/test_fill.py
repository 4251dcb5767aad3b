"""The parameter budget on transformers: each step removes its share, or says why not."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import masked_copy, outputs, randomize_norms
from torch import nn
from zoo_transformers import ConformerBlock, EncoderClassifier, SpectrogramViT

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.selection.safeguards import residual_groups

AMOUNT = 0.3


def _build(make: Any) -> nn.Module:
    """A freshly initialised model with non-trivial LayerNorm scales."""
    torch.manual_seed(0)
    return randomize_norms(make(), 0).eval()


def _steps(model: nn.Module, x: torch.Tensor, n: int, **options: Any) -> list[lt.StepResult]:
    """``n`` lottery steps of ``AMOUNT`` that keep the trained values."""
    trimmer = lt.LotteryTrimmer(model, x, amount=AMOUNT, method="lrr", **options)
    return [trimmer.step() for _ in range(n)]


VIT_X = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
SEQ_X = torch.randn(2, 10, 16, generator=torch.Generator().manual_seed(1))
CONFORMER_X = torch.randn(2, 10, 12, generator=torch.Generator().manual_seed(1))


def test_vit_share_holds_within_two_points_for_four_steps() -> None:
    results = _steps(_build(SpectrogramViT), VIT_X, 4)
    for r in results:
        assert abs(r.achieved - AMOUNT) <= 0.02, [x.achieved for x in results]
        assert r.shortfall is None


def test_wide_encoder_share_holds_within_two_points_for_three_steps() -> None:
    # one residual unit (a head of 16 of 64 features) costs about a fifth of this model:
    # the steps are filled with feed-forward units instead of overshooting with it
    model = _build(lambda: EncoderClassifier(ff=768))
    results = _steps(model, SEQ_X, 3, safeguards=lt.Safeguards(keep_floor=0.05))
    assert [abs(r.achieved - AMOUNT) <= 0.02 for r in results] == [True] * 3, [
        r.achieved for r in results
    ]
    assert model.embed.out_features == 64


def test_conformer_share_holds_for_two_steps_with_the_residual_ranked() -> None:
    results = _steps(_build(ConformerBlock), CONFORMER_X, 2, safeguards={"residual": "rank"})
    assert [round(abs(r.achieved - AMOUNT), 2) <= 0.02 for r in results] == [True, True]


@pytest.mark.parametrize("residual", ["rank", "last", "keep"])
@pytest.mark.parametrize(
    ("make", "x"),
    [(EncoderClassifier, SEQ_X), (ConformerBlock, CONFORMER_X), (SpectrogramViT, VIT_X)],
    ids=["encoder", "conformer", "vit"],
)
def test_a_step_off_its_share_says_why(make: Any, x: torch.Tensor, residual: str) -> None:
    # overshoot counts: a step more than 2 points off the share carries a reason
    for r in _steps(_build(make), x, 4, safeguards={"residual": residual}):
        if r.shortfall is None:
            assert abs(r.achieved - AMOUNT) <= 0.02, r.achieved
        else:
            assert f"instead of {AMOUNT:.1%}" in r.shortfall
            assert r.shortfall.partition(": ")[2], r.shortfall  # a reason follows


def test_everything_at_the_floor_gives_a_shortfall_with_the_reason() -> None:
    results = _steps(_build(EncoderClassifier), SEQ_X, 3, safeguards={"residual": "keep"})
    last = results[-1]
    assert last.achieved == 0.0 and last.params_after == last.params_before
    assert last.shortfall is not None
    assert "every removable unit is gone" in last.shortfall
    assert "keep_floor" in last.shortfall and "residual='keep'" in last.shortfall


def test_coarse_residual_units_are_named_when_they_decide_the_miss() -> None:
    results = _steps(_build(EncoderClassifier), SEQ_X, 2)
    assert results[1].shortfall is not None
    assert "too coarse" in results[1].shortfall and "'embed'" in results[1].shortfall


def test_keep_protects_the_residual_width_and_stays_exact() -> None:
    model = _build(EncoderClassifier)
    original = _build(EncoderClassifier)
    trimmer = lt.LotteryTrimmer(
        model, SEQ_X, amount=AMOUNT, method="lrr", safeguards={"residual": "keep"}
    )
    for _ in range(3):
        trimmer.step()
    assert model.embed.out_features == 64
    assert all(layer.self_attn.num_heads == 4 for layer in model.encoder.layers)
    assert all(layer.linear1.out_features == 48 for layer in model.encoder.layers)  # floor
    want = outputs(masked_copy(original, trimmer.plan), SEQ_X)
    torch.testing.assert_close(outputs(model, SEQ_X), want, atol=1e-5, rtol=1e-5)


def test_default_cuts_feed_forward_before_the_residual_width() -> None:
    model = _build(EncoderClassifier)
    first = _steps(model, SEQ_X, 1)[0]
    assert model.embed.out_features == 64
    assert set(first.removed_units) == {"encoder.layers.0.linear1", "encoder.layers.1.linear1"}


def test_ranked_residual_width_goes_first_under_per_parameter_ranking() -> None:
    model = _build(ConformerBlock)
    _steps(model, CONFORMER_X, 1, safeguards={"residual": "rank"})
    assert model.inp.out_features < 32


def test_residual_groups_are_normalised_streams_with_several_writers() -> None:
    graph = TrimGraph(_build(EncoderClassifier), SEQ_X)
    assert {graph.groups[g].name for g in residual_groups(graph)} == {"embed"}
    conv = nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Conv1d(8, 4, 3))
    assert residual_groups(TrimGraph(conv, torch.randn(2, 1, 16))) == frozenset()


def test_residual_option_is_checked_and_coerced() -> None:
    with pytest.raises(ValueError, match="residual"):
        lt.Safeguards(residual="sometimes")
    assert lt.Safeguards.coerce({"residual": "keep"}).residual == "keep"
    assert lt.Safeguards.off().residual == "rank"


def test_a_short_step_names_the_groups_its_step_cap_stopped() -> None:
    # the second step may take only half of each feed-forward layer's units; the rest of the
    # budget would need a head of the residual width, which costs more than the whole step
    results = _steps(_build(EncoderClassifier), SEQ_X, 2)
    why = results[1].shortfall
    assert why is not None and results[1].achieved < AMOUNT - 0.02
    assert "step_cap=0.5 stopped" in why
    assert "'encoder.layers.0.linear1'" in why and "'encoder.layers.1.linear1'" in why

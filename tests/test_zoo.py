"""Real-world audio architectures: every one trims to a working, equivalent, smaller model."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
from helpers import masked_copy, randomize_norms
from torch import nn
from torch.nn.utils import parametrize
from zoo_models import TRANSFORMERS, ZOO, ZooCase, clone

import lotterytrim as lt
from lotterytrim.calls import output_signature, run_model, tensor_leaves
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.plan import TrimPlan

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")

AMOUNT = 0.3
BY_NAME = {c.name: c for c in ZOO}


def _build(case: ZooCase, seed: int = 0) -> tuple[nn.Module, Any]:
    """A freshly initialised zoo model with non-trivial norm statistics, and its inputs."""
    torch.manual_seed(seed)
    return randomize_norms(case.build(), seed).eval(), case.inputs()


def _run(model: nn.Module, x: Any) -> Any:
    """Evaluate the model without gradients."""
    model.eval()
    with torch.no_grad():
        return run_model(model, x)


def _masked_reference(original: nn.Module, plan: TrimPlan) -> nn.Module:
    """The original with removed indices zeroed; a weight-normed row with g = 0 stays finite."""
    masked = masked_copy(clone(original), plan)
    with torch.no_grad():
        for name, t in masked.named_parameters():
            if name.endswith(("original1", "weight_v")):
                dead = t.flatten(1).abs().sum(1) == 0
                t[dead] = 1.0  # its scale g is zero, so the row still computes zero
    return masked


@functools.cache
def _trim(case: ZooCase, criterion: str) -> tuple[nn.Module, nn.Module, Any, TrimPlan, Any]:
    """Trim one zoo model (once per session); returns trimmed, original, inputs, plan, result."""
    model, x = _build(case)
    original = clone(model)
    data = [(x, None)] if criterion == "activation" else None
    plan, res = lt.trim(model, x, criterion, AMOUNT, data=data, on_unsupported="protect")
    return model, original, x, plan, res


@pytest.mark.parametrize("criterion", ["magnitude", "activation"])
@pytest.mark.parametrize("case", ZOO, ids=[c.name for c in ZOO])
def test_zoo_model_trims_to_working_model(case: ZooCase, criterion: str) -> None:
    """Output structure kept, budget met or explained, and trimmed == masked original."""
    model, original, x, plan, res = _trim(case, criterion)
    assert output_signature(_run(model, x)) == output_signature(_run(original, x))
    assert res.params_after == sum(p.numel() for p in model.parameters())
    graph = TrimGraph(clone(original), x, on_unsupported="protect")
    tol = max(0.02, max(g.unit_params.max() for g in graph.prunable_groups) / graph.total_params)
    if res.shortfall is None:
        assert abs(res.achieved - AMOUNT) <= tol + 1e-9, (res.achieved, tol)
    else:
        assert res.achieved < AMOUNT and "instead of" in res.shortfall
    assert all(reason for reason in res.protected.values())
    if not case.equivalent:
        return  # a norm across channels (LayerNorm) renormalises over the surviving units
    got = tensor_leaves(_run(model, x))
    want = tensor_leaves(_run(_masked_reference(original, plan), x))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_most_of_the_zoo_loses_a_quarter_of_its_parameters() -> None:
    """All but two architectures lose 25% of their parameters in one 30% step."""
    achieved = {c.name: _trim(c, "magnitude")[4].achieved for c in ZOO}
    assert len(ZOO) >= 17
    assert sum(a >= 0.25 for a in achieved.values()) >= len(ZOO) - 2, achieved


def test_transformers_lose_a_quarter_of_their_parameters() -> None:
    """Every transformer of the zoo loses at least 25% of its parameters in one 30% step."""
    for case in ZOO:
        if case.name in TRANSFORMERS:
            assert _trim(case, "magnitude")[4].achieved >= 0.25, case.name


def test_weight_norm_keeps_both_styles_and_slices_g_and_v() -> None:
    """Both weight-norm APIs keep their reparametrisation, with g and v sliced together."""
    model, *_ = _trim(BY_NAME["tcn_weight_norm"], "magnitude")
    shrunk = 0
    for block in model.blocks:
        for conv in (block.c1, block.c2):
            if parametrize.is_parametrized(conv, "weight"):
                g = conv.parametrizations.weight.original0
                v = conv.parametrizations.weight.original1
            else:
                g, v = conv.weight_g, conv.weight_v
                assert "weight" not in conv._parameters
            assert g.shape[0] == v.shape[0] == conv.out_channels
            assert v.shape[1] == conv.in_channels
            assert conv.weight.shape == v.shape
            shrunk += conv.out_channels < 16
    assert shrunk > 0, "some weight-normed conv should have lost channels"


def test_wavenet_couples_gate_halves_and_every_skip() -> None:
    """Chunked gate halves go together; every residual and skip branch keeps one width."""
    model, *_ = _trim(BY_NAME["wavenet"], "magnitude")
    assert len({conv.out_channels for conv in model.skip}) == 1
    assert len({conv.out_channels for conv in model.res}) == 1
    assert model.inp.out_channels == model.res[0].out_channels
    for dil, res in zip(model.dil, model.res, strict=True):
        assert dil.out_channels == 2 * res.in_channels


def test_wavenet_unused_last_residual_does_not_block_trimming() -> None:
    """The last layer's residual sum feeds nothing, yet every gate group stays trimmable."""
    model, _, x, _, res = _trim(BY_NAME["wavenet"], "magnitude")
    assert set(res.protected) == {"out"}
    assert model.res[-1].in_channels == model.dil[-1].out_channels // 2


def test_wavenet_gate_pairs_are_removed_together() -> None:
    """A removed tanh channel always takes its sigmoid partner with it."""
    _, original, _, plan, _ = _trim(BY_NAME["wavenet"], "magnitude")
    for i, conv in enumerate(original.dil):
        half = conv.out_channels // 2
        keep = plan.kept_indices(f"dil.{i}.weight", 0)
        kept = set(keep.tolist())
        assert all((k + half in kept) for k in keep if k < half)
        assert all((k - half in kept) for k in keep if k >= half)


def test_recurrent_layers_trim_in_every_position() -> None:
    """GRU after convs, a stacked biLSTM after an embedding, and an LSTM between convs shrink."""
    for name, attr in [("crnn", "gru"), ("lstm_tagger", "lstm"), ("conv_lstm_linear", "lstm")]:
        model, original, *_ = _trim(BY_NAME[name], "magnitude")
        before, after = getattr(original, attr), getattr(model, attr)
        assert after.hidden_size < before.hidden_size or after.input_size < before.input_size


def test_width_attribute_breakage_is_protected_by_name() -> None:
    """A width stored as an attribute breaks the model; its group is protected, with the reason."""
    model, _, x, _, res = _trim(BY_NAME["width_attribute"], "magnitude")
    assert "proj" in res.protected
    assert "group 'proj'" in res.protected["proj"]
    assert "breaks the model" in res.protected["proj"]
    assert model.proj.out_channels == 16
    assert _run(model, x).shape == (2, 4)


def test_hard_coded_head_split_is_protected_by_name() -> None:
    """A fused qkv split with a hard-coded head count is caught by verification, not broken."""
    model, _, _, _, res = _trim(BY_NAME["transformer_block"], "magnitude")
    assert "hand.qkv" in res.protected and "breaks the model" in res.protected["hand.qkv"]
    assert model.hand.qkv.out_features == 48
    assert model.ff1.out_features < 40


class _EmbeddingFirst(lt.criteria.Criterion):
    """Scores the residual-stream group lowest, so a step must try to remove its heads."""

    name = "embedding_first"

    def score(self, graph: TrimGraph, data: Any = None) -> dict[int, torch.Tensor]:
        return {
            g.id: torch.arange(g.n_units, dtype=torch.float64) + (0.0 if g.name == "embed" else 1e6)
            for g in graph.prunable_groups
        }


def test_embedding_heads_blocked_by_a_hard_coded_split_are_protected() -> None:
    """Removing an nn.MultiheadAttention head block breaks the hand attention: reported by name."""
    case = BY_NAME["transformer_block"]
    model, x = _build(case)
    graph = TrimGraph(model, x)
    embed = next(g for g in graph.groups if g.name == "embed")
    assert embed.protected is None and embed.n_units == 4  # one unit per head of mha
    _, res = lt.trim(model, x, _EmbeddingFirst(), AMOUNT, graph=graph)
    assert "breaks the model" in res.protected["embed"]
    assert model.mha.embed_dim == 16 and model.mha.num_heads == 4
    assert output_signature(_run(model, x)) == ("tensor", (2, 6, 3))


def test_dataclass_and_tuple_outputs_keep_their_structure() -> None:
    """Multiple inputs, tuple outputs and dataclass outputs survive trimming unchanged in form."""
    for name in ("multi_input_tuple", "dataclass_output", "ddsp_decoder"):
        model, original, x, _, res = _trim(BY_NAME[name], "magnitude")
        assert res.achieved > 0.2
        assert output_signature(_run(model, x)) == output_signature(_run(original, x))


def test_kept_indices_are_sorted_unique() -> None:
    """Plans on the zoo keep strictly increasing indices (no duplicates after coupling)."""
    _, _, _, plan, _ = _trim(BY_NAME["crnn"], "magnitude")
    for name in plan.keep:
        for d, k in enumerate(plan.keep[name]):
            if k is not None:
                arr = plan.kept_indices(name, d)
                assert np.all(np.diff(arr) > 0)

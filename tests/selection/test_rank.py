"""Selection: scopes, normalisations, min_units and the exact parameter budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lotterytrim.criteria import Magnitude
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.options import TrimOptions
from lotterytrim.selection.rank import normalize_scores, select_units


def _mlp(widths=(6, 30, 10, 2)) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def test_local_scope_takes_the_same_share_of_each_group():
    graph = TrimGraph(_mlp((6, 40, 20, 2)), torch.randn(2, 6))
    sel = select_units(graph, Magnitude().score(graph), 0.3, scope="local", safeguards=False)
    shares = [sel.removal[g.id].size / g.n_units for g in graph.prunable_groups]
    assert max(shares) - min(shares) <= 0.05 + 1e-9


def test_global_scope_can_empty_one_layer_more_than_another():
    model = _mlp((6, 40, 20, 2))
    with torch.no_grad():
        model[0].weight.mul_(100.0)  # layer 0 units look important everywhere
    graph = TrimGraph(model, torch.randn(2, 6))
    sel = select_units(graph, Magnitude().score(graph), 0.3, normalize="none", safeguards=False)
    assert 0 not in sel.removal or sel.removal[0].size < sel.removal[1].size


@pytest.mark.parametrize("how", ["none", "max", "l2", "mean", "fan_in"])
def test_normalisations(how):
    graph = TrimGraph(_mlp(), torch.randn(2, 6))
    g = graph.prunable_groups[0]
    s = np.arange(1, g.n_units + 1, dtype=np.float64)
    out = normalize_scores(s, g, how)
    expected = {
        "none": s,
        "max": s / s.max(),
        "l2": s / np.sqrt((s**2).sum()),
        "mean": s / s.mean(),
        "fan_in": s / g.unit_params,
    }[how]
    assert np.allclose(out, expected)
    sel = select_units(graph, Magnitude().score(graph), 0.3, normalize=how, safeguards=False)
    assert abs(sel.achieved - 0.3) < 0.05


def test_min_units_and_infeasible_budget_reports_why():
    graph = TrimGraph(_mlp((6, 8, 8, 2)), torch.randn(2, 6))
    sel = select_units(graph, Magnitude().score(graph), 0.95, min_units=3, safeguards=False)
    for g in graph.prunable_groups:
        assert g.n_units - sel.removal.get(g.id, np.zeros(0)).size >= 3
    assert sel.reason is not None and "min_units=3" in sel.reason
    assert sel.achieved < 0.95


def test_exact_count_matches_real_model():
    model = _mlp((6, 30, 10, 2))
    graph = TrimGraph(model, torch.randn(2, 6))
    sel = select_units(graph, Magnitude().score(graph), 0.4, safeguards=False)
    graph.plan_for(sel.removal).apply_to_model(model)
    assert sum(p.numel() for p in model.parameters()) == sel.params_after


def test_bad_scores_are_rejected():
    graph = TrimGraph(_mlp(), torch.randn(2, 6))
    g = graph.prunable_groups[0]
    with pytest.raises(ValueError, match="scores for group"):
        select_units(graph, {g.id: torch.ones(g.n_units + 1)}, 0.3)
    with pytest.raises(ValueError, match="non-finite"):
        select_units(graph, {g.id: torch.full((g.n_units,), float("nan"))}, 0.3)


def test_without_options_selection_uses_the_default_safeguards():
    graph = TrimGraph(_mlp((6, 40, 20, 2)), torch.randn(2, 6))
    scores = Magnitude().score(graph)
    guarded = select_units(graph, scores, 0.8)
    same = select_units(graph, scores, 0.8, TrimOptions())
    assert {g: r.tolist() for g, r in guarded.removal.items()} == {
        g: r.tolist() for g, r in same.removal.items()
    }
    assert guarded.held  # the step cap held layers back
    plain = select_units(graph, scores, 0.8, safeguards=False)
    assert not plain.held and plain.achieved > guarded.achieved

"""Criteria give the scores their definitions promise, and users can write their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.criteria import (
    Activation,
    BatchNorm,
    Gradient,
    Information,
    Magnitude,
    Random,
    Taylor,
)
from lotterytrim.engine.graph import TrimGraph


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _group(graph: TrimGraph, name: str):
    return next(g for g in graph.groups if g.name == name)


def test_magnitude_is_l1_of_fan_in():
    model = _mlp()
    graph = TrimGraph(model, torch.randn(2, 4))
    s = Magnitude().score(graph)[_group(graph, "0").id]
    assert torch.allclose(s, model[0].weight.detach().abs().sum(1).double())


def test_magnitude_conv_and_gru():
    conv = nn.Sequential(nn.Conv1d(2, 5, 3), nn.ReLU(), nn.Conv1d(5, 2, 1))
    graph = TrimGraph(conv, torch.randn(1, 2, 8))
    s = Magnitude().score(graph)[_group(graph, "0").id]
    assert torch.allclose(s, conv[0].weight.detach().abs().sum((1, 2)).double())

    class G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(3, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.gru(x)[0])

    m = G()
    graph = TrimGraph(m, torch.randn(1, 5, 3))
    s = Magnitude().score(graph)[_group(graph, "gru").id]
    w_ih, w_hh = m.gru.weight_ih_l0.detach().abs(), m.gru.weight_hh_l0.detach().abs()
    expected = [
        w_ih[[u, u + 4, u + 8]].sum() + w_hh[[u, u + 4, u + 8]].sum() + w_hh[:, u].sum()
        for u in range(4)
    ]
    assert torch.allclose(s, torch.stack(expected).double())


def test_batchnorm_uses_gamma():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Conv1d(4, 1, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -2.0, 0.1, 1.0]))
    graph = TrimGraph(model, torch.randn(2, 1, 9))
    s = BatchNorm().score(graph)[_group(graph, "0").id]
    assert torch.allclose(s, torch.tensor([0.5, 2.0, 0.1, 1.0], dtype=torch.float64))


def test_activation_sums_abs_outputs_over_all_data():
    model = _mlp()
    xs = [torch.randn(3, 4) for _ in range(4)]
    graph = TrimGraph(model, xs[0])
    s = Activation().score(graph, data=xs)[_group(graph, "0").id]
    with torch.no_grad():
        expected = sum(model[0](x).abs().sum(0) for x in xs).double()
    assert torch.allclose(s, expected)
    s2 = Activation(max_batches=2).score(graph, data=xs)[_group(graph, "0").id]
    assert torch.all(s2 < s)


def test_gradient_and_taylor_match_autograd_and_leave_grads():
    model = _mlp()
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    graph = TrimGraph(model, x)
    g = Gradient().score(graph, data=[(x, y)])[_group(graph, "0").id]
    t = Taylor().score(graph, data=[(x, y)])[_group(graph, "0").id]
    loss = nn.functional.cross_entropy(model(x), y)
    (gw,) = torch.autograd.grad(loss, [model[0].weight])
    assert torch.allclose(g, gw.abs().sum(1).double())
    assert torch.allclose(t, (gw * model[0].weight).abs().sum(1).double())
    assert model[0].weight.grad is None


def _passthrough_mlp() -> nn.Module:
    """Two inputs, two hidden units that copy them (then ReLU), two outputs."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    return model


def test_information_prefers_informative_units():
    model = _passthrough_mlp()
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (400,), generator=gen)
    x = torch.stack(
        [y.float() * 2 + 0.1 * torch.randn(400, generator=gen), torch.randn(400, generator=gen)], 1
    )
    graph = TrimGraph(model, x[:2])
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 400, 50)]
    s = Information().score(graph, data=batches)[_group(graph, "0").id]
    assert s[0] > 0.5 and s[1] < 0.1
    with pytest.raises(lt.errors.CriterionError, match="one-shot generator"):
        Information().score(graph, data=(b for b in batches))
    nan = [(torch.full_like(xb, float("nan")), yb) for xb, yb in batches]
    with pytest.raises(lt.errors.CriterionError, match="layer '0' gave non-finite activations"):
        Information().score(graph, data=nan)


def test_information_per_position_pairs_each_frame_with_its_class():
    # a sequence model: unit 0 copies the frame's class, unit 1 is noise; per example the class
    # averages out over frames, so only the per-position estimate can tell them apart
    model = _passthrough_mlp()
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (8, 50), generator=gen)
    noise = torch.randn(8, 50, generator=gen)
    x = torch.stack([y.float() * 2 + 0.1 * torch.randn(8, 50, generator=gen), noise], -1)
    graph = TrimGraph(model, x[:2])
    batches = [(x[i : i + 2], y[i : i + 2]) for i in range(0, 8, 2)]
    gid = _group(graph, "0").id
    s = Information(positions=True).score(graph, data=batches)[gid]
    assert s[0] > 0.5 and s[1] < 0.05
    # the per-example estimate cannot use frame classes at all
    with pytest.raises(lt.errors.CriterionError, match=r"integer targets of shape \(batch"):
        Information(positions=True).score(graph, data=[(x, y.float())])
    # a layer with another number of positions than the target is named
    short = [(xb, yb[:, :10]) for xb, yb in batches]
    with pytest.raises(lt.errors.CriterionError, match="layer '0' has 50 positions"):
        Information(positions=True).score(graph, data=short)


def test_random_is_seeded():
    graph = TrimGraph(_mlp(), torch.randn(2, 4))
    a = Random(seed=3).score(graph)
    b = Random(seed=3).score(graph)
    c = Random(seed=4).score(graph)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_user_layer_criterion():
    class LastChannelsFirst(lt.criteria.LayerCriterion):
        name = "index"

        def channel_scores(self, name, module):
            n = module.out_features
            return -torch.arange(n, dtype=torch.float64)

    model = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 2))
    lt.trim(model, torch.randn(2, 4), LastChannelsFirst(), 0.3)
    kept = model[0].weight.shape[0]
    assert kept < 10


def test_user_criterion_subclass():
    class Const(lt.criteria.Criterion):
        def score(self, graph, data=None):
            return {
                g.id: torch.arange(g.n_units, dtype=torch.float64) for g in graph.prunable_groups
            }

    model = _mlp()
    w = model[0].weight.detach().clone()
    lt.trim(model, torch.randn(2, 4), Const(), 0.3)
    n = model[0].out_features
    assert torch.equal(model[0].weight, w[6 - n :])


def test_reduction_validation():
    with pytest.raises(ValueError, match="reduction"):
        Magnitude(reduction="median")


def test_reduction_changes_coupled_scores():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(3, 4), nn.Linear(3, 4), nn.Linear(4, 1)

        def forward(self, x):
            return self.c(self.a(x) + self.b(x))

    m = Res()
    graph = TrimGraph(m, torch.randn(2, 3))
    gid = _group(graph, "a").id
    la = m.a.weight.detach().abs().sum(1).double()
    lb = m.b.weight.detach().abs().sum(1).double()
    assert torch.allclose(Magnitude("sum").score(graph)[gid], la + lb)
    assert torch.allclose(Magnitude("max").score(graph)[gid], torch.maximum(la, lb))
    assert np.allclose(Magnitude().score(graph)[gid].numpy(), ((la + lb) / 2).numpy())

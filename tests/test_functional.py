"""Invariants of one trimming step on every supported layer pattern (design invariants 1, 3-5)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import masked_copy, outputs, randomize_norms, same_state, snapshot
from torch import nn
from zoo_patterns import CASES, ConvFlatten, EmbedGRU

import lotterytrim as lt
from lotterytrim.calls import output_signature, run_model
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.selection.costs import ParamCost

IDS = [c.name for c in CASES]


def _build(case, seed=0):
    torch.manual_seed(seed)
    return randomize_norms(case.build(), seed), case.inputs()


@pytest.mark.parametrize("case", [c for c in CASES if c.equivalent], ids=lambda c: c.name)
@pytest.mark.parametrize("criterion", ["magnitude", "random"])
def test_trimmed_equals_masked(case, criterion):
    model, x = _build(case)
    original = copy.deepcopy(model)
    plan, _ = lt.trim(model, x, criterion, 0.4)
    assert not plan.is_identity(), "the step should remove something"
    masked = masked_copy(original, plan)
    for a, b in zip(outputs(model, x), outputs(masked, x), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("amount", [0.1, 0.3, 0.5])
@pytest.mark.parametrize("scope", ["global", "local"])
def test_budget_and_outputs(case, amount, scope):
    model, x = _build(case)
    sig = output_signature(run_model(model.eval(), x))
    graph = TrimGraph(model, x)
    costs = [g.unit_params.max() for g in graph.prunable_groups]
    total = graph.total_params
    _, res = lt.trim(model, x, "magnitude", amount, scope=scope)
    assert res.params_after == sum(p.numel() for p in model.parameters())
    unit = max(costs) / total
    if res.shortfall is None:  # within 2 points, or a shortfall says why
        assert abs(res.achieved - amount) <= 0.02 + 1e-9, (res.achieved, amount)
    else:
        assert abs(res.achieved - amount) > 0.02, (res.achieved, amount, res.shortfall)
        assert f"instead of {amount:.1%}: " in res.shortfall and res.shortfall.split(": ", 1)[1]
        # a step passes its share by at most one unit's cost, and then says the units are coarse
        assert res.achieved - amount <= unit + 1e-9, (res.achieved, amount, unit)
        if res.achieved > amount:
            assert "too coarse" in res.shortfall or "coarse step" in res.shortfall
    assert output_signature(run_model(model.eval(), x)) == sig
    for name, n in res.units_after.items():
        assert n >= 1, f"layer {name} emptied"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_deterministic(case):
    plans = []
    for _ in range(2):
        model, x = _build(case, seed=3)
        plan, _ = lt.trim(model, x, lt.criteria.Random(seed=5), 0.3)
        plans.append(plan)
    assert plans[0] == plans[1]
    assert not plans[0].is_identity()


def test_unprunable_keeps_units_but_inputs_shrink():
    model, x = _build(CASES[0])
    lt.unprunable(model.fc1)
    plan, res = lt.trim(model, x, "magnitude", 0.3, unprunable=[model.c1])
    assert model.fc1.out_features == 24
    assert model.c1.out_channels == 12
    assert model.fc1.in_features < 16 * 16  # its inputs shrank with c2
    assert res.protected


def test_unprunable_class_tag():
    @lt.unprunable
    class Head(nn.Linear):
        pass

    model = nn.Sequential(nn.Linear(5, 20), nn.ReLU(), Head(20, 30), nn.ReLU(), nn.Linear(30, 2))
    lt.trim(model, torch.randn(2, 5), "magnitude", 0.3)
    assert model[2].out_features == 30
    assert model[0].out_features < 20


@pytest.mark.parametrize("how", ["argument", "tag"])
def test_unprunable_container_protects_every_layer_inside(how):
    head = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 16))
    model = nn.Sequential(nn.Linear(5, 20), nn.ReLU(), head, nn.ReLU(), nn.Linear(16, 2))
    if how == "tag":
        lt.unprunable(head)
    given = (m for m in [head]) if how == "argument" else ()  # a one-shot iterable is fine
    lt.trim(model, torch.randn(2, 5), "magnitude", 0.3, unprunable=given)
    assert head[0].out_features == 30 and head[2].out_features == 16
    assert model[0].out_features < 20


def test_closed_form_param_count():
    model, x = _build(CASES[0])
    _, res = lt.trim(model, x, "magnitude", 0.5)
    c1, c2, f1 = model.c1.out_channels, model.c2.out_channels, model.fc1.out_features
    expected = (
        (1 * 5 + 1) * c1 + 2 * c1 + (c1 * 3 + 1) * c2 + 2 * c2 + (c2 * 16 + 1) * f1 + (f1 + 1) * 5
    )
    assert res.params_after == expected
    assert sum(p.numel() for p in model.parameters()) == expected
    assert res.params_before == 7013


def test_shared_weight_counted_once():
    model = nn.Sequential(
        nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 1)
    )
    graph = TrimGraph(model, torch.randn(2, 10))
    cost = ParamCost(graph)
    # remove 3 units of layer 0 and 4 of layer 2: the 3x4 block between them goes once
    removal = {0: np.arange(3), 1: np.arange(4)}
    left = cost.remaining(cost.rows_for(removal))
    expected = (10 * 7 + 7) + (7 * 6 + 6) + (6 + 1)
    assert left == expected


def test_gru_hidden_units_trim_across_layers_and_directions():
    case = next(c for c in CASES if c.name == "embed_gru")
    model, x = _build(case)
    lt.trim(model, x, "magnitude", 0.5)
    h = model.gru.hidden_size
    assert h < 8
    assert model.gru.weight_ih_l1.shape == (3 * h, 2 * h)
    assert model.gru.weight_hh_l1_reverse.shape == (3 * h, h)
    assert model.fc.in_features == 2 * h
    model(x)


# ------------------------------------------------------------------ bad input
class _Custom(nn.Module):
    """Mixes channels with a matrix of its own: only an adapter could say how to slice it."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.eye(8) + 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,bct->bot", self.mix, x)


class _Scale(nn.Module):
    """A per-channel scale held as a plain parameter, broadcast against its input."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8).reshape(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _custom_model() -> nn.Module:
    return nn.Sequential(nn.Conv1d(2, 8, 3), _Custom(), nn.ReLU(), nn.Conv1d(8, 2, 1))


@pytest.mark.parametrize(
    ("kwargs", "exc", "words"),
    [
        ({"amount": 0.0}, ValueError, "amount"),
        ({"amount": 1.0}, ValueError, "amount"),
        ({"amount": -0.2}, ValueError, "amount"),
        ({"amount": "0.3"}, TypeError, "amount"),
        ({"criterion": "loudness"}, ValueError, "loudness"),
        ({"scope": "galactic"}, ValueError, "scope"),
        ({"normalize": "z"}, ValueError, "normalize"),
        ({"min_units": 0}, ValueError, "min_units"),
        ({"example_inputs": torch.randn(2, 7, 32)}, lt.errors.ExampleInputError, "ConvFlatten"),
        ({"criterion": "activation"}, lt.errors.CriterionError, "needs data"),
    ],
)
def test_bad_input_leaves_model_untouched(kwargs, exc, words):
    model = ConvFlatten()
    before = snapshot(model)
    args = {"example_inputs": torch.randn(2, 1, 32), "criterion": "magnitude", "amount": 0.3}
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        lt.trim(model, **args)
    assert same_state(model, before)


def test_custom_layer_error_names_it_and_leaves_model():
    model = _custom_model()
    before = snapshot(model)
    with pytest.raises(
        lt.errors.UnsupportedLayerError, match=r"'1' \(_Custom\) owns mix \(used by"
    ):
        lt.trim(model, torch.randn(2, 2, 10), "magnitude", 0.3)
    assert same_state(model, before)


def test_custom_layer_protected_on_request():
    model = _custom_model()
    plan, res = lt.trim(model, torch.randn(2, 2, 10), "magnitude", 0.3, on_unsupported="protect")
    assert model[0].out_channels == 8
    assert any("'1.mix'" in why and "unknown" in why for why in res.protected.values())
    assert res.shortfall is not None


def test_module_owned_scale_is_sliced_with_its_channels():
    """A broadcast scale parameter loses the rows of removed channels; the model is equivalent."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 8, 3), _Scale(), nn.ReLU(), nn.Conv1d(8, 2, 1))
    original = copy.deepcopy(model)
    x = torch.randn(2, 2, 10)
    plan, res = lt.trim(model, x, "magnitude", 0.3)
    assert model[0].out_channels < 8
    assert not any("scale" in why for why in res.protected.values())
    assert model[1].scale.shape == (model[0].out_channels, 1)
    kept = plan.kept_indices("1.scale", 0)
    assert torch.equal(model[1].scale, original[1].scale[kept])
    torch.testing.assert_close(model(x), masked_copy(original, plan)(x), atol=1e-5, rtol=1e-5)


def test_batchnorm_without_norms_names_layers():
    model = copy.deepcopy(CASES[9].build())
    before = snapshot(model)
    with pytest.raises(lt.errors.CriterionError, match=r"'a' \(layers a, b, mid\)"):
        lt.trim(model, CASES[9].inputs(), "batchnorm", 0.3)
    assert same_state(model, before)


def test_train_mode_restored_and_running_stats_untouched():
    model, x = _build(CASES[0])
    model.train()
    mean = model.b1.running_mean.clone()
    graph = TrimGraph(model, x)
    assert model.training and model.b1.training
    assert torch.equal(model.b1.running_mean, mean)
    assert graph.groups


def test_dict_inputs():
    class KW(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 9), nn.Linear(9, 2)

        def forward(self, audio: torch.Tensor) -> torch.Tensor:
            return self.b(torch.relu(self.a(audio)))

    model = KW()
    lt.trim(model, {"audio": torch.randn(2, 4)}, "magnitude", 0.3)
    assert model.a.out_features < 9


def test_embedding_is_trimmed():
    model, x = _build(next(c for c in CASES if c.name == "embed_gru"))
    graph = TrimGraph(model, x)
    emb = next(g for g in graph.groups if g.name == "emb")
    assert emb.protected is None and emb.n_units == 10
    removal = {emb.id: np.array([0, 3])}
    graph.plan_for(removal).apply_to_model(model)
    assert model.emb.embedding_dim == 8 and model.gru.input_size == 8
    model(x)


def test_model_type_error():
    with pytest.raises(TypeError, match="nn.Module"):
        lt.trim("not a model", torch.randn(1), "magnitude", 0.3)


def test_step_result_fields():
    model, x = _build(CASES[0])
    _, res = lt.trim(model, x, "magnitude", 0.3)
    assert res.units_before["c2"] == 16 and res.units_after["c2"] == model.c2.out_channels
    assert sum(res.removed_units.values()) > 0
    assert res.seconds > 0
    assert "fc2" in res.protected


def test_gru_model_equivalence_under_bisection_guard():
    model, x = _build(next(c for c in CASES if c.name == "embed_gru"))
    assert isinstance(model, EmbedGRU)
    _, res = lt.trim(model, x, "magnitude", 0.3)
    assert not any("breaks the model" in why for why in res.protected.values())


class _TiedLM(nn.Module):
    """An embedding tied to the output head, with (``deep``) or without layers between."""

    def __init__(self, deep: bool) -> None:
        super().__init__()
        self.deep = deep
        self.emb = nn.Embedding(20, 16)
        self.rnn = nn.GRU(16, 16, batch_first=True)
        self.mid = nn.Linear(16, 16)
        self.head = nn.Linear(16, 20, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x)
        if self.deep:
            h = torch.tanh(self.mid(self.rnn(h)[0]))
        return self.head(torch.tanh(h))


def test_tied_weights_are_trimmed_together_or_protected_naming_the_tie():
    torch.manual_seed(0)
    x = torch.randint(0, 20, (2, 7))
    # embedding straight into the tied head: one group, one slice of the shared tensor
    near = _TiedLM(deep=False)
    _, res = lt.trim(near, x, amount=0.3)
    assert near.head.weight is near.emb.weight and near.emb.embedding_dim < 16
    assert near(x).shape == (2, 7, 20)
    # layers between: the embedding's and the head's input groups would cut it apart
    far = _TiedLM(deep=True)
    _, res = lt.trim(far, x, amount=0.3)
    assert res.params_after < res.params_before and far.rnn.hidden_size < 16
    for name in ("emb", "mid"):
        assert "weight tied: 'emb.weight' and 'head.weight'" in res.protected[name]
    assert far.head.weight is far.emb.weight and far.emb.embedding_dim == 16
    assert far(x).shape == (2, 7, 20)

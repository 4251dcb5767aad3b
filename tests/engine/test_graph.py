"""The traced graph: which units are coupled, what each costs, and the plans that remove them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import masked_copy, outputs
from torch import nn

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.errors import ExampleInputError

X = torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(1))


def _chain() -> nn.Sequential:
    """conv(1->8) -> conv(8->4) -> flatten (4 channels x 12 steps) -> linear(48->3)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Conv1d(8, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)
    )


def _group(graph: TrimGraph, name: str) -> int:
    return next(g.id for g in graph.groups if g.name == name)


class _TwoWriters(nn.Module):
    """Two linears added into one stream, read by a head."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.a(x) + self.b(x)))


class _BiGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(4, 5, batch_first=True, bidirectional=True)
        self.head = nn.Linear(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(x)[0][:, -1])


class _Tied(nn.Module):
    """An embedding whose weight is also the output layer's."""

    def __init__(self) -> None:
        super().__init__()
        self.emb, self.mid = nn.Embedding(10, 6), nn.Linear(6, 6)
        self.out = nn.Linear(6, 10, bias=False)
        self.out.weight = self.emb.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.mid(self.emb(x))))


def test_each_unit_costs_every_slice_it_owns_and_outputs_are_protected() -> None:
    graph = TrimGraph(_chain(), X)
    rows = {r["group"]: r for r in graph.describe()}
    assert list(rows) == ["0", "2", "5"]
    # conv 0: its row (1x3) and bias, and conv 2's column (4x3)
    assert (rows["0"]["units"], rows["0"]["params_per_unit"], rows["0"]["layers"]) == (
        8,
        16,
        "0, 2",
    )
    # conv 2: its row (8x3) and bias, and the 12 linear columns its channel flattens into (x3)
    assert (rows["2"]["units"], rows["2"]["params_per_unit"], rows["2"]["layers"]) == (
        4,
        61,
        "2, 5",
    )
    assert rows["5"]["protected"] == "its units reach a model output"
    assert [g.name for g in graph.prunable_groups] == ["0", "2"]
    assert graph.total_params == sum(p.numel() for p in _chain().parameters())


def test_a_plan_removes_the_units_from_producer_and_consumer_and_matches_zeroing_them() -> None:
    model = _chain()
    graph = TrimGraph(model, X)
    plan = graph.plan_for({_group(graph, "0"): np.array([1, 5]), _group(graph, "2"): []})
    kept = [0, 2, 3, 4, 6, 7]
    assert plan.keep["0.weight"][0].tolist() == kept and plan.keep["0.bias"][0].tolist() == kept
    assert plan.keep["2.weight"][0] is None and plan.keep["2.weight"][1].tolist() == kept
    assert "5.weight" not in plan.keep
    assert plan.attributes == {"0": {"out_channels": 6}, "2": {"in_channels": 6}}
    want = outputs(masked_copy(model, plan), X)
    plan.apply_to_model(model)
    assert model[0].weight.shape == (6, 1, 3) and model[2].weight.shape == (4, 6, 3)
    torch.testing.assert_close(outputs(model, X), want)


def test_a_channel_before_a_flatten_takes_its_block_of_columns() -> None:
    graph = TrimGraph(_chain(), X)
    plan = graph.plan_for({_group(graph, "2"): np.array([0, 2])})
    columns = plan.keep["5.weight"][1].tolist()
    assert columns == [*range(12, 24), *range(36, 48)]  # channel-major: channel c is 12c..12c+11
    assert plan.attributes["5"] == {"in_features": 24}


def test_layers_adding_into_one_stream_share_their_units() -> None:
    graph = TrimGraph(_TwoWriters(), torch.randn(2, 4))
    (group,) = graph.prunable_groups
    assert {(m.module, m.side) for m in group.members} == {
        ("a", "out"),
        ("b", "out"),
        ("head", "in"),
    }
    assert group.n_units == 6 and group.unit_params.tolist() == [12.0] * 6  # 2 x (4 + 1) + 2
    plan = graph.plan_for({group.id: np.array([3])})
    for name in ("a.weight", "b.weight", "a.bias", "b.bias"):
        assert plan.keep[name][0].tolist() == [0, 1, 2, 4, 5]
    assert plan.keep["head.weight"][1].tolist() == [0, 1, 2, 4, 5]


def test_a_recurrent_unit_is_one_hidden_index_in_every_gate_and_direction() -> None:
    graph = TrimGraph(_BiGRU(), torch.randn(2, 3, 4))
    group = graph.groups[_group(graph, "gru")]
    # per direction: 3 gate rows of weight_ih (x4), of weight_hh (x5) and its 3 columns (x5),
    # 3 + 3 biases; then one head column per direction (x2)
    assert group.n_units == 5 and group.unit_params.tolist() == [100.0] * 5
    plan = graph.plan_for({group.id: np.array([0])})
    rows = [i for i in range(15) if i % 5 != 0]
    for suffix in ("", "_reverse"):
        assert plan.keep[f"gru.weight_ih_l0{suffix}"][0].tolist() == rows
        assert plan.keep[f"gru.weight_hh_l0{suffix}"][1].tolist() == [1, 2, 3, 4]
    assert plan.keep["head.weight"][1].tolist() == [1, 2, 3, 4, 6, 7, 8, 9]
    assert plan.attributes == {"gru": {"hidden_size": 4}, "head": {"in_features": 8}}


def test_a_tied_weight_is_counted_once_and_no_group_cuts_it() -> None:
    graph = TrimGraph(_Tied(), torch.randint(0, 10, (2, 3)))
    assert set(graph.param_shapes) == {"emb.weight", "mid.weight", "mid.bias"}
    assert graph.total_params == 10 * 6 + 6 * 6 + 6
    assert graph.prunable_groups == []
    assert all("'emb.weight' and 'out.weight'" in str(g.protected) for g in graph.groups[:2])


def test_unprunable_layers_keep_their_outputs_and_bad_arguments_are_named() -> None:
    model = _chain()
    graph = TrimGraph(model, X, unprunable=[model[2]])
    assert "layer '2' is unprunable" in str(graph.groups[_group(graph, "2")].protected)
    assert graph.groups[_group(graph, "0")].protected is None  # its input side may still shrink
    with pytest.raises(ValueError, match="not a module of this model"):
        TrimGraph(model, X, unprunable=[nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="must be an nn.Module"):
        TrimGraph(lambda x: x, X)  # type: ignore[arg-type]
    with pytest.raises(ExampleInputError, match="could not be run through Sequential"):
        TrimGraph(model, torch.randn(2, 3, 16))

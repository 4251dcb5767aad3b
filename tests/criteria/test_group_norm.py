"""``group_norm`` scores each unit by the norm of every parameter its group removes with it."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch
import torch_pruning as tp
from helpers import masked_copy, outputs, randomize_norms
from torch import nn
from zoo_models import ZOO, ZooCase, clone
from zoo_patterns import MHAOnly, PositionBuffer
from zoo_transformers import SpectrogramViT

import lotterytrim as lt
from lotterytrim.criteria import CRITERIA, GroupNorm, Magnitude, get_criterion
from lotterytrim.engine.graph import TrimGraph

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")


def _group(graph: TrimGraph, name: str) -> Any:
    return next(g for g in graph.groups if g.name == name)


def _hand_model() -> nn.Sequential:
    """conv(1->3) -> BN -> conv(3->2) -> flatten -> linear(8->2), every weight set by hand."""
    model = nn.Sequential(
        nn.Conv1d(1, 3, 2),
        nn.BatchNorm1d(3),
        nn.ReLU(),
        nn.Conv1d(3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    lin = torch.zeros(2, 8)
    lin[:, 0:4] = 0.5  # the columns of conv 3's unit 0 (its 4 positions)
    lin[0, 4] = 2.0  # one column of unit 1
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[0.5, -0.5]]]))
        model[0].bias.copy_(torch.tensor([0.0, -1.0, 0.0]))
        model[1].weight.copy_(torch.tensor([1.0, 1.0, 0.5]))
        model[1].bias.copy_(torch.tensor([0.0, 0.0, -0.5]))
        model[1].running_mean.fill_(10.0)  # statistics are no weights: never scored
        model[1].running_var.fill_(100.0)
        model[3].weight.copy_(torch.tensor([[[1.0], [0.0], [2.0]], [[0.0], [-3.0], [0.0]]]))
        model[3].bias.copy_(torch.tensor([1.0, 0.0]))
        model[6].weight.copy_(lin)
        model[6].bias.fill_(7.0)
    return model.eval()


_X = torch.randn(2, 1, 5, generator=torch.Generator().manual_seed(0))


def _scores(criterion: Any, model: nn.Module, x: Any) -> dict[str, torch.Tensor]:
    graph = TrimGraph(model, x)
    return {graph.groups[gid].name: s for gid, s in criterion.score(graph).items()}


def test_scores_are_the_hand_computed_group_l2_norms() -> None:
    s = _scores(GroupNorm(), _hand_model(), _X)
    assert set(s) == {"0", "3"}  # the linear's units reach the output
    # unit 0 of conv 0: weights 1 + 4, bias 0, gamma 1, beta 0, conv 3 column 1 + 0
    # unit 1: 0, 1, 1, 0, column 0 + 9; unit 2: 0.25 + 0.25, 0, 0.25, 0.25, column 4 + 0
    torch.testing.assert_close(s["0"], torch.tensor([7.0, 11.0, 5.0], dtype=torch.float64).sqrt())
    # conv 3: weights 1 + 4 and 9, biases 1 and 0, linear columns 8 * 0.25 and 4
    torch.testing.assert_close(s["3"], torch.tensor([8.0, 13.0], dtype=torch.float64).sqrt())


def test_p1_sums_absolute_values() -> None:
    s = _scores(GroupNorm(p=1), _hand_model(), _X)
    torch.testing.assert_close(s["0"], torch.tensor([5.0, 5.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(s["3"], torch.tensor([8.0, 5.0], dtype=torch.float64))


def test_without_consumers_only_producer_and_norm_parts_count() -> None:
    s = _scores(GroupNorm(consumers=False), _hand_model(), _X)
    torch.testing.assert_close(s["0"], torch.tensor([6.0, 2.0, 1.0], dtype=torch.float64).sqrt())
    torch.testing.assert_close(s["3"], torch.tensor([6.0, 9.0], dtype=torch.float64).sqrt())
    s1 = _scores(GroupNorm(p=1, consumers=False), _hand_model(), _X)
    torch.testing.assert_close(s1["3"], torch.tensor([4.0, 3.0], dtype=torch.float64))


def test_squared_scores_are_torch_pruning_group_magnitude_summed() -> None:
    """With biases and a sum over the group, torch-pruning's importance is our score squared."""
    model = randomize_norms(_hand_model())
    ours = _scores(GroupNorm(), model, _X)
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=_X)
    imp = tp.importance.GroupMagnitudeImportance(
        p=2, group_reduction="sum", normalizer=None, bias=True
    )
    for name, layer in (("0", model[0]), ("3", model[3])):
        group = dg.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=list(range(3)))
        if name == "3":
            group = dg.get_pruning_group(layer, tp.prune_conv_out_channels, idxs=[0, 1])
        theirs = imp(group).double()
        torch.testing.assert_close(ours[name] ** 2, theirs, rtol=1e-5, atol=1e-6)


def test_a_unit_heavy_in_its_consumer_outranks_one_small_everywhere() -> None:
    """Unit 0 has tiny incoming weights but large consumer columns: magnitude misses it."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[5.0, 0.1], [-5.0, 0.1]]))
    x = torch.randn(4, 3)
    mag = _scores(Magnitude(), model, x)["0"]
    ours = _scores(GroupNorm(), model, x)["0"]
    assert mag[0] < mag[1] and ours[0] > ours[1]
    plan, _ = lt.trim(model, x, criterion="group_norm", amount=0.3)
    assert model[0].out_features == 1 and not plan.is_identity()
    torch.testing.assert_close(model[2].weight, torch.tensor([[5.0], [-5.0]]))


def _oracle(model: nn.Module, x: Any, name: str) -> torch.Tensor:
    """Per unit, the L2 norm of the parameters that masking that unit alone zeroes."""
    graph = TrimGraph(model, x)
    g = _group(graph, name)
    before = dict(model.named_parameters())
    out = []
    for u in range(g.n_units):
        masked = masked_copy(model, graph.plan_for({g.id: np.array([u])}))
        gone = sum(
            float((before[n].detach().double() ** 2 - p.detach().double() ** 2).sum())
            for n, p in masked.named_parameters()
        )
        out.append(math.sqrt(gone))
    return torch.tensor(out, dtype=torch.float64)


class _GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gru(x)[0])


def test_gru_unit_counts_every_gate_and_its_recurrent_column_once() -> None:
    torch.manual_seed(0)
    model = _GRUNet()
    s = _scores(GroupNorm(), model, torch.randn(1, 5, 3))["gru"]
    gru = model.gru
    expected = []
    for u in range(4):
        rows = [u, u + 4, u + 8]
        hh = torch.zeros_like(gru.weight_hh_l0, dtype=torch.bool)
        hh[rows] = True
        hh[:, u] = True  # its own column; [u, u] is one weight, counted once
        total = (
            gru.weight_ih_l0[rows].pow(2).sum()
            + gru.weight_hh_l0[hh].pow(2).sum()
            + gru.bias_ih_l0[rows].pow(2).sum()
            + gru.bias_hh_l0[rows].pow(2).sum()
            + model.fc.weight[:, u].pow(2).sum()
        )
        expected.append(total.detach().double().sqrt())
    torch.testing.assert_close(s, torch.stack(expected))


def _zoo(name: str) -> ZooCase:
    return next(c for c in ZOO if c.name == name)


def _lstm_tagger() -> tuple[nn.Module, Any]:
    case = _zoo("lstm_tagger")
    torch.manual_seed(0)
    return case.build(), case.inputs()


@pytest.mark.parametrize(
    ("build", "group"),
    [
        (_lstm_tagger, "lstm"),
        (_lstm_tagger, "emb"),
        (lambda: (MHAOnly(), torch.randn(2, 5, 6)), "embed"),
        (lambda: (PositionBuffer(), torch.randn(2, 7, 10)), "embed"),
        (lambda: (SpectrogramViT(), torch.randn(2, 1, 16, 16)), "patch"),
        (lambda: (SpectrogramViT(), torch.randn(2, 1, 16, 16)), "blocks.0.attn.query"),
    ],
    ids=[
        "lstm",
        "embedding_into_lstm",
        "attention_heads",
        "position_buffer_not_a_weight",
        "owned_tokens_and_scales",
        "hand_written_heads",
    ],
)
def test_scores_equal_the_norm_of_what_removing_one_unit_zeroes(build: Any, group: str) -> None:
    torch.manual_seed(0)
    model, x = build()
    s = _scores(GroupNorm(), model, x)[group]
    torch.testing.assert_close(s, _oracle(model, x, group))


def _without_weight_norm(model: nn.Module) -> nn.Module:
    """A copy whose weight-normed convs are plain convs holding the effective weight g v/|v|."""
    plain = clone(model)
    for name, m in list(plain.named_modules()):
        if not isinstance(m, nn.Conv1d) or not hasattr(m, "bias"):
            continue
        if hasattr(m, "parametrizations"):
            g, v = m.parametrizations.weight.original0, m.parametrizations.weight.original1
        elif hasattr(m, "weight_g"):
            g, v = m.weight_g, m.weight_v
        else:
            continue
        conv = nn.Conv1d(m.in_channels, m.out_channels, m.kernel_size, dilation=m.dilation)
        with torch.no_grad():
            conv.weight.copy_(g * v / v.norm(dim=(1, 2), keepdim=True))
            conv.bias.copy_(m.bias)
        parent, _, attr = name.rpartition(".")
        setattr(plain.get_submodule(parent), attr, conv)
    return plain


def test_weight_norm_counts_the_effective_weight() -> None:
    torch.manual_seed(0)
    case = _zoo("tcn_weight_norm")
    model, x = case.build(), case.inputs()
    with torch.no_grad():  # g away from |v|, so that scoring g and v apart would show
        for n, p in model.named_parameters():
            if n.endswith(("original0", "weight_g")):
                p.mul_(torch.rand(p.shape) * 3)
    plain = _without_weight_norm(model)
    assert not any(n.endswith(("original0", "weight_g")) for n, _ in plain.named_parameters())
    torch.testing.assert_close(outputs(plain, x)[0], outputs(model, x)[0])
    ours, want = _scores(GroupNorm(), model, x), _scores(GroupNorm(), plain, x)
    assert set(ours) == set(want) and len(ours) >= 3
    for name in want:
        torch.testing.assert_close(ours[name], want[name])


@pytest.mark.parametrize("name", ["lstm_tagger", "crnn", "conv_lstm_linear", "tcn_weight_norm"])
def test_trim_by_name_equals_the_masked_original(name: str) -> None:
    case = _zoo(name)
    torch.manual_seed(0)
    model, x = randomize_norms(case.build()), case.inputs()
    original = clone(model)
    scores = _scores(GroupNorm(), model, x)
    plan, _ = lt.trim(model, x, criterion="group_norm", amount=0.3)
    assert not plan.is_identity()
    masked = masked_copy(original, plan)
    with torch.no_grad():  # a weight-normed row with g = 0 computes zero once v is finite
        for n, t in masked.named_parameters():
            if n.endswith(("original1", "weight_v")):
                t[t.flatten(1).abs().sum(1) == 0] = 1.0
    for a, b in zip(outputs(model, x), outputs(masked, x), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if name == "lstm_tagger":  # within a group the lowest scores go
        keep = plan.keep["lstm.weight_hh_l0"][1]
        gone = np.setdiff1d(np.arange(18), keep)
        assert gone.size and scores["lstm"][gone].max() <= scores["lstm"][keep].min()


def test_attention_trim_equals_the_masked_original() -> None:
    torch.manual_seed(0)
    model, x = MHAOnly().eval(), torch.randn(2, 5, 6)
    original = copy.deepcopy(model)
    plan, _ = lt.trim(model, x, criterion="group_norm", amount=0.3)
    assert model.mha.num_heads < 3
    torch.testing.assert_close(
        outputs(model, x)[0], outputs(masked_copy(original, plan), x)[0], atol=1e-5, rtol=1e-5
    )


def test_a_group_with_nothing_to_score_names_its_layers() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    graph = TrimGraph(model, torch.randn(2, 3))
    g = _group(graph, "0")
    g.entries = tuple(e for e in g.entries if e.role == "stat")  # what a bare adapter lists
    with pytest.raises(lt.errors.CriterionError, match=r"group '0' \(layers 0, 2\)"):
        GroupNorm().score(graph)


def test_the_name_resolves_everywhere_a_criterion_name_is_accepted() -> None:
    assert CRITERIA["group_norm"] is GroupNorm
    crit = get_criterion("group_norm", p=1, consumers=False)
    assert isinstance(crit, GroupNorm) and crit.p == 1 and not crit.consumers
    assert repr(crit) == "GroupNorm(p=1, consumers=False)"
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    trimmer = lt.LotteryTrimmer(
        model, torch.randn(2, 3), criterion="group_norm", criterion_options={"p": 1}
    )
    assert isinstance(trimmer.criterion, GroupNorm) and trimmer.criterion.p == 1
    config = lt.LotteryConfig(
        criteria=("magnitude", "group_norm"), criterion_options={"group_norm": {"p": 1}}
    )
    assert config.criteria[1] == "group_norm"
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        GroupNorm(p=3)

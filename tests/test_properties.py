"""Property-based: random small networks from the supported patterns keep every invariant."""

from __future__ import annotations

import copy

import torch
from helpers import masked_copy, outputs, randomize_norms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import lotterytrim as lt
from lotterytrim.calls import output_signature, run_model
from lotterytrim.engine.graph import TrimGraph


class RandomNet(nn.Module):
    """Conv1d blocks (optional BN, residual, dilation, stride), optional GRU, a linear head."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.res_flags: list[bool] = []
        c = spec["in_ch"]
        for i, (w, k, d, bn) in enumerate(spec["blocks"]):
            # fixed at build time: the structure must not depend on widths seen at run time
            self.res_flags.append(spec["residual"] and i > 0 and w == c)
            self.blocks.append(nn.Conv1d(c, w, k, dilation=d, padding=d * (k // 2)))
            self.norms.append(nn.BatchNorm1d(w) if bn else nn.Identity())
            c = w
        self.gru = (
            nn.GRU(c, spec["gru"], batch_first=True, bidirectional=True) if spec["gru"] else None
        )
        feat = 2 * spec["gru"] if spec["gru"] else c
        self.hidden = nn.Linear(feat, spec["hidden"])
        self.head = nn.Linear(spec["hidden"], spec["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm, res in zip(self.blocks, self.norms, self.res_flags, strict=True):
            h = torch.relu(norm(conv(x)))
            x = h + x if res else h
        if self.gru is not None:
            x = self.gru(x.transpose(1, 2))[0].mean(1)
        else:
            x = x.mean(-1)
        return self.head(torch.relu(self.hidden(x)))


block = st.tuples(
    st.integers(2, 12), st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]), st.booleans()
)
specs = st.fixed_dictionaries(
    {
        "in_ch": st.integers(1, 3),
        "blocks": st.lists(block, min_size=1, max_size=4),
        "residual": st.booleans(),
        "gru": st.sampled_from([0, 3, 6]),
        "hidden": st.integers(2, 16),
        "classes": st.integers(1, 4),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs,
    amount=st.floats(0.05, 0.6),
    criterion=st.sampled_from(["magnitude", "random"]),
    scope=st.sampled_from(["global", "local"]),
    seed=st.integers(0, 2**16),
)
def test_random_networks_keep_invariants(spec, amount, criterion, scope, seed):
    torch.manual_seed(seed)
    model = randomize_norms(RandomNet(spec), seed)
    x = torch.randn(2, spec["in_ch"], 11)
    original = copy.deepcopy(model)
    sig = output_signature(run_model(model.eval(), x))
    plan, res = lt.trim(model, x, criterion, amount, scope=scope)
    # output structure and shape unchanged; head keeps its classes
    assert output_signature(run_model(model.eval(), x)) == sig
    assert model.head.out_features == spec["classes"]
    # exact counting
    assert res.params_after == sum(p.numel() for p in model.parameters())
    # budget within tolerance, or a stated shortfall
    if res.shortfall is None:
        graph = TrimGraph(original, x)
        unit = max((g.unit_params.max() for g in graph.prunable_groups), default=0)
        assert abs(res.achieved - amount) <= max(0.02, unit / res.params_before) + 1e-9
    # equivalence with the masked original
    masked = masked_copy(original, plan)
    for a, b in zip(outputs(model, x), outputs(masked, x), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # determinism: the same step on a fresh copy gives the same plan
    again = copy.deepcopy(original)
    plan2, _ = lt.trim(
        again,
        x,
        lt.criteria.Random(seed=0) if criterion == "random" else criterion,
        amount,
        scope=scope,
    )
    if criterion == "magnitude":
        assert plan2 == plan

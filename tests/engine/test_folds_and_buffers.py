"""Frequency folded into a recurrent layer's features, and buffers on the residual stream."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from helpers import masked_copy, outputs, randomize_norms
from torch import nn
from zoo_models import ZOO, FoldedCRNN
from zoo_patterns import CASES, PositionBuffer

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph

NEW = [c for c in [*ZOO, *CASES] if c.name.startswith(("crnn_", "position_buffer"))]
FOLDS = ["permute", "reshape", "linear"]


def _spec() -> torch.Tensor:
    return torch.randn(2, 1, 16, 10, generator=torch.Generator().manual_seed(1))


def _frames() -> torch.Tensor:
    return torch.randn(2, 7, 10, generator=torch.Generator().manual_seed(1))


class _GroupFirst(lt.criteria.Criterion):
    """Scores one group's units lowest, so a step must take them first."""

    name = "group_first"

    def __init__(self, group: str) -> None:
        self.group = group

    def score(self, graph: TrimGraph, data: Any = None) -> dict[int, torch.Tensor]:
        return {
            g.id: torch.arange(g.n_units, dtype=torch.float64)
            + (0 if g.name == self.group else 1e6)
            for g in graph.prunable_groups
        }


def _assert_equals_masked(model: nn.Module, original: nn.Module, plan: lt.TrimPlan, x: Any) -> None:
    masked = masked_copy(original, plan)
    for a, b in zip(outputs(model, x), outputs(masked, x), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", NEW, ids=[c.name for c in NEW])
def test_loses_the_share_asked_with_nothing_protected_by_the_user(case: Any) -> None:
    """A 30% step removes 30% of the parameters within 2 points, or as close as the units allow.

    The position-buffer models' residual stream has 4 units of a third of the model each, and
    their feed-forward units can pay 19% at most: the step takes one stream unit alone (34%)
    and says that the units are too coarse, rather than stopping 11 points short.
    """
    torch.manual_seed(0)
    model, x = randomize_norms(case.build(), 0).eval(), case.inputs()
    graph = TrimGraph(model, x)
    _, res = lt.trim(model, x, "magnitude", 0.3, graph=graph)
    if res.shortfall is None:
        assert abs(res.achieved - 0.3) <= 0.02, res.achieved
    else:
        assert case.name.startswith("position_buffer"), res.shortfall
        assert "too coarse" in res.shortfall and "'embed'" in res.shortfall, res.shortfall
        assert "every removable unit is gone" not in res.shortfall
        assert abs(res.achieved - 0.3) <= 0.04, res.achieved
    assert set(res.protected) <= {"fc", "head"}  # the output layers alone


@pytest.mark.parametrize("fold", FOLDS)
def test_last_conv_costs_every_column_it_feeds(fold: str) -> None:
    """Each channel of the last conv owns 4 frequency columns of the next layer's input."""
    rows = {r["group"]: r for r in TrimGraph(FoldedCRNN(fold), _spec()).describe()}
    own = 12 * 9 + 1 + 2  # conv weights and bias, batchnorm scale and shift
    consumer = 3 * 20 if fold != "linear" else 24  # GRU gate rows, or the Linear's rows
    assert rows["c2"]["params_per_unit"] == own + 4 * consumer
    assert rows["c2"]["protected"] == ""


@pytest.mark.parametrize("fold", FOLDS)
def test_last_conv_trims_exactly_when_ranked_first(fold: str) -> None:
    """Removing channels of the last conv removes their columns: the model equals its mask."""
    torch.manual_seed(0)
    model, x = randomize_norms(FoldedCRNN(fold), 0).eval(), _spec()
    original = copy.deepcopy(model)
    plan, res = lt.trim(model, x, _GroupFirst("c2"), 0.2)
    assert "c2" not in res.protected and res.removed_units.get("c2", 0) > 0
    next_layer = model.proj if fold == "linear" else model.gru
    width = next_layer.in_features if fold == "linear" else next_layer.input_size
    assert width == 4 * model.c2.out_channels
    _assert_equals_masked(model, original, plan, x)


def test_non_channel_major_flatten_maps_interleaved_columns() -> None:
    """Channels flattened as the fastest dim ((time, freq, channels) -> freq * channels)."""

    class Interleaved(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 3, padding=1)
            self.gru = nn.GRU(6 * 4, 5, batch_first=True)
            self.fc = nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv(x))  # (batch, 6, 4, time)
            y, _ = self.gru(h.permute(0, 3, 2, 1).flatten(2))
            return self.fc(y)

    torch.manual_seed(0)
    model, x = Interleaved().eval(), torch.randn(2, 1, 4, 9)
    original = copy.deepcopy(model)
    plan, res = lt.trim(model, x, _GroupFirst("conv"), 0.2)
    assert res.removed_units.get("conv", 0) > 0
    _assert_equals_masked(model, original, plan, x)


@pytest.mark.parametrize(
    "kwargs", [{}, {"batched": False, "persistent": False, "scale": True}], ids=["add", "scale"]
)
def test_position_buffer_is_sliced_with_the_residual_stream(kwargs: dict[str, Any]) -> None:
    """Heads of the stream go; the table keeps the surviving embedding columns, exactly."""
    torch.manual_seed(0)
    model, x = PositionBuffer(**kwargs).eval(), _frames()
    original = copy.deepcopy(model)
    graph = TrimGraph(model, x)
    assert next(g for g in graph.groups if g.name == "embed").protected is None
    # one stream unit costs 34%: a smaller share is filled with feed-forward units instead
    plan, res = lt.trim(model, x, _GroupFirst("embed"), 0.35, graph=graph)
    assert "embed" not in res.protected
    assert model.pos.shape[-1] == model.embed.out_features < 16
    keep = plan.kept_indices("pos", model.pos.dim() - 1)
    torch.testing.assert_close(model.pos, original.pos[..., keep], atol=0, rtol=0)
    _assert_equals_masked(model, original, plan, x)


@pytest.mark.parametrize("persistent", [True, False])
def test_trimmed_buffer_survives_save_load_and_rewind(tmp_path: Any, persistent: bool) -> None:
    """A file rebuilds the sliced table; a rewind writes the captured table's survivors back."""
    torch.manual_seed(0)
    model, x = PositionBuffer(persistent=persistent).eval(), _frames()
    trimmer = lt.LotteryTrimmer(model, x, _GroupFirst("embed"), 0.35)
    trimmer.capture_rewind()
    captured = model.pos.clone()
    with torch.no_grad():
        model.pos.add_(1.0)  # training moves nothing in a buffer; this shows the rewind
    trimmer.step()
    keep = trimmer.plan.kept_indices("pos", 2)
    assert keep.size < 16
    torch.testing.assert_close(model.pos, captured[..., keep], atol=0, rtol=0)
    path = tmp_path / "pos.lt"
    lt.save(model, path, trimmer)
    loaded = lt.load(path, lambda: PositionBuffer(persistent=persistent))
    assert torch.equal(loaded.pos, model.pos)
    assert ("pos" in loaded.state_dict()) == persistent
    loaded.eval()
    assert torch.equal(model(x), loaded(x))


class _WindowAndFilterbank(nn.Module):
    """A window over time scales every channel; a fixed filterbank is used as a matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fb", torch.rand(12, 6))
        self.register_buffer("window", torch.hann_window(9))
        self.conv = nn.Conv1d(6, 8, 3, padding=1)
        self.mix = nn.Conv1d(8, 8, 1)
        self.out = nn.Conv1d(8, 2, 1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:  # (batch, time, 12)
        mel = (spec @ self.fb).transpose(1, 2)  # (batch, 6, time)
        h = torch.relu(self.conv(mel)) * self.window
        return self.out(torch.relu(self.mix(h)))


def test_buffer_across_channels_is_kept_and_a_matrix_buffer_raises_nothing() -> None:
    """The window is the same for every channel (never sliced); the filterbank needs no adapter."""
    torch.manual_seed(0)
    model, x = _WindowAndFilterbank().eval(), torch.randn(2, 9, 12)
    original = copy.deepcopy(model)
    plan, res = lt.trim(model, x, "magnitude", 0.3)
    assert "conv" not in res.protected and model.conv.out_channels < 8
    assert model.window.shape == (9,) and model.fb.shape == (12, 6)
    _assert_equals_masked(model, original, plan, x)

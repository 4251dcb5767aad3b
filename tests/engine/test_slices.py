"""Slices whose bounds count from the end or run past it map channels as Python slices them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import masked_copy
from torch import nn
from torch_pruning.dependency.index_mapping import _SliceIndexMapping

import lotterytrim as lt
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.indexmap import SizedSlice, Unmappable, map_indices

X = torch.randn(2, 5, 4, generator=torch.Generator().manual_seed(0))


class _SlicedFeatures(nn.Module):
    """A linear's six features, sliced along the last dim and read by a head."""

    def __init__(self, take: slice) -> None:
        super().__init__()
        self.take = take
        self.fc = nn.Linear(4, 6)
        self.head = nn.Linear(len(range(6)[take]), 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(x))[..., self.take])


class _NarrowedWidth(nn.Module):
    """A crop of the width (dim -1) of a 4-D feature map: every channel is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.narrow(self.a(x), -1, -3, 2))


@pytest.mark.parametrize(
    "take",
    [slice(-2, None), slice(None, -4), slice(-5, -1, 3), slice(-100, 2), slice(1, None, 2)],
    ids=["last-two", "all-but-four", "stepped-from-end", "before-the-start", "to-the-end"],
)
def test_a_slice_couples_the_head_with_the_features_python_picks(take: slice) -> None:
    graph = TrimGraph(_SlicedFeatures(take), X)
    group = next(g for g in graph.groups if g.name == "fc")
    head = next(m for m in group.members if (m.module, m.side) == ("head", "in"))
    assert head.channels.tolist() == list(range(len(range(6)[take])))
    assert head.units.tolist() == list(range(6)[take])


def test_the_report_counts_a_model_that_slices_from_the_end() -> None:
    # the slice is resolved (the report runs), and its group is protected: nothing is prunable
    model = _SlicedFeatures(slice(-2, None))
    report = lt.report(model, X, latency=False)
    assert report.params == 6 * (4 + 1) + 3 * (2 + 1) and report.prunable_params == 0


@pytest.mark.parametrize(
    "take", [slice(-2, None), slice(1, 3), slice(None, -4), slice(0, 6, 2)], ids=str
)
def test_a_slice_of_part_of_the_channels_protects_its_group(take: slice) -> None:
    """Bounds written in forward cannot follow a trim: removing a unit before or inside the
    slice would make it pick other channels, and the model could still run, wrongly."""
    graph = TrimGraph(_SlicedFeatures(take), X)
    fc = next(g for g in graph.groups if g.name == "fc")
    assert fc.protected is not None and "bounds fixed in forward" in fc.protected
    model = _SlicedFeatures(take)
    _, result = lt.trim(model, X, amount=0.3)
    assert model.fc.out_features == 6 and result.params_after == result.params_before
    assert "protected groups: 'fc'" in result.shortfall


class _TwoPaths(nn.Module):
    """A slice of part of one layer's features beside a layer read whole: only the sliced
    layer's group is held, and the other still trims."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 8), nn.Linear(4, 8)
        self.out_a, self.out_b = nn.Linear(3, 2), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sliced = torch.relu(self.a(x))[..., 2:5]
        return self.out_a(sliced) + self.out_b(torch.relu(self.b(x)))


def test_only_the_sliced_group_is_held_and_the_rest_trims_exactly() -> None:
    torch.manual_seed(0)
    model = _TwoPaths()
    before = model(X)
    _, result = lt.trim(model, X, amount=0.2)
    assert "bounds fixed in forward" in result.protected["a"]
    assert model.a.out_features == 8 and model.b.out_features < 8
    assert model(X).shape == before.shape


@pytest.mark.parametrize("take", [slice(None), slice(0, 100), slice(0, None, 1)], ids=str)
def test_a_slice_that_keeps_every_channel_protects_nothing(take: slice) -> None:
    graph = TrimGraph(_SlicedFeatures(take), X)
    assert next(g for g in graph.groups if g.name == "fc").protected is None


def test_a_negative_dim_off_the_channels_keeps_every_channel() -> None:
    graph = TrimGraph(_NarrowedWidth(), torch.randn(1, 1, 3, 6))
    group = next(g for g in graph.groups if g.name == "a")
    b = next(m for m in group.members if (m.module, m.side) == ("b", "in"))
    assert b.channels.tolist() == b.units.tolist() == [0, 1, 2, 3]


class _FirstExample(nn.Module):
    """Features of 2-D (N, F) batches, of which only the first example is read on."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))[:1])


def test_a_slice_of_the_batch_keeps_every_channel_and_the_model_trims_exactly() -> None:
    torch.manual_seed(0)
    model, x = _FirstExample().eval(), torch.randn(3, 8)
    group = next(g for g in TrimGraph(model, x).groups if g.name == "a")
    b = next(m for m in group.members if (m.module, m.side) == ("b", "in"))
    assert group.protected is None and b.channels.tolist() == b.units.tolist() == list(range(16))
    original = copy.deepcopy(model)
    plan, _ = lt.trim(model, x, amount=0.5)
    assert model.a.out_features == model.b.in_features == 8
    torch.testing.assert_close(model(x), masked_copy(original, plan)(x))


def test_a_slice_maps_back_no_index_past_the_dim_it_cuts() -> None:
    """So indices carried round a loop through a slice cannot grow without bound."""
    idx, root = np.arange(6, dtype=np.int64), np.arange(6, dtype=np.int64)
    back = SizedSlice(dim=2, start=1, step=2, end=6, size=6, reverse=True)
    got, got_root = map_indices(back, idx, root)
    assert got.tolist() == [1, 3, 5] and got_root.tolist() == [0, 1, 2]


def test_unresolved_bounds_are_unmappable_and_named() -> None:
    idx = np.arange(3, dtype=np.int64)
    start = 2**64 - 2  # -2 as autograd saves it
    for reverse in (False, True):
        mapping = _SliceIndexMapping(dim=2, start=start, step=1, end=2**63 - 1, reverse=reverse)
        with pytest.raises(Unmappable, match=r"slice \[-2:9223372036854775807:1\] along dim 2"):
            map_indices(mapping, idx, idx)

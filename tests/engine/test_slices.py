"""Slices whose bounds count from the end or run past it map channels as Python slices them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
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
    model = _SlicedFeatures(slice(-2, None))
    report = lt.report(model, X, latency=False)
    assert report.prunable_params == 6 * (4 + 1) + 2 * 3  # fc's rows and the head's columns


def test_a_negative_dim_off_the_channels_keeps_every_channel() -> None:
    graph = TrimGraph(_NarrowedWidth(), torch.randn(1, 1, 3, 6))
    group = next(g for g in graph.groups if g.name == "a")
    b = next(m for m in group.members if (m.module, m.side) == ("b", "in"))
    assert b.channels.tolist() == b.units.tolist() == [0, 1, 2, 3]


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

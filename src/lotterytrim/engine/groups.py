"""Unit groups: the coupled units of a traced model, their member layers and tensor slices."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

__all__ = ["Member", "Entry", "UnitGroup", "TensorAliases"]


@dataclass(frozen=True)
class Member:
    """One layer's share of a group: its channels on one side and the unit of each channel."""

    module: str
    layer_type: str
    side: str  # "out" (the layer's output channels) or "in" (its input channels)
    channels: np.ndarray = field(repr=False)
    units: np.ndarray = field(repr=False)
    producer: bool = True


@dataclass(frozen=True)
class Entry:
    """Indices of one tensor along one dim owned by the group's units."""

    tensor: str
    dim: int
    indices: np.ndarray
    units: np.ndarray
    role: str
    module: str


@dataclass
class UnitGroup:
    """A set of coupled units: removing unit ``u`` removes its slice in every member layer."""

    id: int
    name: str
    n_units: int
    members: tuple[Member, ...]
    unit_params: np.ndarray = field(repr=False)  # params owned by each unit (first order)
    protected: str | None = None  # why the group cannot lose units (None: it can)
    entries: tuple[Entry, ...] = field(default=(), repr=False)

    @property
    def unit_cost(self) -> float:
        """Mean parameters removed with one unit (shared weights counted once per unit)."""
        return float(self.unit_params.mean()) if self.n_units else 0.0

    @property
    def layers(self) -> list[str]:
        """Names of the member layers."""
        return sorted({m.module for m in self.members})

    def producers(self) -> list[Member]:
        """Members that compute the units (conv, linear, recurrent, embedding outputs)."""
        return [m for m in self.members if m.side == "out" and m.producer]


class TensorAliases:
    """State_dict names of every tensor, grouped by identity (tied weights share a canonical)."""

    def __init__(self, model: nn.Module) -> None:
        by_id: dict[int, list[str]] = {}
        self.param_shapes: dict[str, tuple[int, ...]] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            by_id.setdefault(id(p), []).append(name)
        for name, b in model.named_buffers(remove_duplicate=False):
            if b is not None and b.dim() > 0:
                by_id.setdefault(id(b), []).append(name)
        self.names: dict[str, list[str]] = {}
        self.canonical: dict[str, str] = {}
        for names in by_id.values():
            self.names[names[0]] = names
            for n in names:
                self.canonical[n] = names[0]
        for name, p in model.named_parameters():
            self.param_shapes[self.canonical[name]] = tuple(p.shape)


def protect_ties(groups: list[UnitGroup], aliases: TensorAliases) -> None:
    """Protect groups that would slice one tied tensor apart, naming the tie.

    A weight shared by two layers (an embedding tied to an output head) is one tensor: when
    two groups each own the same dim of it, removing units in one would cut the other's layer.
    """
    owners: dict[tuple[str, int], list[UnitGroup]] = {}
    for g in groups:
        for e in g.entries:
            owners.setdefault((e.tensor, e.dim), [])
            if g not in owners[(e.tensor, e.dim)]:
                owners[(e.tensor, e.dim)].append(g)
    for (tensor, dim), tied in owners.items():
        names = aliases.names.get(tensor, [tensor])
        if len(tied) < 2 or len(names) < 2:
            continue
        why = (
            f"weight tied: {' and '.join(repr(n) for n in names)} are one tensor, whose dim "
            f"{dim} groups {', '.join(repr(g.name) for g in tied)} would each cut; tied weights "
            "keep that dim whole"
        )
        for g in tied:
            g.protected = f"{g.protected}; {why}" if g.protected else why

"""Index arrays through torch-pruning's dependency links, vectorised, and unit merging.

torch-pruning maps one channel index at a time; the graph maps whole numpy arrays of indices,
each carrying the *root* unit it came from, and merges roots that the model couples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch_pruning as tp
from torch_pruning.dependency import index_mapping as _im

__all__ = [
    "ModHidden",
    "ExpandHidden",
    "MergeDims",
    "SizedSlice",
    "dedupe",
    "map_indices",
    "Unmappable",
    "UnionFind",
    "fix_glu",
]


class ModHidden:
    """Recurrent output features to hidden-state features: f -> f % hidden."""

    def __init__(self, hidden: int) -> None:
        self.hidden = hidden

    def vec(self, idx: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return dedupe(idx % self.hidden, root)


class ExpandHidden:
    """Hidden-state features back to recurrent output features in every direction."""

    def __init__(self, hidden: int, dirs: int) -> None:
        self.hidden, self.dirs = hidden, dirs

    def vec(self, idx: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(self.dirs) * self.hidden
        return (idx[:, None] + k[None, :]).ravel(), np.repeat(root, self.dirs)


class MergeDims:
    """A channel of a dim that a reshape merges with others, to its columns of the merged dim.

    Channel ``c`` of a dim of ``size``, with ``outer`` elements of the merged dims before it and
    ``inner`` after it, owns columns ``o * size * inner + c * inner + i``; ``reverse`` maps
    columns back to channels.
    """

    def __init__(self, size: int, inner: int, outer: int, reverse: bool) -> None:
        self.size, self.inner, self.outer, self.reverse = size, inner, outer, reverse

    def vec(self, idx: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.reverse:
            return dedupe((idx // self.inner) % self.size, root)
        o = np.arange(self.outer, dtype=np.int64)[:, None] * (self.size * self.inner)
        cols = (o + np.arange(self.inner, dtype=np.int64)[None, :]).ravel()
        return (idx[:, None] * self.inner + cols[None, :]).ravel(), np.repeat(root, cols.size)


class SizedSlice(_im._SliceIndexMapping):
    """A slice with resolved bounds that knows the ``size`` of the dim it cuts.

    Mapped back, an index that would land past that size is dropped: in a loop through a slice
    (a state carried over from an earlier step), indices cannot grow without bound.
    """

    def __init__(self, dim: int, start: int, step: int, end: int, size: int, reverse: bool) -> None:
        super().__init__(dim=dim, start=start, step=step, end=end, reverse=reverse)
        self.size = size


def dedupe(idx: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique indices, each with the root of its first occurrence."""
    uniq, first = np.unique(idx, return_index=True)
    return uniq, root[first]


class Unmappable(Exception):
    """An index mapping this module does not know."""


def map_indices(mapping: Any, idx: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply one torch-pruning index mapping to index arrays, keeping each index's root."""
    if hasattr(mapping, "vec"):
        return mapping.vec(idx, root)
    if isinstance(mapping, _im._FlattenIndexMapping):
        s = mapping._stride
        if mapping.reverse:
            return dedupe(idx // s, root)
        return (idx[:, None] * s + np.arange(s)[None, :]).ravel(), np.repeat(root, s)
    if isinstance(mapping, _im._ConcatIndexMapping):
        lo, hi = mapping.offset[0], mapping.offset[1]
        if mapping.reverse:
            keep = (idx >= lo) & (idx < hi)
            return idx[keep] - lo, root[keep]
        return idx + lo, root
    if isinstance(mapping, _im._SplitIndexMapping):
        lo, hi = mapping.offset[0], mapping.offset[1]
        if mapping.reverse:
            return idx + lo, root
        keep = (idx >= lo) & (idx < hi)
        return idx[keep] - lo, root[keep]
    if isinstance(mapping, _im._SliceIndexMapping):
        start, step, end = mapping.start, mapping.step, mapping.end
        if not all(isinstance(v, int) and 0 <= v < 2**63 for v in (start, step, end)) or step < 1:
            # a bound from the end (autograd saves it unsigned) or one autograd did not keep
            shown = ":".join(
                str(v - 2**64 if isinstance(v, int) and v >= 2**63 else v)
                for v in (start, end, step)
            )
            raise Unmappable(f"of a slice [{shown}] along dim {mapping.dim} with unresolved bounds")
        if mapping.reverse:
            full = idx * step + start
            if not isinstance(mapping, SizedSlice):
                return full, root
            keep = full < mapping.size  # no index past the sliced dim
            return full[keep], root[keep]
        keep = (idx >= start) & (idx < end) & ((idx - start) % step == 0)
        return (idx[keep] - start) // step, root[keep]
    raise Unmappable(type(mapping).__name__)


class UnionFind:
    """Union-find over unit roots (array-backed)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = int(p[a])
        return a

    def union_arrays(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = self.find(x), self.find(y)
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def labels(self) -> tuple[np.ndarray, int]:
        roots = np.array([self.find(i) for i in range(self.parent.size)], dtype=np.int64)
        uniq, labels = np.unique(roots, return_inverse=True)
        return labels.astype(np.int64), int(uniq.size)


def fix_glu(dg: tp.DependencyGraph) -> None:
    """``glu`` halves its input: channel ``c`` and ``c + half`` both become output ``c``."""
    for node in list(dg.module2node.values()):
        if type(node.grad_fn).__name__ != "GluBackward0":
            continue
        half = int(node.grad_fn._saved_self.shape[node.grad_fn._saved_dim]) // 2
        for src in node.inputs:
            for dep in src.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = ModHidden(half)
            for dep in node.dependencies:
                if dep.target is src:
                    dep.index_mapping[0] = ExpandHidden(half, 2)

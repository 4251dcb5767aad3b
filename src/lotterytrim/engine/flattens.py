"""Flattens read from the traced shapes: which columns of a merged dim belong to a channel.

torch-pruning guesses a flatten's stride from the widths of the layers on either side, and only
for some tensor ranks. A CRNN folds frequency into channels after a permute,
``x.permute(0, 3, 1, 2).flatten(2)``: the (batch, time, channels, freq) tensor becomes
(batch, time, channels * freq), so channel ``c`` owns ``freq`` consecutive columns of the
recurrent layer's input. Here every reshape whose input and output shapes were recorded while
tracing is mapped exactly: the channel dim is followed from the nearest layer upstream through
permutes and transposes, and the dims the reshape merges give each channel its columns
(channel-major or not). Reshapes that split the channel dim (attention heads) are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from lotterytrim.engine import layers
from lotterytrim.engine.indexmap import MergeDims

__all__ = ["fix_flattens", "channel_dim_of"]

_RESHAPES = frozenset({"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"})

_COPIES = frozenset({"CloneBackward0", "ToCopyBackward0"})
"""Copies inside an op (a reshape of a permuted tensor), unrecorded but keeping the layout."""

_Merge = tuple[int, int, int, int]  # output dim, channel size, inner and outer extent


def fix_flattens(dg: tp.DependencyGraph, shapes: Mapping[int, tuple[int, ...]]) -> None:
    """Replace the channel mapping of every traced reshape that merges the channel dim.

    ``shapes`` holds the output shape of every op recorded while tracing, by ``id(grad_fn)``.
    """
    up: dict[int, int | None] = {}
    for node in list(dg.module2node.values()):
        fn = node.grad_fn
        out = shapes.get(id(fn))
        sizes = getattr(fn, "_saved_self_sym_sizes", None)
        if type(fn).__name__ not in _RESHAPES or out is None or sizes is None:
            continue
        if len(node.inputs) != 1:
            continue
        src = node.inputs[0]
        cd = _channel_dim(src, shapes, up)
        if cd is None or cd >= len(sizes):
            continue
        merge = _merge(tuple(int(s) for s in sizes), out, cd)
        if merge is None or _consumers_disagree(node, merge[0], len(out), shapes):
            continue
        _, size, inner, outer = merge
        flat = inner == 1 and outer == 1
        for dep in node.dependencies:
            if dep.target is src:
                dep.index_mapping[0] = None if flat else MergeDims(size, inner, outer, True)
        for dep in src.dependencies:
            if dep.target is node:
                dep.index_mapping[0] = None if flat else MergeDims(size, inner, outer, False)


def channel_dim_of(node: Any, shapes: Mapping[int, tuple[int, ...]]) -> int | None:
    """The dim of a traced node's output that indexes the channels of the layer upstream."""
    return _channel_dim(node, shapes, {})


def _norm(dim: int, ndim: int) -> int:
    """A saved dim as a non-negative index (autograd stores negative dims unsigned)."""
    dim = dim - 2**64 if dim >= 2**63 else dim
    return dim % ndim


def _is_layer(module: Any) -> bool:
    return isinstance(module, nn.Module) and not type(module).__module__.startswith("torch_pruning")


def _channel_dim(
    node: Any, shapes: Mapping[int, tuple[int, ...]], memo: dict[int, int | None]
) -> int | None:
    """The dim of ``node``'s output that indexes the channels of the nearest layer upstream."""
    key = id(node)
    if key not in memo:
        memo[key] = None  # a cycle or a deep chain reads as unknown
        memo[key] = _channel_dim_uncached(node, shapes, memo)
    return memo[key]


def _channel_dim_uncached(
    node: Any, shapes: Mapping[int, tuple[int, ...]], memo: dict[int, int | None]
) -> int | None:
    fn = node.grad_fn
    shape = shapes.get(id(fn))
    if shape is None and type(fn).__name__ in _COPIES and len(node.inputs) == 1:
        return _channel_dim(node.inputs[0], shapes, memo)  # a reshape's own copy
    if shape is None or not shape:
        return None
    if _is_layer(node.module):
        adapter = layers.adapter_for(node.module)
        if adapter is None:
            return None
        return adapter.channel_dim(node.module, torch.empty((1,) * len(shape)))
    if not node.inputs:
        return None
    name = type(fn).__name__
    if name == "PermuteBackward0":
        d = _channel_dim(node.inputs[0], shapes, memo)
        dims = [_norm(int(x), len(shape)) for x in fn._saved_dims]
        return None if d is None else dims.index(d)
    if name == "TransposeBackward0":
        d = _channel_dim(node.inputs[0], shapes, memo)
        a, b = _norm(int(fn._saved_dim0), len(shape)), _norm(int(fn._saved_dim1), len(shape))
        return None if d is None else {a: b, b: a}.get(d, d)
    if name in _RESHAPES:
        d = _channel_dim(node.inputs[0], shapes, memo)
        sizes = tuple(int(s) for s in getattr(fn, "_saved_self_sym_sizes", ()))
        merge = None if d is None or d >= len(sizes) else _merge(sizes, shape, d)
        return merge[0] if merge is not None and merge[2] == merge[3] == 1 else None
    for src in node.inputs:  # an op that keeps the layout (activation, pooling, sum, slice)
        if len(shapes.get(id(src.grad_fn), ())) == len(shape):
            d = _channel_dim(src, shapes, memo)
            if d is not None:
                return d
    return None


def _groups(a: Sequence[int], b: Sequence[int]) -> list[tuple[range, range]] | None:
    """Runs of input dims and output dims of a reshape whose sizes multiply to the same number."""
    if 0 in a or 0 in b:
        return None
    i = j = 0
    out = []
    while i < len(a) or j < len(b):
        i0, j0, pa, pb = i, j, 1, 1
        if i < len(a):
            pa, i = a[i], i + 1
        if j < len(b):
            pb, j = b[j], j + 1
        while pa != pb:
            if pa < pb and i < len(a):
                pa, i = pa * a[i], i + 1
            elif pb < pa and j < len(b):
                pb, j = pb * b[j], j + 1
            else:
                return None
        out.append((range(i0, i), range(j0, j)))
    return out


def _merge(sizes: tuple[int, ...], out: tuple[int, ...], cd: int) -> _Merge | None:
    """Where dim ``cd`` of ``sizes`` lands in ``out``, when a reshape keeps or merges it whole."""
    groups = _groups(sizes, out)
    if groups is None:
        return None
    for ins, outs in groups:
        if cd not in ins:
            continue
        if len(outs) != 1:
            return None  # the channel dim is split (heads) or spread over several dims
        inner = int(np.prod([sizes[d] for d in ins if d > cd], dtype=np.int64))
        outer = int(np.prod([sizes[d] for d in ins if d < cd], dtype=np.int64))
        return outs[0], sizes[cd], inner, outer
    return None


def _consumers_disagree(
    node: Any, dim: int, ndim: int, shapes: Mapping[int, tuple[int, ...]]
) -> bool:
    """Whether a layer fed by the reshape reads its input channels on a dim other than ``dim``."""
    stack = [(o, dim, ndim) for o in node.outputs]
    seen: set[int] = set()
    while stack:
        cur, d, nd = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if _is_layer(cur.module):
            adapter = layers.adapter_for(cur.module)
            if adapter is not None and adapter.channel_dim(cur.module, torch.empty((1,) * nd)) != d:
                return True
            continue
        fn = cur.grad_fn
        shape = shapes.get(id(fn))
        if shape is None or len(shape) != nd:
            continue  # a reshape or an op whose output was not seen: no verdict
        name = type(fn).__name__
        if name == "PermuteBackward0":
            d = [_norm(int(x), nd) for x in fn._saved_dims].index(d)
        elif name == "TransposeBackward0":
            a, b = _norm(int(fn._saved_dim0), nd), _norm(int(fn._saved_dim1), nd)
            d = {a: b, b: a}.get(d, d)
        elif name in _RESHAPES:
            continue
        stack.extend((o, d, nd) for o in cur.outputs)
    return False

"""Slices along time are not slices of channels: cropped skips of 1-D U-Nets and denoisers.

torch-pruning reads a slice of a 3-D tensor along its last dim as a slice of channels, as in a
(batch, sequence, features) layout. A ``Conv1d`` output is (batch, channels, time): cropping
it to the decoder's length, ``skip[..., off:off + L]``, keeps every channel, and mapping unit
indices through it as if it cut channels couples the wrong units or runs off the layer. Where
the sliced tensor comes from a layer whose channels are on dim 1, the slice maps channels to
themselves.

Autograd reports a negative saved int (``x[..., -2:]``, ``narrow(x, -1, ...)``) as its unsigned
64-bit twin, ``2**64 - 2``, and a slice to the end as ``end = sys.maxsize``; torch-pruning takes
those bounds as they come. :func:`fix_slice_bounds` resolves them against the sliced dim's size,
as Python does, so channel indices map through the slice the model runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.dependency.index_mapping import _SliceIndexMapping

from lotterytrim.engine import layers
from lotterytrim.engine.indexmap import SizedSlice

__all__ = ["channel_slices", "fix_slice_bounds", "fix_time_slices"]

_PROBE = torch.empty(1, 1, 1)  # a 3-D output, to ask an adapter where its channels are
#: where torch-pruning reads channels, by a tensor's rank: the features of (N, F) and
#: (N, T, F), dim 1 of (N, C, H, W); along any other dim of these ranks a slice keeps them all
_CHANNEL_DIM = {2: 1, 3: 2, 4: 1}


def _signed(value: Any) -> int | None:
    """A saved int as Python reads it: autograd stores a negative one unsigned."""
    if value is None:
        return None
    value = int(value)
    return value - 2**64 if value >= 2**63 else value


def fix_slice_bounds(dg: tp.DependencyGraph) -> None:
    """Resolve the bounds of every slice torch-pruning maps, against the size of its dim.

    A slice along a dim other than the channels (``_CHANNEL_DIM``: a batch of 2-D features, the
    time of 3-D ones), read as such once its dim is signed, maps channels to themselves. A
    slice whose input sizes autograd does not keep is left as it is.
    """
    for node in list(dg.module2node.values()):
        if node.type != tp.ops.OPTYPE.SLICE:
            continue
        fn = node.grad_fn
        sizes = getattr(fn, "_saved_self_sym_sizes", None)
        dim = _signed(getattr(fn, "_saved_dim", None))
        if sizes is None or dim is None or not -len(sizes) <= dim < len(sizes):
            continue
        dim %= len(sizes)
        fwd: SizedSlice | None = None  # None: channels map to themselves
        bwd: SizedSlice | None = None
        if _CHANNEL_DIM.get(len(sizes), dim) == dim:
            bounds = slice(
                _signed(fn._saved_start), _signed(fn._saved_end), _signed(fn._saved_step)
            )
            size = int(sizes[dim])
            start, end, step = bounds.indices(size)
            fwd = SizedSlice(dim, start, step, max(end, start), size, reverse=False)
            bwd = SizedSlice(dim, start, step, max(end, start), size, reverse=True)
        for src in node.inputs:
            for dep in node.dependencies:
                if dep.target is src and isinstance(dep.index_mapping[0], _SliceIndexMapping):
                    dep.index_mapping[0] = bwd
            for dep in src.dependencies:
                if dep.target is node and isinstance(dep.index_mapping[0], _SliceIndexMapping):
                    dep.index_mapping[0] = fwd


def fix_time_slices(dg: tp.DependencyGraph) -> None:
    """Turn the channel mappings of 3-D slices along dim 2 of (N, C, T) tensors into identity."""
    for node in list(dg.module2node.values()):
        if node.type != tp.ops.OPTYPE.SLICE:
            continue
        fn = node.grad_fn
        sizes = getattr(fn, "_saved_self_sym_sizes", None)
        if sizes is None or len(sizes) != 3 or (_signed(fn._saved_dim) or 0) % 3 != 2:
            continue
        if _channel_dim_upstream(node) != 1:
            continue
        for src in node.inputs:
            for dep in node.dependencies:
                if dep.target is src:
                    dep.index_mapping[0] = None
            for dep in src.dependencies:
                if dep.target is node:
                    dep.index_mapping[0] = None


def channel_slices(dg: tp.DependencyGraph) -> dict[int, str]:
    """Slices that take part of a tensor's channels, by node id, each with why it protects.

    Their bounds are numbers in ``forward`` (``h[..., 4:12]``): once units are removed before or
    inside them, the same bounds pick other channels, and the model may still run, wrongly. The
    groups whose units pass through one are protected (``TrimGraph``). A slice that keeps every
    channel, or one along time (mapped to identity above), is not listed.
    """
    found: dict[int, str] = {}
    for node in list(dg.module2node.values()):
        if node.type != tp.ops.OPTYPE.SLICE:
            continue
        maps = [
            dep.index_mapping[0]
            for src in node.inputs
            for dep in src.dependencies
            if dep.target is node and isinstance(dep.index_mapping[0], SizedSlice)
        ]
        sizes = getattr(node.grad_fn, "_saved_self_sym_sizes", None)
        if not maps or sizes is None:
            continue
        m = maps[0]
        # a slice of positions (a position table cut to the input's length) keeps every channel
        if m.dim % len(sizes) != _CHANNEL_DIM.get(len(sizes)):
            continue
        if m.start == 0 and m.step == 1 and m.end >= m.size:
            continue
        found[id(node)] = (
            f"its channels pass through a slice [{m.start}:{m.end}:{m.step}] of {m.size} along "
            f"dim {m.dim} with bounds fixed in forward, which would pick other channels once "
            "units are removed"
        )
    return found


def _channel_dim_upstream(node: Any) -> int | None:
    """The channel dim of the nearest layer upstream of ``node`` that has an adapter."""
    seen: set[int] = set()
    stack = list(node.inputs)
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        module = cur.module
        if isinstance(module, nn.Module) and not type(module).__module__.startswith(
            "torch_pruning"
        ):
            adapter = layers.adapter_for(module)
            if adapter is not None:
                return adapter.channel_dim(module, _PROBE)
        stack.extend(cur.inputs)
    return None

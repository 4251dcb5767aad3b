"""Slices along time are not slices of channels: cropped skips of 1-D U-Nets and denoisers.

torch-pruning reads a slice of a 3-D tensor along its last dim as a slice of channels, as in a
(batch, sequence, features) layout. A ``Conv1d`` output is (batch, channels, time): cropping
it to the decoder's length, ``skip[..., off:off + L]``, keeps every channel, and mapping unit
indices through it as if it cut channels couples the wrong units or runs off the layer. Where
the sliced tensor comes from a layer whose channels are on dim 1, the slice maps channels to
themselves.
"""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from lotterytrim.engine import layers

__all__ = ["fix_time_slices"]

_PROBE = torch.empty(1, 1, 1)  # a 3-D output, to ask an adapter where its channels are


def fix_time_slices(dg: tp.DependencyGraph) -> None:
    """Turn the channel mappings of 3-D slices along dim 2 of (N, C, T) tensors into identity."""
    for node in list(dg.module2node.values()):
        if node.type != tp.ops.OPTYPE.SLICE:
            continue
        fn = node.grad_fn
        sizes = getattr(fn, "_saved_self_sym_sizes", None)
        if sizes is None or len(sizes) != 3 or int(fn._saved_dim) % 3 != 2:
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

"""What removing units costs and saves: exact parameter counts, and per-unit weights.

:class:`ParamCost` counts the parameters left after any removal exactly (a weight shared by two
removed units counted once); :func:`unit_costs` weighs each unit by its parameters or by the
multiply-accumulates it takes part in, for cost-aware ranking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from lotterytrim.calls import eval_mode, run_model, tensor_leaves
from lotterytrim.engine.adapter import FAN_IN, FAN_OUT
from lotterytrim.engine.graph import TrimGraph

__all__ = ["ParamCost", "unit_costs"]


class ParamCost:
    """Exact parameter count after removing any units of prunable groups.

    A weight shared by a removed output unit of one layer and a removed input unit of the next
    is counted once: each parameter tensor keeps ``prod(size_d - removed_d)`` elements.
    """

    def __init__(self, graph: TrimGraph) -> None:
        shapes = graph.param_shapes
        self.tensors = list(shapes)
        tid = {t: i for i, t in enumerate(self.tensors)}
        self.ndim = max((len(s) for s in shapes.values()), default=1)
        self.sizes = np.ones((len(self.tensors), self.ndim), dtype=np.float64)
        for i, t in enumerate(self.tensors):
            self.sizes[i, : len(shapes[t])] = shapes[t]
        self.total = float(np.prod(self.sizes, axis=1).sum()) if self.tensors else 0.0
        # one row per (group, unit, tensor-dim) with the number of indices the unit owns there
        rows_g, rows_u, rows_td, rows_c = [], [], [], []
        for g in graph.groups:
            if g.protected is not None:
                continue
            for e in g.entries:
                if e.tensor not in tid:
                    continue  # buffers do not count as parameters
                counts = np.bincount(e.units, minlength=g.n_units)
                nz = np.flatnonzero(counts)
                rows_g.append(np.full(nz.size, g.id))
                rows_u.append(nz)
                rows_td.append(np.full(nz.size, tid[e.tensor] * self.ndim + e.dim))
                rows_c.append(counts[nz].astype(np.float64))
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        self.g = cat(rows_g, np.int64)
        self.u = cat(rows_u, np.int64)
        self.td = cat(rows_td, np.int64)
        self.c = cat(rows_c, np.float64)

    def remaining(self, chosen: np.ndarray) -> float:
        """Parameters left when the rows flagged in ``chosen`` (bool per row) are removed."""
        removed = np.bincount(self.td[chosen], weights=self.c[chosen], minlength=self.sizes.size)
        left = self.sizes - removed.reshape(self.sizes.shape)
        return float(np.prod(np.maximum(left, 0), axis=1).sum())

    def rows_for(self, removal: Mapping[int, np.ndarray]) -> np.ndarray:
        """Bool per row: whether the row's unit is in ``removal``."""
        chosen = np.zeros(self.g.size, dtype=bool)
        for gid, units in removal.items():
            sel = self.g == gid
            chosen[sel] = np.isin(self.u[sel], units)
        return chosen


def unit_costs(graph: TrimGraph, how: str) -> dict[int, np.ndarray]:
    """What each unit of each prunable group costs: parameters, or multiply-accumulates of one
    forward pass over the example inputs (weights times the positions they are applied at)."""
    if how == "params":
        return {g.id: np.maximum(g.unit_params.astype(np.float64), 1.0) for g in graph.groups}
    positions = _positions(graph.model, graph.example_inputs)
    out: dict[int, np.ndarray] = {}
    for g in graph.groups:
        macs = np.zeros(g.n_units, dtype=np.float64)
        for e in g.entries:
            if e.role not in (FAN_IN, FAN_OUT) or e.module not in positions:
                continue
            shape = graph.param_shapes.get(e.tensor)
            if shape is None:
                continue
            per_index = float(np.prod(shape)) / max(shape[e.dim], 1)
            macs += np.bincount(e.units, minlength=g.n_units) * per_index * positions[e.module]
        out[g.id] = np.where(macs > 0, macs, np.maximum(g.unit_params, 1.0))
    return out


def _positions(model: nn.Module, inputs: Any) -> dict[str, float]:
    """For each module with weights: how many times per example its weight is applied."""
    first = next((t for t in tensor_leaves(inputs)), None)
    batch = float(first.shape[0]) if first is not None and first.dim() > 1 else 1.0
    found: dict[str, float] = {}
    hooks = []

    def hook(name: str, module: nn.Module) -> Callable[[nn.Module, Any, Any], None]:
        def record(_m: nn.Module, _args: Any, out: Any) -> None:
            y = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(y, torch.Tensor) or y.dim() == 0:
                return
            conv = isinstance(module, nn.modules.conv._ConvNd) and y.dim() > 1
            width = y.shape[1] if conv and y.dim() > 2 else y.shape[-1 if not conv else 0]
            found[name] = float(y.numel()) / max(width, 1) / (batch if y.dim() > 1 else 1.0)

        return record

    for name, m in model.named_modules():
        if isinstance(getattr(m, "weight", None), torch.Tensor):
            hooks.append(m.register_forward_hook(hook(name, m)))
    try:
        with eval_mode(model), torch.no_grad():
            run_model(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return {k: max(v, 1.0) for k, v in found.items()}

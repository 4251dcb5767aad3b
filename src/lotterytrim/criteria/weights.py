"""Criteria read from the weights alone: ``magnitude`` (paper eq. 3), ``batchnorm`` (eq. 5)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from lotterytrim.criteria.base import LayerCriterion
from lotterytrim.engine import layers
from lotterytrim.engine.adapter import FAN_IN, logical_shape, underlying
from lotterytrim.engine.groups import UnitGroup
from lotterytrim.errors import CriterionError

from ..calls import tensor_at

__all__ = ["Magnitude", "BatchNorm", "fan_in_sum", "logical_weight"]


class Magnitude(LayerCriterion):
    """Paper eq. 3: L1 norm of each unit's incoming weights (its fan-in)."""

    name = "magnitude"

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        return fan_in_sum(module, lambda w, g: w.abs(), grads=None)


class BatchNorm(LayerCriterion):
    """Paper eq. 5: |gamma| of the norm layer that follows each unit."""

    name = "batchnorm"
    scores_producers = False

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        w = getattr(module, "weight", None)
        if not isinstance(w, torch.Tensor) or isinstance(module, nn.PReLU):
            return None
        return w.detach().abs().reshape(-1)

    def _missing(self, groups: list[UnitGroup]) -> None:
        if groups:
            names = "; ".join(f"'{g.name}' (layers {', '.join(g.layers)})" for g in groups)
            raise CriterionError(
                "criterion 'batchnorm' needs a norm layer with a scale after every trimmed "
                f"unit; these groups have none: {names}. Use another criterion or mark them "
                "unprunable."
            )


def logical_weight(module: nn.Module, name: str) -> torch.Tensor | None:
    """The weight the layer computes with (resolving parametrizations and weight norm)."""
    parts = underlying(module, name)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    t = getattr(module, name, None)
    if isinstance(t, torch.Tensor) and all(t.shape[d] >= 1 for d in range(t.dim())):
        shape = logical_shape(module, name)
        if tuple(t.shape) == tuple(shape):
            return t
    g, v = parts[0][1], parts[1][1]
    dims = [d for d in range(v.dim()) if g.shape[d] == 1]
    return v * (g / v.norm(dim=dims, keepdim=True))


def fan_in_sum(
    module: nn.Module,
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    grads: dict[int, torch.Tensor] | None,
) -> torch.Tensor | None:
    """Sum ``fn(weight, grad)`` over each output channel's incoming weights."""
    ad = layers.adapter_for(module)
    if ad is None or not ad.producer:
        return None
    n = ad.out_channels(module)
    if not n:
        return None
    total = torch.zeros(n, dtype=torch.float64)
    seen: set[tuple[str, int]] = set()
    for p in ad.out_pieces(module, np.arange(n)):
        if p.role != FAN_IN:
            continue
        if grads is None:
            logical = p.tensor.split(".")[1] if p.tensor.startswith("parametrizations.") else None
            if logical is None and p.tensor.endswith(("_g", "_v")):
                logical = p.tensor[:-2]
            key = (logical or p.tensor, p.dim)
            if key in seen:
                continue
            seen.add(key)
            w = logical_weight(module, logical) if logical else tensor_at(module, p.tensor)
            g = None
        else:
            w = tensor_at(module, p.tensor)
            g = grads.get(id(w)) if w is not None else None
            if g is None:
                continue
        if w is None:
            continue
        with torch.no_grad():
            vals = fn(w.detach(), g).double()
            dims = [d for d in range(vals.dim()) if d != p.dim]
            per_index = (vals.sum(dim=dims) if dims else vals).cpu()
        rows = torch.as_tensor(p.rows, dtype=torch.long)
        total += per_index[rows].sum(dim=1)
    return total

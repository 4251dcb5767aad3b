"""The original (unstructured) lottery ticket: global magnitude masks on ``torch.nn.utils.prune``.

Masks cover the weights of convolutions and linear layers. Each step masks ``amount`` of the
weights still unmasked, smallest magnitude first across the whole network; the masks stay in
place through training, so masked weights stay zero. The names are ``torch.nn.utils.prune``'s
(``weight_orig`` parameter, ``weight_mask`` buffer, a pruning-method forward pre-hook), and
``prune.remove`` / ``prune.is_pruned`` work as usual, but training runs at dense speed: instead of
building ``weight_orig * weight_mask`` anew at every forward pass, the hook zeroes the masked
entries of ``weight_orig`` in place and hands the layer that tensor through a node that masks
its gradient. :func:`zero_fan_in_removal` finds the units that masking emptied, for removal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from lotterytrim.engine.adapter import FAN_IN
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.masknames import effective, is_masked, mask_attr, model_tensors, orig_attr
from lotterytrim.options import DEFAULT_MIN_UNITS

__all__ = [
    "maskable",
    "current_masks",
    "global_magnitude_masks",
    "apply_masks",
    "enforce_masks",
    "strip_masks",
    "masked_names",
    "write_stored",
    "zero_fan_in_removal",
    "masked_count",
]

_MASKED_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


class _MaskGrad(torch.autograd.Function):
    """Identity forward (same storage, no copy); the backward zeroes masked entries' gradient."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return weight.detach()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class DenseSpeedMask(prune.CustomFromMask):
    """``prune.custom_from_mask`` that trains at dense speed (same names, same ``remove``).

    Before each forward pass the masked entries of ``<name>_orig`` are set to zero in place
    (no new tensor, no autograd node), and the layer uses that tensor directly; its gradient
    is masked, so an optimizer with fresh state never moves a masked weight.
    """

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        orig = getattr(module, orig_attr(self._tensor_name))
        mask = getattr(module, mask_attr(self._tensor_name))
        with torch.no_grad():
            orig.data.mul_(mask)
        if torch.is_grad_enabled() and orig.requires_grad:
            weight = _MaskGrad.apply(orig, mask)
        else:
            weight = orig.detach()
        setattr(module, self._tensor_name, weight)


def maskable(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Weights the unstructured lottery masks: ``{state_dict name: (module, attribute)}``."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for mod_name, m in model.named_modules():
        if not isinstance(m, _MASKED_TYPES):
            continue
        if is_masked(m, "weight") or isinstance(m._parameters.get("weight"), nn.Parameter):
            out[f"{mod_name}.weight" if mod_name else "weight"] = (m, "weight")
    return out


def current_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The mask of every maskable weight (all ones where no mask is applied yet)."""
    out: dict[str, torch.Tensor] = {}
    for name, (m, attr) in maskable(model).items():
        mask = m._buffers.get(mask_attr(attr))
        out[name] = (
            mask.detach().clone() if mask is not None else torch.ones_like(effective(m, attr))
        )
    return out


def masked_count(model: nn.Module) -> int:
    """Number of weights currently masked to zero."""
    return int(sum(int((mk == 0).sum()) for mk in current_masks(model).values()))


def global_magnitude_masks(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    """New masks that also mask ``amount`` of the still unmasked weights, smallest |w| first."""
    masks = current_masks(model)
    weights = {n: effective(m, a) for n, (m, a) in maskable(model).items()}
    names = list(masks)
    scores = torch.cat([weights[n].abs().double().ravel() for n in names])
    alive = torch.cat([masks[n].ravel() != 0 for n in names])
    k = int(round(amount * int(alive.sum())))
    flat = torch.cat([masks[n].ravel() for n in names]).clone()
    if k > 0:
        ranked = torch.where(alive, scores, torch.full_like(scores, float("inf")))
        drop = torch.argsort(ranked, stable=True)[:k]
        flat[drop] = 0
    out: dict[str, torch.Tensor] = {}
    start = 0
    for n in names:
        size = masks[n].numel()
        out[n] = flat[start : start + size].reshape(masks[n].shape).clone()
        start += size
    return out


def apply_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Put masks in place: ``custom_from_mask`` the first time, in-place updates afterwards."""
    layers = maskable(model)
    for name, mask in masks.items():
        if name not in layers:
            raise KeyError(f"no maskable weight {name!r} in the model")
        m, attr = layers[name]
        current = m._buffers.get(mask_attr(attr))
        if current is None:
            DenseSpeedMask.apply(m, attr, mask=mask.to(effective(m, attr).dtype))
            _refresh(m, attr)
        else:
            if current.shape != mask.shape:
                raise ValueError(
                    f"mask for {name!r} is {tuple(mask.shape)}, "
                    f"the weight is {tuple(current.shape)}"
                )
            current.copy_(mask)
            _refresh(m, attr)


def enforce_masks(model: nn.Module) -> None:
    """Zero the masked entries of every masked weight's stored values and refresh the layer's
    weight, e.g. after values were written into ``<name>_orig`` (a rewind, a reload)."""
    for _, (m, attr) in maskable(model).items():
        if is_masked(m, attr):
            orig = m._parameters[orig_attr(attr)]
            assert orig is not None  # is_masked: the layer stores <attr>_orig
            with torch.no_grad():
                orig.mul_(getattr(m, mask_attr(attr)))
            _refresh(m, attr)


def _refresh(module: nn.Module, attr: str) -> None:
    """Run the layer's mask hook now, so that ``module.<attr>`` reflects its mask at once."""
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, prune.BasePruningMethod) and hook._tensor_name == attr:
            if isinstance(hook, DenseSpeedMask):
                hook(module, ())
            else:
                setattr(module, attr, hook.apply_mask(module))
            return
    setattr(module, attr, module._parameters[orig_attr(attr)] * getattr(module, mask_attr(attr)))


def strip_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Remove the masking reparametrisation (baking masked zeros in); return the masks."""
    masks: dict[str, torch.Tensor] = {}
    for name, (m, attr) in maskable(model).items():
        if is_masked(m, attr):
            mask = m._buffers[mask_attr(attr)]
            assert mask is not None  # is_masked: the layer stores <attr>_mask
            masks[name] = mask.detach().clone()
            prune.remove(m, attr)
    return masks


def zero_fan_in_removal(
    graph: TrimGraph, masks: Mapping[str, torch.Tensor], min_units: int = DEFAULT_MIN_UNITS
) -> dict[int, np.ndarray]:
    """Units of prunable groups whose every masked fan-in weight is zero (keeping ``min_units``)."""
    removal: dict[int, np.ndarray] = {}
    tensors = dict(graph.model.named_parameters(remove_duplicate=False))
    for g in graph.prunable_groups:
        covered = np.zeros(g.n_units, dtype=np.int64)
        alive = np.zeros(g.n_units, dtype=np.int64)
        for e in g.entries:
            if e.role != FAN_IN or e.tensor not in masks or e.tensor not in tensors:
                continue
            w = tensors[e.tensor].detach()
            dims = [d for d in range(w.dim()) if d != e.dim]
            nonzero = (w != 0).sum(dim=dims).numpy() if dims else (w != 0).numpy()
            covered += np.bincount(e.units, minlength=g.n_units)
            alive += np.bincount(e.units, weights=nonzero[e.indices], minlength=g.n_units).astype(
                np.int64
            )
        dead = np.flatnonzero((covered > 0) & (alive == 0))
        keep_at_least = max(min_units, 1)
        if dead.size > g.n_units - keep_at_least:
            dead = dead[keep_at_least - (g.n_units - dead.size) :]
        if dead.size:
            removal[g.id] = dead.astype(np.int64)
    return removal


def masked_names(model: nn.Module) -> set[str]:
    """Names of the maskable weights that carry a mask now."""
    return {n for n, (m, a) in maskable(model).items() if is_masked(m, a)}


def write_stored(model: nn.Module, values: Mapping[str, torch.Tensor]) -> None:
    """Copy values into the model's stored tensors (under masks where masks are applied);
    masked entries stay zero."""
    with torch.no_grad():
        for name, t in model_tensors(model).items():
            if name in values:
                t.copy_(values[name])
    enforce_masks(model)

"""Check a plan read from a file against the model built for it, before and after resizing.

A ``.lt`` file is input from a stranger. Its plan may only slice tensors the model has, keep
tied tensors tied, and set the width attributes the layer adapters own (``out_channels``,
``hidden_size``, ...) or the head counts of hand-written attention (``num_heads``,
``all_head_size``, ...), with values that agree with the sliced tensors. Errors are
``ValueError`` naming the tensor, module or attribute; :mod:`lotterytrim.storage.io` turns
them into ``LoadError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lotterytrim.engine import attention, layers
from lotterytrim.engine.adapter import Adapter
from lotterytrim.engine.plan import TrimPlan

from ..calls import tensor_at

__all__ = ["check_before", "check_after", "apply_checked"]


def _module(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name) if name else model
    except AttributeError as exc:
        raise ValueError(f"plan sets attributes of module {name!r}, absent from the model") from exc


def _owned(module: nn.Module, name: str, keys: Any = ()) -> tuple[Adapter, set[str]]:
    """The adapter of ``module`` and the attribute names it may write."""
    ad = layers.adapter_for(module)
    if ad is None:
        raise ValueError(
            f"plan sets attribute(s) {sorted(keys)} of module {name!r} "
            f"({type(module).__name__}), a layer lotterytrim never resizes"
        )
    return ad, set(ad.attributes(module, ad.out_channels(module), ad.in_channels(module)))


def check_before(
    plan: TrimPlan, model: nn.Module, heads: dict[str, attention.HeadSpec] | None = None
) -> None:
    """Everything checkable before the model is touched: names, shapes, ties, attribute keys.

    ``heads``: the model's hand-written attention modules (:func:`_head_specs`), found here
    when not given.
    """
    seen: dict[int, tuple[str, Any]] = {}
    for name, shape in plan.shapes.items():
        mod_name, _, attr = name.rpartition(".")
        try:
            owner = model.get_submodule(mod_name) if mod_name else model
        except AttributeError:
            owner = None
        t = None if owner is None else owner._parameters.get(attr, owner._buffers.get(attr))
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"plan names tensor {name!r}, which the model does not have")
        if tuple(t.shape) != tuple(shape):
            raise ValueError(
                f"tensor {name!r} is {tuple(t.shape)} in the model, the plan's original is "
                f"{tuple(shape)}"
            )
        keep = [None if k is None else k.tolist() for k in plan.keep.get(name, [])]
        if id(t) in seen and seen[id(t)][1] != keep:
            raise ValueError(
                f"tensors {seen[id(t)][0]!r} and {name!r} are tied in the model but the plan "
                "slices them differently"
            )
        seen.setdefault(id(t), (name, keep))
    heads = _head_specs(model) if heads is None else heads
    for mod_name, attrs in plan.attributes.items():
        module = _module(model, mod_name)
        if mod_name in heads and layers.adapter_for(module) is None:
            spec = heads[mod_name]
            allowed = {spec.heads_attr, *spec.width_attrs}
        else:
            _, allowed = _owned(module, mod_name, attrs)
        for key, value in attrs.items():
            if not _width(value):
                raise ValueError(
                    f"plan sets {key}={value!r:.80} on module {mod_name!r}: widths are "
                    "integers >= 0 (or lists of them)"
                )
        bad = sorted(set(attrs) - allowed)
        if bad:
            raise ValueError(
                f"plan sets attribute(s) {bad} of module {mod_name!r} "
                f"({type(module).__name__}); a file may only set {sorted(allowed)}"
            )


def check_after(
    plan: TrimPlan, model: nn.Module, heads: dict[str, attention.HeadSpec] | None = None
) -> None:
    """After resizing: each module's width attributes agree with its sliced tensors.

    ``heads`` are the hand-written attention modules of the model before resizing (their head
    size does not change); without it, no plan may set head counts.
    """
    heads = heads or {}
    for mod_name, spec in heads.items():  # a head count the plan left out must still fit
        module = _module(model, mod_name)
        if mod_name not in plan.attributes and layers.adapter_for(module) is None:
            _check_heads(spec, module, {}, complete=True)
    for mod_name in plan.attributes:
        module = _module(model, mod_name)
        if mod_name in heads and layers.adapter_for(module) is None:
            _check_heads(heads[mod_name], module, plan.attributes[mod_name])
            continue
        ad, _ = _owned(module, mod_name)
        out, inp = ad.out_channels(module), ad.in_channels(module)
        biggest = max((t.numel() for t in _own_tensors(module)), default=0)
        for n in (out, inp):
            if n is not None and not (isinstance(n, int) and 0 <= n <= max(biggest, 1)):
                raise ValueError(
                    f"module {mod_name!r} ({type(module).__name__}) claims {n!r} channels, "
                    f"more than its tensors hold"
                )
        expected = ad.attributes(module, out, inp)
        for key, value in plan.attributes[mod_name].items():
            now = getattr(module, key)
            if _plain(now) != _plain(expected.get(key, now)) or _plain(now) != _plain(value):
                raise ValueError(
                    f"attribute {key}={value!r} of module {mod_name!r} does not fit its layer"
                )
        pieces = []
        if out is not None:
            pieces += ad.out_pieces(module, np.arange(out))
        if inp is not None:
            pieces += ad.in_pieces(module, np.arange(inp))
        for p in pieces:
            t = tensor_at(module, p.tensor)
            if t is None:
                continue
            rows = np.asarray(p.rows).ravel()
            size = t.shape[p.dim] if t.dim() > p.dim else 0
            if rows.size and (rows.max() >= size or np.unique(rows).size != size):
                raise ValueError(
                    f"module {mod_name!r} ({type(module).__name__}) has widths "
                    f"{plan.attributes[mod_name]} that do not match its tensor {p.tensor!r} "
                    f"of shape {tuple(t.shape)}"
                )


def _head_specs(model: nn.Module) -> dict[str, attention.HeadSpec]:
    """Hand-written attention modules of ``model``, by module name."""
    return {spec.module: spec for spec in attention.find_heads(model).values()}


def _check_heads(
    spec: attention.HeadSpec, module: nn.Module, attrs: dict[str, Any], complete: bool = False
) -> None:
    """A resized attention module: its head count times the head size is its q/k/v width.
    ``complete`` also checks the head attributes the plan does not set."""
    prefix = f"{spec.module}." if spec.module else ""
    widths = {getattr(module, p[len(prefix) :]).out_features for p in spec.projections}
    width = widths.pop() if len(widths) == 1 else None
    expected = attention.head_attributes(spec, width) if width is not None else {}
    if complete:
        attrs = {k: getattr(module, k) for k in expected}
    for key, value in attrs.items():
        now = getattr(module, key)
        if width is None or width % spec.head_dim or now != value or expected.get(key) != value:
            raise ValueError(
                f"attribute {key}={value!r} of attention module {spec.module!r} "
                f"({type(module).__name__}) does not fit its q/k/v width {width} in heads of "
                f"{spec.head_dim}"
            )


def _width(value: Any) -> bool:
    if isinstance(value, list):
        return all(_width(v) for v in value) and bool(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _own_tensors(module: nn.Module) -> list[torch.Tensor]:
    return [t for _, t in module.named_parameters()] + [t for _, t in module.named_buffers()]


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (JSON turns tuples into lists)."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def apply_checked(plan: TrimPlan, model: nn.Module) -> None:
    """Resize ``model`` by a plan from outside (a file, a saved state), checked both sides."""
    heads = _head_specs(model)  # read before resizing: the head size stays, the count follows
    check_before(plan, model, heads)
    plan.apply_to_model(model)
    check_after(plan, model, heads)

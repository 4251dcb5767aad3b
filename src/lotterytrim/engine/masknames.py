"""The names ``torch.nn.utils.prune`` gives masked weights: the one module that knows them.

A masked weight ``w`` becomes a parameter ``w_orig`` (its stored values) and a buffer ``w_mask``;
``w`` itself is recomputed before each forward pass. Plans, rewind points, optimizers and files
name the weight ``w``: these helpers translate between the two views.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ORIG",
    "MASK",
    "orig_attr",
    "mask_attr",
    "is_masked",
    "base_name",
    "effective",
    "masked_weights",
    "model_tensors",
    "plain_state",
    "unsaved_buffers",
]

ORIG = "_orig"  # suffix of the parameter holding a masked weight's stored values
MASK = "_mask"  # suffix of the buffer holding its mask


def orig_attr(attr: str) -> str:
    """The parameter name of masked weight ``attr``'s stored values."""
    return attr + ORIG


def mask_attr(attr: str) -> str:
    """The buffer name of masked weight ``attr``'s mask."""
    return attr + MASK


def is_masked(module: nn.Module, attr: str) -> bool:
    """Whether ``module.<attr>`` carries a mask now."""
    return orig_attr(attr) in module._parameters and mask_attr(attr) in module._buffers


def base_name(name: str) -> str:
    """``x.weight_orig`` -> ``x.weight`` (plans name weights without the pruning suffix)."""
    return name[: -len(ORIG)] if name.endswith(ORIG) else name


def _join(mod: str, attr: str) -> str:
    return f"{mod}.{attr}" if mod else attr


def effective(module: nn.Module, attr: str) -> torch.Tensor:
    """The weight the layer computes with (the masked product when a mask is applied)."""
    orig = module._parameters.get(orig_attr(attr))
    if orig is not None:
        return orig.detach() * getattr(module, mask_attr(attr))
    weight = module._parameters[attr]
    assert weight is not None
    return weight.detach()


def masked_weights(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every weight carrying a mask now: ``{state_dict name: (module, attribute)}``."""
    out: dict[str, tuple[nn.Module, str]] = {}
    for mod_name, m in model.named_modules():
        for pname in m._parameters:
            attr = pname[: -len(ORIG)] if pname.endswith(ORIG) else None
            if attr and mask_attr(attr) in m._buffers:
                out[_join(mod_name, attr)] = (m, attr)
    return out


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by state_dict name, with pruning reparametrisations undone.

    A ``weight_orig`` is reported as ``weight`` (its stored values, not the masked product), and
    ``weight_mask`` is left out: masks belong to the masking state.
    """
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        out[_stored_name(model, name)] = p
    for name, b in model.named_buffers(remove_duplicate=False):
        if b is None or _is_mask_buffer(model, name):
            continue
        out[name] = b
    return out


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the model as a plain model would have it: masked products, no masks.

    The state_dict plus the non-persistent buffers (windows, filterbanks, rotary tables): a
    trimmed model's plan slices those too, so a file that left them out could not be checked.
    """
    masked = {n: effective(m, a) for n, (m, a) in masked_weights(model).items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.endswith(ORIG) and key[: -len(ORIG)] in masked:
            base = key[: -len(ORIG)]
            out[base] = masked[base].clone()
        elif key.endswith(MASK) and key[: -len(MASK)] in masked:
            continue
        else:
            out[key] = value.detach().clone()
    for key, value in unsaved_buffers(model).items():
        out.setdefault(key, value.detach().clone())
    return out


def unsaved_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The non-persistent buffers by name: the model's tensors that ``state_dict()`` leaves out."""
    out: dict[str, torch.Tensor] = {}
    for mod_name, m in model.named_modules(remove_duplicate=False):
        for attr in m._non_persistent_buffers_set:
            b = m._buffers.get(attr)
            if b is not None:
                out[_join(mod_name, attr)] = b
    return out


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    mod, _, attr = name.rpartition(".")
    return (model.get_submodule(mod) if mod else model), attr


def _is_mask_buffer(model: nn.Module, name: str) -> bool:
    if not name.endswith(MASK):
        return False
    owner, attr = _owner(model, name)
    return orig_attr(attr[: -len(MASK)]) in owner._parameters


def _stored_name(model: nn.Module, name: str) -> str:
    if not name.endswith(ORIG):
        return name
    owner, attr = _owner(model, name)
    base = attr[: -len(ORIG)]
    return base_name(name) if mask_attr(base) in owner._buffers else name

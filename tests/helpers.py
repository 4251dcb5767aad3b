"""Test helpers: masked reference models and tensor snapshots."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from lotterytrim.calls import run_model
from lotterytrim.engine.plan import TrimPlan


def masked_copy(model: nn.Module, plan: TrimPlan) -> nn.Module:
    """A copy of ``model`` (untrimmed) with every index the plan removes set to zero."""
    masked = copy.deepcopy(model)
    tensors = dict(masked.named_parameters(remove_duplicate=False))
    tensors.update(dict(masked.named_buffers(remove_duplicate=False)))
    with torch.no_grad():
        for name, ks in plan.keep.items():
            for d, k in enumerate(ks):
                if k is None:
                    continue
                gone = np.setdiff1d(np.arange(plan.shapes[name][d]), k)
                if gone.size:
                    tensors[name].index_fill_(d, torch.as_tensor(gone, dtype=torch.long), 0.0)
    return masked


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every tensor of the model, cloned, plus its train flag."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state


def same_state(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    after = model.state_dict()
    return set(after) == set(before) and all(
        after[k].shape == before[k].shape and torch.equal(after[k], before[k]) for k in before
    )


def outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = run_model(model, inputs)
    if isinstance(out, dict):
        return list(out.values())
    return [out] if isinstance(out, torch.Tensor) else list(out)


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give norm layers non-trivial statistics and scales so equivalence tests mean something."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            w = getattr(m, "weight", None)
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                w.copy_(torch.rand(w.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model

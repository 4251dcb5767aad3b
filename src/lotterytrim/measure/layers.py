"""Per-layer cost tables: each layer's type, units, parameters and MACs, and two models side by
side."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from torch import nn

from lotterytrim.calls import eval_mode
from lotterytrim.measure.probe import check_module, check_runs, count_macs_of, cut_dim, one_example
from lotterytrim.measure.tables import ReportTable, as_float, ratio

__all__ = ["layer_table", "layer_diff"]


def layer_table(model: nn.Module, example_inputs: Any, *, batch_dim: int | None = 0) -> ReportTable:
    """One row per layer that owns parameters: type, units, params and MACs (batch 1).

    Units are output channels (conv), output features (linear), hidden units (recurrent),
    normalised features (norms) or embedding size; missing for other layers. MACs are
    fvcore's per-module counts with this package's handlers, for one example.
    """
    check_module(model)
    args, kwargs = one_example(example_inputs, batch_dim)
    with eval_mode(model):
        check_runs(model, args, kwargs, cut_dim(example_inputs, args, kwargs, batch_dim))
        macs = count_macs_of(model, args, kwargs)
    owners = [(n, m) for n, m in model.named_modules() if _owns_params(m)]
    rows = [
        {
            "type": type(module).__name__,
            "units": _units(module),
            "params": sum(p.numel() for p in module.parameters(recurse=False)),
            "macs": macs.by_module.get(name, 0),
        }
        for name, module in owners
    ]
    frame = pd.DataFrame(rows, index=pd.Index([n for n, _ in owners], name="layer"))
    frame = frame.reindex(columns=["type", "units", "params", "macs"])
    frame["units"] = frame["units"].astype("Int64")
    table = ReportTable(frame)
    table.attrs["units"] = {"columns": {"units": "count", "params": "count", "macs": "count"}}
    return table


def layer_diff(
    model_a: nn.Module,
    model_b: nn.Module,
    example_inputs_a: Any,
    example_inputs_b: Any = None,
    *,
    batch_dim: int | None = 0,
) -> ReportTable:
    """Layer-by-layer comparison of two models matched by module name (b over a ratios).

    ``example_inputs_b`` defaults to ``example_inputs_a``. Layers present in only one model get
    missing values on the other side.
    """
    before = layer_table(model_a, example_inputs_a, batch_dim=batch_dim)
    after_inputs = example_inputs_a if example_inputs_b is None else example_inputs_b
    after = layer_table(model_b, after_inputs, batch_dim=batch_dim)
    names = list(before.index) + [n for n in after.index if n not in before.index]
    a = pd.DataFrame(before).reindex(names)
    b = pd.DataFrame(after).reindex(names)
    frame = pd.DataFrame(index=pd.Index(names, name="layer"))
    frame["type"] = a["type"].where(a["type"].notna(), b["type"])
    for metric in ("units", "params", "macs"):
        frame[f"{metric}_before"] = a[metric].astype("Int64")
        frame[f"{metric}_after"] = b[metric].astype("Int64")
        frame[f"{metric}_ratio"] = [
            ratio(as_float(y), as_float(x)) for x, y in zip(a[metric], b[metric], strict=True)
        ]
    table = ReportTable(frame)
    kinds = {f"{m}_{s}": "count" for m in ("units", "params", "macs") for s in ("before", "after")}
    kinds.update({f"{m}_ratio": "ratio" for m in ("units", "params", "macs")})
    table.attrs["units"] = {"columns": kinds}
    return table


def _owns_params(module: nn.Module) -> bool:
    """True when the module holds parameters directly (not only through children)."""
    return next(module.parameters(recurse=False), None) is not None


def _units(module: nn.Module) -> int | None:
    """Structural width of a layer: the dimension a structured pruner shrinks."""
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) or isinstance(
        module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    ):
        return int(module.out_channels)
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        return int(module.hidden_size)
    if isinstance(module, nn.GroupNorm):
        return int(module.num_channels)
    if isinstance(module, nn.LayerNorm):
        return math.prod(module.normalized_shape)
    if isinstance(module, (nn.modules.batchnorm._NormBase,)):
        return int(module.num_features)
    if isinstance(module, nn.Embedding):
        return int(module.embedding_dim)
    return None

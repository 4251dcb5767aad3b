"""Per-layer cost tables: each layer's type, units, parameters and MACs, and two models side by
side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from torch import nn

from lotterytrim.calls import eval_mode
from lotterytrim.engine.layers import adapter_for
from lotterytrim.measure.probe import check_module, check_runs, count_macs_of, cut_dim, one_example
from lotterytrim.measure.tables import ReportTable, as_float, ratio

__all__ = ["layer_table", "layer_diff", "REST"]


REST = "(rest)"
"""Index label of the row holding what no layer owns: the model's own parameters and the MACs
of operations run outside every layer with parameters (activations, pooling, residual adds)."""


def layer_table(model: nn.Module, example_inputs: Any, *, batch_dim: int | None = 0) -> ReportTable:
    """One row per layer that owns parameters, plus a ``"(rest)"`` row; columns sum to the model.

    Units are counted as the trimmer counts them (see ``lotterytrim.engine.layers.layer_units``):
    output channels, output features, hidden units per direction, normalised features or
    embedding size; missing for other layers. A layer's MACs are those of the operations it runs
    itself, children with parameters excluded (each has its own row), for one example. The last
    row, ``"(rest)"``, holds the model's own parameters and every MAC outside those layers.
    """
    check_module(model)
    args, kwargs = one_example(example_inputs, batch_dim)
    with eval_mode(model):
        check_runs(model, args, kwargs, cut_dim(example_inputs, args, kwargs, batch_dim))
        macs = count_macs_of(model, args, kwargs)
    owners = {n: m for n, m in model.named_modules() if n and _owns_params(m)}
    own_macs = _macs_by_owner(macs.by_module, set(owners))
    params = _params_by_owner(model)
    rows = [
        {
            "type": type(module).__name__,
            "units": _units(module),
            "params": params.get(name, 0),
            "macs": own_macs.get(name, 0),
        }
        for name, module in owners.items()
    ]
    rows.append(
        {"type": REST, "units": None, "params": params.get("", 0), "macs": own_macs.get("", 0)}
    )
    frame = pd.DataFrame(rows, index=pd.Index([*owners, REST], name="layer"))
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


def _params_by_owner(model: nn.Module) -> dict[str, int]:
    """Parameter elements per module that holds them directly, a shared one at its first owner."""
    seen: set[int] = set()
    out: dict[str, int] = {}
    for name, module in model.named_modules():
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                out[name] = out.get(name, 0) + param.numel()
    return out


def _macs_by_owner(by_module: Mapping[str, int], owners: set[str]) -> dict[str, int]:
    """MACs split among the owner modules (and ``""`` for the rest), each MAC counted once.

    fvcore counts a module's MACs with its descendants'; a module's own share is its count minus
    its children's, and it goes to the nearest enclosing owner. The shares add up to the total.
    """
    own = dict(by_module)
    for name, count in by_module.items():
        if name:
            parent = name.rpartition(".")[0]
            own[parent] = own.get(parent, 0) - count
    out: dict[str, int] = {}
    for name, count in own.items():
        owner = name
        while owner and owner not in owners:
            owner = owner.rpartition(".")[0]
        out[owner] = out.get(owner, 0) + count
    return out


def _units(module: nn.Module) -> int | None:
    """Units of a layer as the trimmer counts them (its adapter), or None for other modules."""
    adapter = adapter_for(module)
    if adapter is not None:
        return adapter.units(module)
    if isinstance(module, nn.RNNCellBase):
        return int(module.hidden_size)
    return None

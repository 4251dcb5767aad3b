"""Model cost reports: parameters, MACs, disk bytes, inference memory and latency, as tables.

``report(model, example_inputs)`` measures one model; ``compare({...})`` lines several reports up
in a table like the paper's Table 1; ``layer_table`` and ``layer_diff`` break the cost down per
layer. Every table is a pandas DataFrame of raw numbers that renders (notebook HTML, markdown,
text) with human-readable units. See ``docs/report.md`` for exactly what is counted.
"""

from __future__ import annotations

import html
import math
import os
import statistics
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

if TYPE_CHECKING:
    from lotterytrim._flops import MacCount

__all__ = ["Report", "ReportTable", "compare", "layer_diff", "layer_table", "report"]

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RNN,
    nn.LSTM,
    nn.GRU,
    nn.RNNCell,
    nn.LSTMCell,
    nn.GRUCell,
    nn.Embedding,
)
"""Layers whose parameters a structured pruner can shrink (subclasses included)."""

_METRICS: tuple[tuple[str, str], ...] = (
    ("params", "count"),
    ("prunable_params", "count"),
    ("macs", "count"),
    ("disk_bytes", "bytes"),
    ("param_bytes", "bytes"),
    ("peak_activation_bytes", "bytes"),
    ("memory_bytes", "bytes"),
    ("latency_median_s", "seconds"),
    ("latency_iqr_s", "seconds"),
)
"""The numeric fields of a Report shown in tables, with the unit used to render them."""


@dataclass(frozen=True)
class Report:
    """Cost of one model on one example input (batch 1). Render it with ``to_markdown()``.

    Attributes:
        model: class name of the measured model.
        params: number of parameter elements (shared parameters counted once).
        prunable_params: parameter elements of conv, linear, norm, recurrent and embedding
            layers, minus those under modules declared unprunable (the ``unprunable`` argument
            or an ``lt.unprunable`` tag). Counted per layer type without tracing the model, so
            output layers are included (see ``docs/report.md``).
        macs: multiply-accumulates of one batch-1 forward pass, fvcore convention (one per
            multiply-add; elementwise, reduction and norm operations as listed in the docs).
        macs_by_operator: ``macs`` split per operator (e.g. ``conv``, ``lstm``, ``relu``).
        uncounted_ops: operators met in the forward pass that have no counting rule.
        disk_bytes: size in bytes of the file ``lotterytrim.save(model, path)`` writes.
        param_bytes: bytes of all parameters and buffers held in memory (shared ones once).
        peak_activation_bytes: measured peak bytes of tensors created during one batch-1
            forward pass under ``torch.inference_mode`` (inputs, parameters, buffers excluded).
        memory_bytes: ``param_bytes + peak_activation_bytes``.
        latency_median_s: median seconds of one batch-1 forward on the CPU (None if skipped).
        latency_iqr_s: interquartile range of those timings in seconds (None if skipped).
        threads: torch intra-op threads used for the latency runs (None if skipped).
        runs: timed runs behind the latency figures (0 if skipped).
        input_shapes: shapes of the tensor inputs actually measured (after batch slicing).
    """

    model: str
    params: int
    prunable_params: int
    macs: int
    macs_by_operator: dict[str, int] = field(hash=False, repr=False)
    uncounted_ops: tuple[str, ...]
    disk_bytes: int
    param_bytes: int
    peak_activation_bytes: int
    memory_bytes: int
    latency_median_s: float | None
    latency_iqr_s: float | None
    threads: int | None
    runs: int
    input_shapes: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict of every field."""
        data = asdict(self)
        data["uncounted_ops"] = list(self.uncounted_ops)
        data["input_shapes"] = [list(s) for s in self.input_shapes]
        return data

    def _rows(self) -> list[tuple[str, str]]:
        """(metric, human-readable value) pairs in table order."""
        return [(name, _human(getattr(self, name), kind)) for name, kind in _METRICS]

    def to_markdown(self) -> str:
        """Markdown table of the metrics with human-readable units."""
        return _markdown(["metric", self.model], [list(row) for row in self._rows()])

    def _repr_html_(self) -> str:
        """HTML table of the metrics, shown by notebooks."""
        return _html(["metric", self.model], [list(row) for row in self._rows()])


class ReportTable(pd.DataFrame):
    """A DataFrame of raw numbers that renders (HTML, markdown, text) with human units.

    The unit of each cell comes from ``attrs["units"]``: ``{"columns": {...}, "rows": {...}}``
    mapping labels to ``count``, ``bytes``, ``seconds`` or ``ratio``; column units win.
    Derived frames (slices, arithmetic) are plain DataFrames.
    """

    @property
    def _constructor(self) -> Callable[..., pd.DataFrame]:
        """Operations on the table return plain DataFrames."""
        return pd.DataFrame

    def formatted(self) -> pd.DataFrame:
        """Copy of the table with every cell rendered as a string with units."""
        units = self.attrs.get("units", {})
        columns, rows = units.get("columns", {}), units.get("rows", {})
        cells = [
            [
                _human(self.iloc[i, j], columns.get(col) or rows.get(idx) or "text")
                for j, col in enumerate(self.columns)
            ]
            for i, idx in enumerate(self.index)
        ]
        return pd.DataFrame(cells, index=self.index, columns=self.columns, dtype=object)

    def _cells(self) -> tuple[list[str], list[list[str]], str]:
        """Header and body cells of the formatted table (index first) and their alignment."""
        shown = self.formatted()
        header = [str(self.index.name or "")] + [str(c) for c in shown.columns]
        body = [[str(idx)] + list(row) for idx, row in zip(shown.index, shown.values, strict=True)]
        units = self.attrs.get("units", {})
        numeric = bool(units.get("rows")) or None
        align = "l" + "".join(
            "r" if (units.get("columns", {}).get(c) or numeric) else "l" for c in self.columns
        )
        return header, body, align

    def _repr_html_(self) -> str:
        """HTML rendering with units, shown by notebooks."""
        return _html(*self._cells())

    def __repr__(self) -> str:
        """Aligned text rendering with units."""
        return _text_table(*self._cells())

    def to_markdown(self, buf: Any = None, **kwargs: Any) -> str | None:
        """Markdown rendering with units; written to ``buf`` (path or file) when given."""
        text = _markdown(*self._cells())
        if buf is None:
            return text
        if isinstance(buf, (str, os.PathLike)):
            with open(buf, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            buf.write(text)
        return None


def report(
    model: nn.Module,
    example_inputs: Any,
    latency: bool = True,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    *,
    unprunable: Iterable[nn.Module] = (),
    batch_dim: int | None = 0,
) -> Report:
    """Measure params, MACs, disk bytes, inference memory and latency of ``model``.

    ``example_inputs`` is a tensor, a tuple of positional inputs or a dict of keyword inputs.
    All measurements use one example: tensors whose size along ``batch_dim`` exceeds 1 are cut
    to their first element (``batch_dim=None`` uses the inputs as given). The model runs in
    eval mode under ``torch.inference_mode``; every module's train/eval flag is restored and no
    parameter or buffer is written. ``macs`` follows fvcore: one per multiply-add.

    ``prunable_params`` leaves out the parameters of the modules in ``unprunable`` and of the
    modules tagged with ``lt.unprunable``, with everything inside them. ``disk_bytes`` is the
    size of the file ``lt.save(model, path)`` writes (no trimmer state), measured in a temporary
    directory that is removed afterwards.
    """
    _check_model(model)
    _check_positive(threads=threads, runs=runs)
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    args, kwargs = _example(example_inputs, batch_dim)
    protected = _protected_modules(model, unprunable)
    with _eval_mode(model):
        _check_runs(model, args, kwargs, _cut_dim(example_inputs, args, kwargs, batch_dim))
        macs = _count(model, args, kwargs)
        peak = _peak_activation_bytes(model, args, kwargs)
        timing = _latency(model, args, kwargs, threads, runs, warmup) if latency else None
    param_bytes = _param_bytes(model)
    if macs.uncounted:
        ops = ", ".join(f"{op} (x{n})" for op, n in sorted(macs.uncounted.items()))
        warnings.warn(f"MACs leave out operators with no counting rule: {ops}", stacklevel=2)
    return Report(
        model=type(model).__name__,
        params=sum(p.numel() for p in model.parameters()),
        prunable_params=_prunable_params(model, protected),
        macs=macs.total,
        macs_by_operator=dict(macs.by_operator),
        uncounted_ops=tuple(sorted(macs.uncounted)),
        disk_bytes=_disk_bytes(model),
        param_bytes=param_bytes,
        peak_activation_bytes=peak,
        memory_bytes=param_bytes + peak,
        latency_median_s=None if timing is None else timing[0],
        latency_iqr_s=None if timing is None else timing[1],
        threads=threads if latency else None,
        runs=runs if latency else 0,
        input_shapes=tuple(
            tuple(t.shape) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
        ),
    )


def compare(reports: Mapping[str, Report]) -> ReportTable:
    """One row per metric, one column per report, plus ratio columns to the first report.

    Values are raw numbers (float, NaN where a report has no value); ratio columns are named
    ``"<name> / <first name>"``. The table renders with units in notebooks and markdown.
    """
    if not isinstance(reports, Mapping):
        raise TypeError(f"compare() expects a mapping of name -> Report, got {type(reports)}")
    if not reports:
        raise ValueError("compare() needs at least one report")
    for name, item in reports.items():
        if not isinstance(item, Report):
            raise TypeError(f"compare(): {name!r} is a {type(item).__name__}, not a Report")
    names = [str(name) for name in reports]
    data = {
        name: [_float(getattr(item, metric)) for metric, _ in _METRICS]
        for name, item in zip(names, reports.values(), strict=True)
    }
    first = names[0]
    ratio_columns = {}
    for name in names[1:]:
        column = f"{name} / {first}"
        data[column] = [_ratio(b, a) for a, b in zip(data[first], data[name], strict=True)]
        ratio_columns[column] = "ratio"
    table = ReportTable(data, index=pd.Index([m for m, _ in _METRICS], name="metric"))
    table.attrs["units"] = {"rows": dict(_METRICS), "columns": ratio_columns}
    return table


def layer_table(model: nn.Module, example_inputs: Any, *, batch_dim: int | None = 0) -> ReportTable:
    """One row per layer that owns parameters: type, units, params and MACs (batch 1).

    Units are output channels (conv), output features (linear), hidden units (recurrent),
    normalised features (norms) or embedding size; missing for other layers. MACs are
    fvcore's per-module counts with this package's handlers, for one example.
    """
    _check_model(model)
    args, kwargs = _example(example_inputs, batch_dim)
    with _eval_mode(model):
        _check_runs(model, args, kwargs, _cut_dim(example_inputs, args, kwargs, batch_dim))
        macs = _count(model, args, kwargs)
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
            _ratio(_float(y), _float(x)) for x, y in zip(a[metric], b[metric], strict=True)
        ]
    table = ReportTable(frame)
    kinds = {f"{m}_{s}": "count" for m in ("units", "params", "macs") for s in ("before", "after")}
    kinds.update({f"{m}_ratio": "ratio" for m in ("units", "params", "macs")})
    table.attrs["units"] = {"columns": kinds}
    return table


# --------------------------------------------------------------------------- input handling


def _check_model(model: Any) -> None:
    """Reject anything that is not an nn.Module with a TypeError naming its type."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Module, got {type(model).__module__}.{type(model).__qualname__}"
        )


def _check_positive(**values: int) -> None:
    """Raise ValueError for any count below one."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _example(example_inputs: Any, batch_dim: int | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Split example inputs into (args, kwargs), cut to one example along ``batch_dim``."""
    if isinstance(example_inputs, torch.Tensor):
        args, kwargs = (example_inputs,), {}
    elif isinstance(example_inputs, (tuple, list)):
        args, kwargs = tuple(example_inputs), {}
    elif isinstance(example_inputs, Mapping):
        args, kwargs = (), dict(example_inputs)
    else:
        raise TypeError(
            "example_inputs must be a tensor, a tuple of inputs or a dict of keyword inputs, "
            f"got {type(example_inputs).__name__}"
        )
    if batch_dim is None:
        return args, kwargs
    if not isinstance(batch_dim, int) or batch_dim < 0:
        raise ValueError(f"batch_dim must be None or a non-negative int, got {batch_dim!r}")
    return tree_map(lambda x: _first_example(x, batch_dim), (args, kwargs))


def _first_example(value: Any, batch_dim: int) -> Any:
    """Cut a tensor to its first element along ``batch_dim`` when that size exceeds one."""
    if not isinstance(value, torch.Tensor) or value.dim() <= batch_dim:
        return value
    if value.shape[batch_dim] <= 1:
        return value
    return value.narrow(batch_dim, 0, 1).clone()


def _call(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Run the model once."""
    return model(*args, **kwargs)


def _cut_dim(
    original: Any, args: Sequence[Any], kwargs: Mapping[str, Any], batch_dim: int | None
) -> int | None:
    """``batch_dim`` when cutting to one example changed some input's shape, else None."""
    before = [t.shape for t in tree_leaves(original) if isinstance(t, torch.Tensor)]
    after = [t.shape for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    return None if before == after else batch_dim


def _check_runs(
    model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any], cut_dim: int | None
) -> None:
    """Run one forward pass; turn any failure into a ValueError naming the model class."""
    try:
        with torch.inference_mode():
            _call(model, args, kwargs)
    except Exception as err:
        hint = ""
        if cut_dim is not None:
            hint = (
                f" (inputs were cut to one example along dim {cut_dim}; "
                "pass batch_dim=None if they hold a single unbatched example)"
            )
        raise ValueError(
            f"{type(model).__name__} failed on the example inputs{hint}: "
            f"{type(err).__name__}: {err}"
        ) from err


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put the model in eval mode, restoring every module's own training flag afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


# --------------------------------------------------------------------------- measurements


def _count(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> MacCount:
    """MAC count of one forward pass (see ``lotterytrim._flops``)."""
    from lotterytrim._flops import count_macs

    try:
        return count_macs(model, args, kwargs)
    except Exception as err:
        raise ValueError(
            f"could not trace {type(model).__name__} to count MACs: {type(err).__name__}: {err}"
        ) from err


def _protected_modules(model: nn.Module, unprunable: Iterable[nn.Module]) -> set[int]:
    """Ids of the modules declared unprunable, by argument or by tag, and all their descendants.

    The tag is the one ``lt.unprunable`` sets on a module or a module class and the trimmer
    reads, so one declaration serves both.
    """
    from lotterytrim.graph import _is_tagged

    declared = list(unprunable)
    for module in declared:
        _check_model(module)
    declared += [module for module in model.modules() if _is_tagged(module)]
    return {id(inner) for module in declared for inner in module.modules()}


def _prunable_params(model: nn.Module, protected: set[int]) -> int:
    """Parameter elements owned by prunable layer types outside the protected modules.

    A parameter shared with a protected module is left out too: it cannot shrink without
    shrinking that module.
    """
    seen = {
        id(param)
        for module in model.modules()
        if id(module) in protected
        for param in module.parameters(recurse=False)
    }
    total = 0
    for module in model.modules():
        if not isinstance(module, PRUNABLE_TYPES) or id(module) in protected:
            continue
        for param in module.parameters(recurse=False):
            if id(param) not in seen:
                seen.add(id(param))
                total += param.numel()
    return total


def _param_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers, each tensor counted once."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _disk_bytes(model: nn.Module) -> int:
    """Size in bytes of the file ``lotterytrim.io.save`` writes for the model (no trimmer).

    The file is written to a temporary directory, measured and deleted, so the figure is the
    one a user gets from ``lt.save(model, path)``: tensors plus the lotterytrim header.
    """
    from lotterytrim.io import save

    try:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.lt")
            save(model, path)
            return os.path.getsize(path)
    except Exception as err:
        raise ValueError(
            f"could not save {type(model).__name__} with lotterytrim.save to measure its disk "
            f"size: {type(err).__name__}: {err}"
        ) from err


class _StorageTracker:
    """Live bytes of storages created by ATen operators, with their running peak.

    Each new output storage (deduplicated, so views and in-place results add nothing) adds its
    size; a ``weakref.finalize`` on the storage subtracts it when the storage is freed.
    Storages given as ``external`` (inputs, parameters, buffers) are never counted.
    """

    def __init__(self, external: Iterable[torch.Tensor]) -> None:
        """Remember the external storages, holding them so their ids stay valid."""
        self._external = {id(s): s for s in (_storage(t) for t in external) if s is not None}
        self._live: dict[int, int] = {}
        self._finalizers: list[weakref.finalize] = []
        self.current = 0
        self.peak = 0

    def add(self, output: Any) -> None:
        """Account for the storages of an operator's tensor outputs."""
        for tensor in tree_leaves(output):
            storage = _storage(tensor)
            if storage is None:
                continue
            key = id(storage)
            if key in self._external or key in self._live:
                continue
            size = storage.nbytes()
            if size == 0:
                continue
            self._live[key] = size
            self.current += size
            self.peak = max(self.peak, self.current)
            self._finalizers.append(weakref.finalize(storage, self._release, key))

    def _release(self, key: int) -> None:
        """Storage freed: subtract its size."""
        self.current -= self._live.pop(key, 0)

    def close(self) -> None:
        """Detach the finalizers still pending so the tracker can be collected."""
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()


def _storage(value: Any) -> Any:
    """The untyped storage behind a dense tensor, or None."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        return None
    try:
        return value.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def _tracking_mode(tracker: _StorageTracker) -> Any:
    """A TorchDispatchMode feeding every operator's outputs to ``tracker``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Mode(TorchDispatchMode):
        """Runs each operator and records the storages it returns."""

        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            """Run the operator, then account for its outputs."""
            out = func(*args, **(kwargs or {}))
            tracker.add(out)
            return out

    return _Mode()


def _peak_activation_bytes(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """Measured peak bytes of tensors alive during one forward (outputs kept until its end)."""
    inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    tracker = _StorageTracker([*model.parameters(), *model.buffers(), *inputs])
    try:
        with torch.inference_mode(), _tracking_mode(tracker):
            output = _call(model, args, kwargs)
            del output
        return tracker.peak
    finally:
        tracker.close()


def _latency(
    model: nn.Module,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    threads: int,
    runs: int,
    warmup: int,
) -> tuple[float, float]:
    """Median and interquartile range (seconds) of ``runs`` timed forwards after warm-up."""
    if any(p.device.type != "cpu" for p in [*model.parameters(), *model.buffers()]):
        raise ValueError("latency is measured on the CPU: move the model there or latency=False")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                _call(model, args, kwargs)
            timings = []
            for _ in range(runs):
                start = time.perf_counter()
                _call(model, args, kwargs)
                timings.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(timings), _iqr(timings)


def _iqr(values: Sequence[float]) -> float:
    """Interquartile range (75th minus 25th percentile, linear interpolation)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q3 - q1


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


# --------------------------------------------------------------------------- rendering


def _float(value: Any) -> float:
    """Number as float; None and missing values become NaN."""
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when undefined."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return math.nan
    return numerator / denominator


_PREFIXES: tuple[tuple[float, str], ...] = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def _human(value: Any, kind: str) -> str:
    """Render a value with 3 significant digits and a unit: 4.7 M, 21 MB, 1.2 ms, 0.11x."""
    if kind == "text":
        return "" if value is None or value is pd.NA else str(value)
    number = _float(value)
    if math.isnan(number):
        return "-"
    if kind == "ratio":
        return f"{number:.3g}x"
    if kind == "seconds":
        return _seconds(number)
    unit = "B" if kind == "bytes" else ""
    for scale, prefix in _PREFIXES:
        if abs(number) >= scale:
            return f"{number / scale:.3g} {prefix}{unit}"
    text = f"{int(number)}" if number == int(number) else f"{number:.3g}"
    return f"{text} {unit}" if unit else text


def _seconds(value: float) -> str:
    """Seconds rendered in s, ms or us with 3 significant digits."""
    if value >= 1 or value == 0:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def _default_align(columns: int) -> str:
    """First column left-aligned, the others right-aligned."""
    return "l" + "r" * (columns - 1)


def _markdown(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """GitHub-style markdown table; ``align`` holds one ``l``/``r`` per column."""
    align = align or _default_align(len(header))

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---" if side == "l" else "---:" for side in align]
    return "\n".join([line(header), line(rule), *map(line, body)]) + "\n"


def _html(header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None) -> str:
    """Small HTML table; ``align`` holds one ``l``/``r`` per column."""
    sides = ["left" if side == "l" else "right" for side in align or _default_align(len(header))]
    head = "".join(
        f'<th style="text-align:{side}">{html.escape(h)}</th>'
        for h, side in zip(header, sides, strict=True)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f'<td style="text-align:{side}">{html.escape(c)}</td>'
            for c, side in zip(row, sides, strict=True)
        )
        + "</tr>"
        for row in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _text_table(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """Plain aligned text table; ``align`` holds one ``l``/``r`` per column."""
    align = align or _default_align(len(header))
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *map(line, body)])

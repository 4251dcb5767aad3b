"""Model cost reports: parameters, MACs, disk bytes, inference memory and latency, as tables.

``report(model, example_inputs)`` measures one model; ``compare({...})`` lines several reports up
in a table like the paper's Table 1; ``layer_table`` and ``layer_diff`` break the cost down per
layer. Every table is a pandas DataFrame of raw numbers that renders (notebook HTML, markdown,
text) with human-readable units. See ``docs/report.md`` for exactly what is counted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from lotterytrim.calls import eval_mode
from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.prunable import prunable_param_count
from lotterytrim.errors import ExampleInputError
from lotterytrim.measure.memory import peak_activation_bytes
from lotterytrim.measure.probe import (
    check_module,
    check_positive,
    check_runs,
    count_macs_of,
    cut_dim,
    one_example,
)
from lotterytrim.measure.tables import (
    ReportTable,
    as_float,
    html_table,
    human,
    markdown_table,
    ratio,
)
from lotterytrim.storage import io as storage_io

__all__ = ["Report", "report", "compare", "median_seconds"]

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
        prunable_params: parameter elements a trimming step may remove, read from the
            trimmer's own graph: every element in a unit of a group it may shrink (attention
            and module-owned parameters included; output widths and the outputs of unprunable
            modules left out). Trimming lowers it by exactly the parameters it removes.
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
        return [(name, human(getattr(self, name), kind)) for name, kind in _METRICS]

    def to_markdown(self) -> str:
        """Markdown table of the metrics with human-readable units."""
        return markdown_table(["metric", self.model], [list(row) for row in self._rows()])

    def _repr_html_(self) -> str:
        """HTML table of the metrics, shown by notebooks."""
        return html_table(["metric", self.model], [list(row) for row in self._rows()])


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

    ``prunable_params`` traces the model as the trimmer does, on ``example_inputs`` as given,
    with ``unprunable`` and the ``lt.unprunable`` tags keeping those modules' units (and all
    inside them); their input columns still count, as the trimmer shrinks them.

    ``disk_bytes`` is the size of the file ``lt.save(model, path)`` writes (no trimmer state),
    measured in a temporary directory that is removed afterwards.
    """
    check_module(model)
    check_positive(threads=threads, runs=runs)
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    args, kwargs = one_example(example_inputs, batch_dim)
    with eval_mode(model):
        check_runs(model, args, kwargs, cut_dim(example_inputs, args, kwargs, batch_dim))
        macs = count_macs_of(model, args, kwargs)
        peak = peak_activation_bytes(model, args, kwargs)
        timing = _latency(model, args, kwargs, threads, runs, warmup) if latency else None
        prunable = _prunable_params(model, example_inputs, unprunable)
    param_bytes = _param_bytes(model)
    if macs.uncounted:
        ops = ", ".join(f"{op} (x{n})" for op, n in sorted(macs.uncounted.items()))
        warnings.warn(f"MACs leave out operators with no counting rule: {ops}", stacklevel=2)
    return Report(
        model=type(model).__name__,
        params=sum(p.numel() for p in model.parameters()),
        prunable_params=prunable,
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
        name: [as_float(getattr(item, metric)) for metric, _ in _METRICS]
        for name, item in zip(names, reports.values(), strict=True)
    }
    first = names[0]
    ratio_columns = {}
    for name in names[1:]:
        column = f"{name} / {first}"
        data[column] = [ratio(b, a) for a, b in zip(data[first], data[name], strict=True)]
        ratio_columns[column] = "ratio"
    table = ReportTable(data, index=pd.Index([m for m, _ in _METRICS], name="metric"))
    table.attrs["units"] = {"rows": dict(_METRICS), "columns": ratio_columns}
    return table


# --------------------------------------------------------------------------- measurements


def _prunable_params(model: nn.Module, example_inputs: Any, unprunable: Iterable[nn.Module]) -> int:
    """Parameter elements a trimming step may remove, read from the trimmer's own graph.

    Layers it cannot slice are protected rather than refused, as ``on_unsupported="protect"``
    does; a model the trimmer cannot trace has nothing it may trim, which a warning explains.
    """
    declared = list(unprunable)
    for module in declared:
        check_module(module)
    try:
        graph = TrimGraph(model, example_inputs, unprunable=declared, on_unsupported="protect")
    except ExampleInputError as err:
        warnings.warn(
            f"prunable_params is 0: the trimmer cannot trace {type(model).__name__} ({err})",
            stacklevel=3,
        )
        return 0
    return prunable_param_count(graph)


def _param_bytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers, each tensor counted once."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _disk_bytes(model: nn.Module) -> int:
    """Size in bytes of the file ``lotterytrim.io.save`` writes for the model (no trimmer).

    The file is written to a temporary directory, measured and deleted, so the figure is the
    one a user gets from ``lt.save(model, path)``: tensors plus the lotterytrim header.
    """
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.lt")
            storage_io.save(model, path)
            return os.path.getsize(path)
    except Exception as err:
        raise ValueError(
            f"could not save {type(model).__name__} with lotterytrim.save to measure its disk "
            f"size: {type(err).__name__}: {err}"
        ) from err


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
    return median_seconds(lambda: model(*args, **kwargs), threads, runs, warmup)


def median_seconds(
    fn: Callable[[], object], threads: int = 1, runs: int = 50, warmup: int = 10
) -> tuple[float, float]:
    """Median and interquartile range (seconds) of ``runs`` timed calls of ``fn()`` after
    ``warmup`` untimed ones, on ``threads`` torch threads under inference mode: how
    :func:`report` times latency, for any callable (e.g. a streaming synthesis loop)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                fn()
            timings = []
            for _ in range(runs):
                start = time.perf_counter()
                fn()
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

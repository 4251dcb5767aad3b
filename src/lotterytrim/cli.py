"""Command line: ``lotterytrim report PATH [--json]`` describes a saved model file.

Without the model's code only the file speaks: tensor count, parameters, disk bytes, tensors
grouped per layer (module prefix) with their shapes and widths, and the ``lotterytrim`` JSON
metadata stored in the safetensors header.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from lotterytrim.errors import FileReportError
from lotterytrim.measure.tables import human, text_table
from lotterytrim.storage.files import HEADER_KEY, STATE_PREFIX

__all__ = ["describe_file", "main"]

BUFFER_SUFFIXES: tuple[str, ...] = ("running_mean", "running_var", "num_batches_tracked")
"""Tensor names counted as buffers, not parameters (normalisation running statistics)."""


def describe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything a saved safetensors model file tells without the model code, as a dict."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileReportError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise FileReportError(f"not a file: {path}")
    everything, header = _read_header(path)
    metadata, extra = _split_metadata(header, path)
    everything.sort(key=_tensor_order(metadata))
    tensors = [t for t in everything if not t["name"].startswith(STATE_PREFIX)]
    params = sum(_numel(t["shape"]) for t in tensors if not _is_buffer(t["name"]))
    return {
        "path": path,
        "disk_bytes": os.path.getsize(path),
        "tensors": len(tensors),
        "trimmer_tensors": len(everything) - len(tensors),
        "params": params,
        "buffer_elements": sum(_numel(t["shape"]) for t in tensors if _is_buffer(t["name"])),
        "dtypes": dict(Counter(t["dtype"] for t in tensors)),
        "layers": _layers(tensors),
        "metadata": metadata,
        "header_metadata": extra,
    }


def _read_header(path: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Tensor names, shapes and dtypes plus the header metadata, without loading data."""
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as handle:
            header = dict(handle.metadata() or {})
            tensors = []
            for name in handle.keys():
                view = handle.get_slice(name)
                tensors.append(
                    {"name": name, "shape": list(view.get_shape()), "dtype": view.get_dtype()}
                )
    except Exception as err:
        if _is_archive(path):
            raise FileReportError(
                f"{path} is a zip or pickle archive (as torch.save writes), not a safetensors "
                "file; save models with lotterytrim.save"
            ) from err
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileReportError(f"cannot read {path} as a safetensors file: {reason}") from err
    return tensors, header


def _is_archive(path: str) -> bool:
    """True when the file starts like a zip or pickle archive, as ``torch.save`` writes.

    Only asked once the safetensors parser has refused the file: the first byte of a valid
    safetensors file (its header length) may happen to match these signatures.
    """
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
    except OSError:
        return False
    return start == b"PK" or start[:1] == b"\x80"


def _split_metadata(header: dict[str, str], path: str) -> tuple[Any, dict[str, str]]:
    """Parse the lotterytrim JSON entry; return it and the other header entries."""
    extra = {k: v for k, v in header.items() if k != HEADER_KEY}
    if HEADER_KEY not in header:
        return None, extra
    try:
        return json.loads(header[HEADER_KEY], parse_constant=_refuse_constant), extra
    except RecursionError:
        raise FileReportError(
            f"corrupt {HEADER_KEY} metadata in {path}: JSON nested too deeply"
        ) from None
    except ValueError as err:
        raise FileReportError(f"corrupt {HEADER_KEY} metadata in {path}: {err}") from err


def _refuse_constant(name: str) -> Any:
    """NaN and infinities are not JSON: ``report --json`` could not print them validly."""
    raise ValueError(f"non-finite number {name}")


def _natural_key(name: str) -> list[Any]:
    """Sort key putting ``layers.2`` before ``layers.10``."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", name)]


def _plan_shapes(plan: Any) -> dict[str, Any]:
    """The ``shapes`` mapping (tensor name -> original shape) of a saved plan, else empty."""
    shapes = plan.get("shapes") if isinstance(plan, dict) else None
    return shapes if isinstance(shapes, dict) else {}


def _tensor_order(metadata: Any) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Sort key for tensors: the model's own order where the plan lists it, else natural order.

    The plan ``lt.save`` writes lists the parameters, then the buffers, in the order the model
    registers them, while the safetensors header sorts names alphabetically; following the plan
    puts a convolution before its batch norm. Tensors the plan omits (scalar buffers, files
    from other tools) follow in natural order and join their layer where it already appears.
    """
    plan = metadata.get("plan") if isinstance(metadata, dict) else None
    rank = {name: i for i, name in enumerate(_plan_shapes(plan))}

    def key(tensor: dict[str, Any]) -> tuple[Any, ...]:
        """(0, position in the plan) for planned tensors, then (1, natural key) for others."""
        name = tensor["name"]
        return (0, rank[name]) if name in rank else (1, _natural_key(name))

    return key


def _numel(shape: Sequence[int]) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)


def _is_buffer(name: str) -> bool:
    """True for normalisation running statistics, which are buffers, not parameters."""
    return name.rsplit(".", 1)[-1] in BUFFER_SUFFIXES


def _layers(tensors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group tensors by module prefix, with each layer's width and parameter count."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for tensor in tensors:
        prefix, _, local = tensor["name"].rpartition(".")
        groups.setdefault(prefix, []).append({**tensor, "name": local})
    return [
        {
            "layer": prefix,
            "units": _units({t["name"]: t["shape"] for t in members}),
            "params": sum(_numel(t["shape"]) for t in members if not _is_buffer(t["name"])),
            "tensors": members,
        }
        for prefix, members in groups.items()
    ]


def _units(shapes: dict[str, list[int]]) -> int | None:
    """Layer width from tensor shapes: hidden size of recurrent layers, else weight.shape[0]."""
    for name in ("weight_hr_l0", "weight_hh_l0", "weight_hh"):
        if name in shapes and len(shapes[name]) == 2:
            return shapes[name][1]
    weight = shapes.get("weight")
    return weight[0] if weight else None


def _summary(value: Any) -> str:
    """Short rendering of a metadata value: containers by size, scalars as JSON."""
    if isinstance(value, dict):
        return f"{len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    if isinstance(value, list):
        return f"{len(value)} item{'' if len(value) == 1 else 's'}"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _clean(text: Any) -> str:
    """``text`` with every control or format character escaped (``\\x1b``, ``\\n``, ``\\u202e``).

    Names and keys come from the file: printed raw, an escape sequence in one could retitle
    the terminal, clear it or overwrite earlier lines, and a newline could fake a line.
    """
    text = str(text)
    if all(unicodedata.category(c)[0] != "C" for c in text):
        return text
    return "".join(
        c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _render(info: dict[str, Any]) -> str:
    """Human-readable text report of ``describe_file``'s result; file strings escaped."""
    dtypes = ", ".join(f"{_clean(k)} x {v}" for k, v in sorted(info["dtypes"].items()))
    lines = [
        f"file      {_clean(info['path'])}",
        f"disk      {human(info['disk_bytes'], 'bytes')} ({info['disk_bytes']} bytes)",
        f"tensors   {info['tensors']}" + (f" ({dtypes})" if dtypes else ""),
        f"params    {human(info['params'], 'count')} ({info['params']})",
    ]
    if info["trimmer_tensors"]:
        count = info["trimmer_tensors"]
        lines.append(f"trimmer   {count} tensor{'' if count == 1 else 's'} of saved trimmer state")
    if info["buffer_elements"]:
        lines.append(f"buffers   {info['buffer_elements']} elements (running statistics)")
    body = [
        [
            _clean(layer["layer"]) or "(root)",
            "-" if layer["units"] is None else str(layer["units"]),
            human(layer["params"], "count"),
            ", ".join(f"{_clean(t['name'])} {t['shape']}" for t in layer["tensors"]),
        ]
        for layer in info["layers"]
    ]
    if body:
        lines += ["", text_table(["layer", "units", "params", "tensors"], body, "lrrl")]
    lines += _metadata_lines(info)
    return "\n".join(lines)


def _plan_summary(plan: Any) -> str:
    """One line about a trimming plan: how many tensors it covers and how many were cut.

    The plan lists every tensor under ``shapes`` (original shapes) and only the touched ones
    under ``keep`` (kept index runs per dim, None for an untouched dim); a tensor counts as
    trimmed when some dim keeps fewer indices than its original size.
    """
    keep = plan.get("keep") if isinstance(plan, dict) else None
    if not isinstance(keep, dict):
        return _summary(plan)
    shapes = _plan_shapes(plan)
    cut = sum(1 for name, dims in keep.items() if _is_cut(dims, shapes.get(name)))
    count = len(set(shapes) | set(keep))
    return f"{count} tensor{'' if count == 1 else 's'}, {cut} trimmed"


def _is_cut(dims: Any, shape: Any) -> bool:
    """True when a plan's ``keep`` entry drops indices along some dim of the original shape."""
    if not isinstance(dims, list):
        return False
    for d, runs in enumerate(dims):
        if runs is None:
            continue
        try:
            kept = sum(int(stop) - int(start) for start, stop in runs)
            size = int(shape[d])
        except (TypeError, ValueError, IndexError, KeyError):
            return True  # no usable original size: a listed dim is taken as cut
        if kept < size:
            return True
    return False


def _metadata_entries(metadata: Any) -> list[tuple[str, str]]:
    """(key, summary) pairs of the lotterytrim metadata; user metadata shown item by item."""
    if not isinstance(metadata, dict):
        return [] if metadata is None else [(HEADER_KEY, _summary(metadata))]
    entries = []
    for key, value in metadata.items():
        label = f"{HEADER_KEY}.{key}"
        if key == "plan":
            entries.append((label, _plan_summary(value)))
        elif key == "metadata" and isinstance(value, dict) and value:
            entries += [(f"{label}.{k}", _summary(v)) for k, v in value.items()]
        else:
            entries.append((label, _summary(value)))
    return entries


def _metadata_lines(info: dict[str, Any]) -> list[str]:
    """Metadata section of the text report (empty when the file has none)."""
    entries = _metadata_entries(info["metadata"])
    entries += [(k, _summary(v)) for k, v in info["header_metadata"].items()]
    if not entries:
        return []
    entries = [(_clean(k), _clean(v)) for k, v in entries]
    width = max(len(k) for k, _ in entries)
    return ["", "metadata", *(f"  {k.ljust(width)}  {v}" for k, v in entries)]


def _parser() -> argparse.ArgumentParser:
    """Argument parser with the ``report`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="lotterytrim", description="Inspect models trimmed with lotterytrim."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    report = commands.add_parser(
        "report", help="describe a saved model file (safetensors)", description=__doc__
    )
    report.add_argument("path", metavar="PATH", help="saved model file")
    report.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 file error, 2 usage error)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        info = describe_file(args.path)
    except FileReportError as err:
        print(f"lotterytrim: error: {_clean(err)}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2) if args.json else _render(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

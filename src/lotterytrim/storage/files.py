"""Safetensors files: written atomically, read only after their bytes have been checked.

A lotterytrim file is one safetensors file; its header metadata holds one key, ``"lotterytrim"``
(:data:`HEADER_KEY`): a JSON object with ``format``, ``plan``, the user's ``metadata`` and
optionally a saved ``trimmer`` state whose tensors carry the :data:`STATE_PREFIX`. Pickles are
refused outright.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from lotterytrim.errors import LoadError
from lotterytrim.storage.atomic import write_bytes_atomic

__all__ = [
    "FORMAT",
    "HEADER_KEY",
    "STATE_PREFIX",
    "write_tensors",
    "read_header",
    "read_tensors",
    "parse_json",
]

FORMAT = 1  # version of the lotterytrim header
HEADER_KEY = "lotterytrim"  # the safetensors metadata entry holding lotterytrim's JSON header
STATE_PREFIX = "__trimmer__/"  # name prefix of saved-state tensors stored beside the model's
_MAX_HEADER = 100 * 1024 * 1024


def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """Write tensors and string metadata as safetensors, atomically (temp file, fsync, replace)."""
    data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    write_bytes_atomic(Path(path), _st_save(data, metadata=dict(meta)))


def _check_header(path: Path, head: bytes, size: int) -> int:
    """Validate the safetensors layout from the file's first bytes and its size, before the
    tensors are read; return the header length."""
    # a safetensors file opens with its header length then "{"; the length's low byte may well
    # be 0x80, so the pickle signature only counts when no safetensors header follows it
    looks_safetensors = len(head) >= 9 and head[8:9] == b"{"
    if not looks_safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):
        raise LoadError(
            f"{path} is a pickle or torch.save archive; lotterytrim never unpickles files. "
            "Save models with lt.save()"
        )
    if size < 8:
        raise LoadError(f"{path} is truncated or not a safetensors file ({size} bytes)")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER or 8 + n > size:
        raise LoadError(
            f"{path} is truncated or not a safetensors file: header of {n} bytes announced, "
            f"{size - 8} bytes present"
        )
    return n


def _check_layout(path: Path, n: int, text: bytes, size: int) -> dict[str, str]:
    """Parse the header and check every tensor lies inside the file; return the metadata."""
    try:
        header = parse_json(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LoadError(f"{path} has an unreadable safetensors header: {exc}") from exc
    if not isinstance(header, dict):
        raise LoadError(f"{path} has a malformed safetensors header")
    meta = header.pop("__metadata__", None) or {}
    end = 0
    for name, info in header.items():
        try:
            lo, hi = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LoadError(f"{path}: tensor {name!r} has no valid data offsets") from exc
        end = max(end, hi)
        if lo > hi:
            raise LoadError(f"{path}: tensor {name!r} has inverted data offsets")
    if 8 + n + end > size:
        raise LoadError(
            f"{path} is truncated: its tensors need {end} bytes of data, {size - 8 - n} are present"
        )
    if not isinstance(meta, dict):
        raise LoadError(f"{path} has malformed safetensors metadata")
    return {str(k): str(v) for k, v in meta.items()}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (lotterytrim never writes one)")


def parse_json(text: str) -> Any:
    """Parse JSON from a file; nesting too deep for Python or NaN/Infinity is a ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _open_checked(path: Path) -> tuple[Any, int, dict[str, str]]:
    """Open a regular file and check its safetensors header against its size; return the open
    handle (positioned after the header), the file size and the header metadata."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc}") from exc
    if not stat.S_ISREG(info.st_mode):  # a device, FIFO or directory, whichever a link names
        raise LoadError(f"cannot read {path}: not a regular file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc}") from exc
    try:
        head = handle.read(9)
        n = _check_header(path, head, info.st_size)
        text = head[8:] + handle.read(n - 1) if n else b""
        return handle, info.st_size, _check_layout(path, n, text, info.st_size)
    except BaseException:
        handle.close()
        raise


def read_header(path: str | Path) -> dict[str, str]:
    """The header metadata of a safetensors file, checked, without reading any tensor."""
    handle, _, meta = _open_checked(Path(path))
    handle.close()
    return meta


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file after checking it; never unpickles.

    The path must be a regular file (not a device, a FIFO or a directory, whichever a link
    points to); its header is read and checked against the file's size before any tensor.
    """
    path = Path(path)
    handle, size, meta = _open_checked(path)
    try:
        with handle:
            handle.seek(0)
            blob = handle.read()
    except MemoryError:
        raise LoadError(f"cannot read {path}: its {size} bytes do not fit in memory") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc}") from exc
    if len(blob) != size:
        raise LoadError(f"cannot read {path}: it changed while being read")
    try:
        tensors = _st_load(blob)
    except Exception as exc:  # noqa: BLE001 - the parser's errors are not a stable type
        raise LoadError(f"{path} is not a valid safetensors file: {exc}") from exc
    return tensors, meta

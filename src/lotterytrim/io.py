"""Save and load trimmed models without pickle: one safetensors file with the plan in its header.

The header metadata holds one key, ``"lotterytrim"``: a JSON object with ``format``, ``plan``
(:meth:`TrimPlan.to_dict`), the user's ``metadata`` and, optionally, the ``trimmer`` state whose
tensors are stored next to the model's under the ``__trimmer__/`` prefix. Files are written
atomically and read only after their bytes have been checked: pickles are refused outright.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from . import _plancheck
from ._atomic import _fsync_dir, write_bytes_atomic  # noqa: F401 - export.py uses _fsync_dir
from .errors import LotteryTrimError
from .plan import TrimPlan

if TYPE_CHECKING:
    from .trimmer import LotteryTrimmer

__all__ = [
    "LoadError",
    "save",
    "load",
    "load_state",
    "load_trimmer_state",
]

FORMAT = 1
_KEY = "lotterytrim"
_TRIMMER_PREFIX = "__trimmer__/"
_MAX_HEADER = 100 * 1024 * 1024


class LoadError(LotteryTrimError, ValueError):
    """A file cannot be read as a lotterytrim model, or does not fit the model built for it."""


# ------------------------------------------------------------------------ raw tensor files
def write_tensors(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """Write tensors and string metadata as safetensors, atomically (temp file, fsync, replace)."""
    data = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    write_bytes_atomic(Path(path), _st_save(data, metadata=dict(meta)))


def _check_bytes(path: Path, blob: bytes) -> dict[str, str]:
    """Validate the safetensors layout before handing bytes to the parser; return metadata."""
    # a safetensors file opens with its header length then "{"; the length's low byte may well
    # be 0x80, so the pickle signature only counts when no safetensors header follows it
    looks_safetensors = len(blob) >= 9 and blob[8:9] == b"{"
    if not looks_safetensors and (blob[:2] == b"PK" or blob[:1] == b"\x80"):
        raise LoadError(
            f"{path} is a pickle or torch.save archive; lotterytrim never unpickles files. "
            "Save models with lt.save()"
        )
    if len(blob) < 8:
        raise LoadError(f"{path} is truncated or not a safetensors file ({len(blob)} bytes)")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > _MAX_HEADER or 8 + n > len(blob):
        raise LoadError(
            f"{path} is truncated or not a safetensors file: header of {n} bytes announced, "
            f"{len(blob) - 8} bytes present"
        )
    try:
        header = _json(blob[8 : 8 + n].decode("utf-8"))
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
    if 8 + n + end > len(blob):
        raise LoadError(
            f"{path} is truncated: its tensors need {end} bytes of data, "
            f"{len(blob) - 8 - n} are present"
        )
    return {str(k): str(v) for k, v in meta.items()}


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} (lotterytrim never writes one)")


def _json(text: str) -> Any:
    """Parse JSON from a file; nesting too deep for Python or NaN/Infinity is a ValueError."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file after checking its bytes; never unpickles."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc}") from exc
    meta = _check_bytes(path, blob)
    try:
        tensors = _st_load(blob)
    except Exception as exc:  # noqa: BLE001 - the parser's errors are not a stable type
        raise LoadError(f"{path} is not a valid safetensors file: {exc}") from exc
    return tensors, meta


# ------------------------------------------------------------------------ public API
def save(
    model: nn.Module,
    path: str | Path,
    trimmer: LotteryTrimmer | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    plan: TrimPlan | None = None,
) -> None:
    """Write ``model``'s tensors, its trimming plan and optional trimmer state to one file.

    The plan is ``plan`` if given, else ``trimmer``'s cumulative plan, else the identity of
    ``model``. Passing ``plan`` without ``trimmer`` writes a loadable model without the (larger)
    trimmer state.
    """
    from .masking import plain_state

    if metadata is not None:
        _check_metadata(metadata)
    if trimmer is not None and trimmer.model is not model:
        raise ValueError("trimmer drives a different model than the one being saved")
    if trimmer is not None:
        trimmer._check_model()  # the plan written must describe the tensors written
    tensors = plain_state(model)
    if plan is None:
        plan = trimmer.plan if trimmer is not None else TrimPlan.identity(model)
    else:
        _check_plan_fits(plan, model)
    header: dict[str, Any] = {
        "format": FORMAT,
        "plan": plan.to_dict(),
        "metadata": dict(metadata or {}),
    }
    if trimmer is not None:
        state = trimmer.state_dict()
        header["trimmer"] = state["meta"]
        for k, v in state["tensors"].items():
            tensors[_TRIMMER_PREFIX + k] = v
    try:
        text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"cannot save {path}: a non-finite number in the header: {exc}") from exc
    write_tensors(Path(path), tensors, {_KEY: text})


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    """User metadata must be JSON that any reader parses back: no NaN, no infinities."""
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"metadata must be JSON-serialisable without NaN or infinities: {exc}"
        ) from exc
    try:
        json.loads(text)
    except RecursionError:
        raise ValueError("metadata is nested too deeply to be read back") from None


def _check_plan_fits(plan: TrimPlan, model: nn.Module) -> None:
    """Refuse a plan whose current shapes are not the model's: the file would not load."""
    from .rewind import model_tensors

    current = {n: tuple(t.shape) for n, t in model_tensors(model).items()}
    for name, shape in plan.current_shapes().items():
        if current.get(name) != tuple(shape):
            raise ValueError(
                f"plan does not describe the model: tensor {name!r} is {current.get(name)} in the "
                f"model, the plan says {tuple(shape)}"
            )


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = read_tensors(path)
    if _KEY not in meta:
        raise LoadError(f"{path} is a safetensors file but was not written by lt.save()")
    try:
        header = _json(meta[_KEY])
    except ValueError as exc:
        raise LoadError(f"{path}: the lotterytrim header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise LoadError(f"{path}: unknown lotterytrim file format {got!r}")
    return tensors, header


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], TrimPlan, dict[str, Any]]:
    """The model tensors, trimming plan and user metadata of a file, without building a model."""
    tensors, header = _read(path)
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith(_TRIMMER_PREFIX)}
    plan = _plan(path, header.get("plan"), model_tensors, "trimming plan")
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise LoadError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    return model_tensors, plan, dict(metadata)


def _plan(path: str | Path, data: Any, tensors: Mapping[str, torch.Tensor], what: str) -> TrimPlan:
    """Parse a plan of a file, bounded by the shapes of the tensors the file holds."""
    current = {k: tuple(v.shape) for k, v in tensors.items()}
    try:
        return TrimPlan.from_dict(data, current=current)
    except ValueError as exc:
        raise LoadError(f"{path}: malformed {what}: {exc}") from exc


def load_trimmer_state(path: str | Path) -> dict[str, Any] | None:
    """The trimmer state saved with the model (for ``trimmer.load_state_dict``), or None."""
    tensors, header = _read(path)
    if "trimmer" not in header:
        return None
    n = len(_TRIMMER_PREFIX)
    meta = header["trimmer"]
    ours = {k[n:]: v for k, v in tensors.items() if k.startswith(_TRIMMER_PREFIX)}
    if not isinstance(meta, dict):
        raise LoadError(f"{path}: the trimmer state is not a JSON object")
    model = {k: v for k, v in tensors.items() if not k.startswith(_TRIMMER_PREFIX)}
    _plan(path, meta.get("plan"), model, "trimmer plan")
    if meta.get("rewind_plan") is not None:
        rewind = {k[len("rewind/") :]: v for k, v in ours.items() if k.startswith("rewind/")}
        _plan(path, meta["rewind_plan"], rewind, "rewind plan")
    return {"meta": meta, "tensors": ours}


def has_trimmer_state(path: str | Path) -> bool:
    """Whether a file written by :func:`save` holds trimmer state (reads the header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            text = (handle.metadata() or {}).get(_KEY, "{}")
        header = _json(text)
    except Exception as exc:  # noqa: BLE001 - the parser's errors are not a stable type
        raise LoadError(f"cannot read the header of {path}: {exc}") from exc
    return isinstance(header, dict) and "trimmer" in header


def load(path: str | Path, build_model: Callable[[], nn.Module]) -> nn.Module:
    """Build the original model, resize it by the saved plan and load the tensors strictly."""
    tensors, plan, _ = load_state(path)
    model = build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model() must return an nn.Module, got {type(model).__name__}")
    try:
        _plancheck.check_before(plan, model)
        plan.apply_to_model(model)
        _plancheck.check_after(plan, model)
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not fit the model from build_model(): {exc}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise LoadError(
            f"{path} does not fit the model from build_model(): tensors missing from the file "
            f"{missing[:5]}, tensors the model lacks {unexpected[:5]}"
        )
    for name, t in expected.items():
        if tuple(t.shape) != tuple(tensors[name].shape):
            raise LoadError(
                f"{path} does not fit the model from build_model(): tensor {name!r} is "
                f"{tuple(tensors[name].shape)} in the file, {tuple(t.shape)} in the model"
            )
    model.load_state_dict(tensors, strict=True)
    return model

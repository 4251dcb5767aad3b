"""Save and load trimmed models without pickle: one safetensors file with the plan in its header.

The header metadata holds one key, ``"lotterytrim"``: a JSON object with ``format``, ``plan``
(:meth:`TrimPlan.to_dict`), the user's ``metadata`` and, optionally, the ``trimmer`` state whose
tensors are stored next to the model's under the ``__trimmer__/`` prefix. Files are written
atomically and read only after their bytes have been checked: pickles are refused outright.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from lotterytrim.engine.masknames import model_tensors, plain_state, unsaved_buffers
from lotterytrim.engine.plan import TrimPlan
from lotterytrim.engine.plancheck import apply_checked
from lotterytrim.errors import LoadError
from lotterytrim.storage.files import (
    FORMAT,
    HEADER_KEY,
    STATE_PREFIX,
    parse_json,
    read_header,
    read_tensors,
    write_tensors,
)

__all__ = [
    "SavesState",
    "save",
    "load",
    "load_state",
    "read_saved",
    "has_saved_state",
    "saved_metadata",
    "plan_from_file",
]


class SavesState(Protocol):
    """What ``save`` asks of a stateful helper (a ``LotteryTrimmer``) stored with a model."""

    def saved_state(self, model: nn.Module) -> tuple[TrimPlan, Mapping[str, Any]]:
        """The plan describing ``model``'s tensors and an opaque ``{"meta", "tensors"}`` state."""
        ...


def save(
    model: nn.Module,
    path: str | Path,
    state: SavesState | Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    plan: TrimPlan | None = None,
) -> None:
    """Write ``model``'s tensors, its trimming plan and an optional saved state to one file.

    ``state`` is a ``LotteryTrimmer`` (anything with ``saved_state(model)``, which gives the
    plan and the state) or an opaque ``{"meta": JSON object, "tensors": {name: tensor}}``. The
    plan is ``plan`` if given, else the state's, else the identity of ``model``. Passing
    ``plan`` without ``state`` writes a loadable model without the (larger) saved state.
    """
    if metadata is not None:
        _check_metadata(metadata)
    saved: Mapping[str, Any] | None = None
    if isinstance(state, Mapping):
        saved = state
    elif state is not None:
        own_plan, saved = state.saved_state(model)
        plan = own_plan if plan is None else plan
    tensors = plain_state(model)
    if plan is None:
        plan = TrimPlan.identity(model)
    elif state is None or isinstance(state, Mapping):
        _check_plan_fits(plan, model)
    header: dict[str, Any] = {
        "format": FORMAT,
        "plan": plan.to_dict(),
        "metadata": dict(metadata or {}),
    }
    if saved is not None:
        header["trimmer"] = saved["meta"]
        for k, v in saved["tensors"].items():
            tensors[STATE_PREFIX + k] = v
    try:
        text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"cannot save {path}: a non-finite number in the header: {exc}") from exc
    write_tensors(Path(path), tensors, {HEADER_KEY: text})


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
    current = {n: tuple(t.shape) for n, t in model_tensors(model).items()}
    for name, shape in plan.current_shapes().items():
        if current.get(name) != tuple(shape):
            raise ValueError(
                f"plan does not describe the model: tensor {name!r} is {current.get(name)} in the "
                f"model, the plan says {tuple(shape)}"
            )


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, meta = read_tensors(path)
    if HEADER_KEY not in meta:
        raise LoadError(f"{path} is a safetensors file but was not written by lt.save()")
    try:
        header = parse_json(meta[HEADER_KEY])
    except ValueError as exc:
        raise LoadError(f"{path}: the lotterytrim header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else None
        raise LoadError(f"{path}: unknown lotterytrim file format {got!r}")
    return tensors, header


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], TrimPlan, dict[str, Any]]:
    """The model tensors, trimming plan and user metadata of a file, without building a model."""
    tensors, header = _read(path)
    ours = {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIX)}
    plan = plan_from_file(path, header.get("plan"), ours, "trimming plan")
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise LoadError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    return ours, plan, dict(metadata)


def plan_from_file(
    path: str | Path, data: Any, tensors: Mapping[str, torch.Tensor], what: str
) -> TrimPlan:
    """Parse a plan of a file, bounded by the shapes of the tensors the file holds."""
    current = {k: tuple(v.shape) for k, v in tensors.items()}
    try:
        return TrimPlan.from_dict(data, current=current)
    except ValueError as exc:
        raise LoadError(f"{path}: malformed {what}: {exc}") from exc


def read_saved(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The model's tensors of a file, and the state saved with them (as given to save) or None."""
    tensors, header = _read(path)
    model = {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIX)}
    if "trimmer" not in header:
        return model, None
    meta = header["trimmer"]
    if not isinstance(meta, dict):
        raise LoadError(f"{path}: the trimmer state is not a JSON object")
    n = len(STATE_PREFIX)
    ours = {k[n:]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
    return model, {"meta": meta, "tensors": ours}


def _header(path: str | Path) -> dict[str, Any]:
    """The lotterytrim header of a file, read without its tensors."""
    meta = read_header(path)
    try:
        header = parse_json(meta.get(HEADER_KEY, "{}"))
    except ValueError as exc:
        raise LoadError(f"{path}: the lotterytrim header is not valid JSON: {exc}") from exc
    return header if isinstance(header, dict) else {}


def has_saved_state(path: str | Path) -> bool:
    """Whether a file written by :func:`save` holds a saved state (reads the header only)."""
    return "trimmer" in _header(path)


def saved_metadata(path: str | Path) -> dict[str, Any]:
    """The user metadata of a file written by :func:`save` (reads the header only)."""
    metadata = _header(path).get("metadata") or {}
    if not isinstance(metadata, dict):
        raise LoadError(f"{path}: metadata must be a JSON object, got {type(metadata).__name__}")
    return metadata


def load(path: str | Path, build_model: Callable[[], nn.Module]) -> nn.Module:
    """Build the original model, resize it by the saved plan and load the tensors strictly.

    Non-persistent buffers are stored too and copied back, trimmed as the plan trimmed them.
    """
    tensors, plan, _ = load_state(path)
    model = build_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model() must return an nn.Module, got {type(model).__name__}")
    try:
        apply_checked(plan, model)
    except (KeyError, ValueError) as exc:
        raise LoadError(f"{path} does not fit the model from build_model(): {exc}") from exc
    unsaved = unsaved_buffers(model)
    expected = {**model.state_dict(), **unsaved}
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
        if t.dtype != tensors[name].dtype:
            raise LoadError(
                f"{path} does not fit the model from build_model(): tensor {name!r} is "
                f"{tensors[name].dtype} in the file, {t.dtype} in the model; build the model in "
                "the file's dtype (e.g. build_model().double()) rather than cast it silently"
            )
    model.load_state_dict({k: v for k, v in tensors.items() if k not in unsaved}, strict=True)
    with torch.no_grad():
        for name, buffer in unsaved.items():
            buffer.copy_(tensors[name])
    return model

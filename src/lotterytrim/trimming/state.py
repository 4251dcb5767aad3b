"""The trimmer's saved state read back from a file, with its plans checked like a file's plan.

``lt.save(model, path, trimmer)`` stores ``trimmer.state_dict()`` beside the model; the storage
layer keeps it opaque. Reading it back for ``trimmer.load_state_dict`` checks here that its
plans fit the tensors the file holds, so a crafted file fails as a ``LoadError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lotterytrim.engine.plan import TrimPlan
from lotterytrim.errors import TrimmerStateError
from lotterytrim.storage.io import plan_from_file, read_saved
from lotterytrim.trimming.step import StepResult

__all__ = ["load_trimmer_state", "parse_state", "REWIND_PREFIX"]

REWIND_PREFIX = "rewind/"  # the rewind point's tensors in the state


def load_trimmer_state(path: str | Path) -> dict[str, Any] | None:
    """The trimmer state saved with the model (for ``trimmer.load_state_dict``), or None."""
    model, state = read_saved(path)
    if state is None:
        return None
    meta, ours = state["meta"], state["tensors"]
    plan_from_file(path, meta.get("plan"), model, "trimmer plan")
    if meta.get("rewind_plan") is not None:
        n = len(REWIND_PREFIX)
        rewind = {k[n:]: v for k, v in ours.items() if k.startswith(REWIND_PREFIX)}
        plan_from_file(path, meta["rewind_plan"], rewind, "rewind plan")
    return state


def parse_state(state: Mapping[str, Any], method: str, fmt: int) -> tuple[Any, ...]:
    """The fields of a saved trimmer state, each checked before anything is changed:
    ``(meta, tensors, plan, rewind_plan, history, level, masked)``. A malformed field is a
    ``TrimmerStateError`` that names it."""
    try:
        meta, tensors = state["meta"], state["tensors"]
        if meta.get("format") != fmt:
            raise TrimmerStateError(f"unknown trimmer state format {meta.get('format')!r}")
        if meta["method"] != method:
            raise TrimmerStateError(
                f"state was saved by a trimmer with method {meta['method']!r}, this one uses "
                f"{method!r}"
            )
        plan = TrimPlan.from_dict(meta["plan"])
        rewind_plan = (
            TrimPlan.from_dict(meta["rewind_plan"]) if meta["rewind_plan"] is not None else None
        )
        history = [StepResult(**r) for r in meta["history"]]
        level = meta["level"]
        masked = list(meta.get("masked") or [])
    except (KeyError, TypeError, ValueError) as exc:
        raise TrimmerStateError(f"malformed trimmer state: {exc!r}") from exc
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 1 << 20:
        raise TrimmerStateError(f"malformed trimmer state: level {level!r:.40} is not a level")
    known = set(plan.current_shapes())
    for name in masked:
        if name not in known or not {"mask/" + name, "orig/" + name} <= set(tensors):
            raise TrimmerStateError(
                f"malformed trimmer state: mask of {name!r:.80} names no weight of the plan "
                "or has no saved mask and values"
            )
    return meta, tensors, plan, rewind_plan, history, level, masked

"""The trimmer's saved state read back from a file, with its plans checked like a file's plan.

``lt.save(model, path, trimmer)`` stores ``trimmer.state_dict()`` beside the model; the storage
layer keeps it opaque. Reading it back for ``trimmer.load_state_dict`` checks here that its
plans fit the tensors the file holds, so a crafted file fails as a ``LoadError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lotterytrim.storage.io import plan_from_file, read_saved

__all__ = ["load_trimmer_state", "REWIND_PREFIX"]

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

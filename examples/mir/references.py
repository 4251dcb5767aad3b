"""Trained references shared between run directories of one task.

Level 0 (the reference's training and its rewind point W_k) does not depend on how the levels
select, trim or retrain, so every variant of a task can start from the same references: copied
into the variant's run directory, they are read back there instead of trained again, and the
variants' levels are paired replicate by replicate.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["REFERENCE_FILES", "adopt_references", "finished_references"]

#: A finished reference: its model file, then its row (written last: it marks it finished).
REFERENCE_FILES: tuple[str, str] = ("reference.lt", "reference.json")

#: The safetensors metadata entry that holds the lotterytrim header of a file.
_HEADER = "lotterytrim"


def finished_references(directory: Path, replicates: int) -> int:
    """How many of the first ``replicates`` replicates of a run directory have a finished
    reference."""
    return sum(
        all((directory / f"replicate-{r}" / name).exists() for name in REFERENCE_FILES)
        for r in range(replicates)
    )


def adopt_references(donor: Path, target: Path, replicates: int) -> int:
    """Copy each finished reference of ``donor`` that ``target`` lacks into ``target``, for
    the first ``replicates`` replicates; returns how many were copied.

    The model file's header is restamped with the target's run name (the runner trains again
    a level file that names another run); the row is copied last, as the runner writes it.
    """
    copied = 0
    for r in range(replicates):
        src, dst = donor / f"replicate-{r}", target / f"replicate-{r}"
        files = [src / name for name in REFERENCE_FILES]
        if not all(f.exists() for f in files) or (dst / REFERENCE_FILES[1]).exists():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        _restamp(files[0], dst / files[0].name, target.name)
        shutil.copyfile(files[1], dst / files[1].name)
        copied += 1
    return copied


def _restamp(source: Path, destination: Path, run: str) -> None:
    """Copy a model file whose header names ``run`` as its run directory."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    header = json.loads(meta[_HEADER])
    header["metadata"] = {**header.get("metadata", {}), "run": run}
    meta[_HEADER] = json.dumps(header, separators=(",", ":"), allow_nan=False)
    save_file(tensors, str(destination), metadata=meta)

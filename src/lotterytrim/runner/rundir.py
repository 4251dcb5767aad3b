"""The files of a run directory: one model file and one JSON row per finished level."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lotterytrim.errors import LoadError, LotteryError
from lotterytrim.runner.results import read_json
from lotterytrim.storage.atomic import write_bytes_atomic
from lotterytrim.storage.io import has_saved_state, load, load_state, save, saved_metadata

__all__ = [
    "cell_folder",
    "finished_levels",
    "file_owner",
    "foreign_file",
    "reference_params",
    "resumable_levels",
    "set_aside",
    "slim_level",
    "level_name",
    "reference_files",
    "row_name",
    "write_json",
]


def cell_folder(directory: Path, replicate: int, method: str, criterion: str) -> Path:
    """The folder of one lottery cell: ``replicate-R/METHOD-CRITERION``."""
    return directory / f"replicate-{replicate}" / f"{method}-{criterion}"


def reference_files(directory: Path, replicate: int) -> tuple[Path, Path]:
    """The model file and the row file of a replicate's reference (level 0)."""
    folder = directory / f"replicate-{replicate}"
    return folder / "reference.lt", folder / "reference.json"


def level_name(level: int) -> str:
    """The model file of ``level`` in a lottery cell's folder."""
    return f"level-{level:02d}.lt"


def row_name(level: int) -> str:
    """The row file of ``level`` in a lottery cell's folder."""
    return f"level-{level:02d}.json"


def finished_levels(folder: Path, levels: int) -> int:
    """How many consecutive levels from 0 have a row (their files were written before it)."""
    done = 0
    while done <= levels and (folder / row_name(done)).exists():
        done += 1
    return done


def write_json(path: Path, value: Mapping[str, Any]) -> None:
    """Write a row as JSON, atomically; non-finite numbers become null."""
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in value.items()
    }
    write_bytes_atomic(path, json.dumps(clean, indent=1, sort_keys=True).encode("utf-8"))


def foreign_file(path: Path, owner: Mapping[str, Any]) -> str | None:
    """None when the header of level file ``path`` names ``owner`` (run, cell, level), else
    what differs. Fields the header lacks are not held against it; its level must be there."""
    try:
        meta = saved_metadata(path)  # the header only: the tensors are read when resuming
    except LoadError as exc:
        return f"it does not load ({exc})"
    if "level" not in meta:
        return "its header names no level"
    wrong = [f"{k} {meta[k]!r}, not {v!r}" for k, v in owner.items() if k in meta and meta[k] != v]
    return "its header says " + ", ".join(wrong) if wrong else None


def set_aside(file: Path, row_file: Path, problem: str) -> None:
    """Move a level file that is not its cell's to ``<name>.rejected`` and drop its row, so
    that the level trains again."""
    warnings.warn(
        f"{file} is not this cell's file ({problem}): set aside as {file.name}.rejected, "
        "the level trains again",
        stacklevel=3,
    )
    row_file.unlink(missing_ok=True)
    file.replace(file.with_name(file.name + ".rejected"))


def file_owner(
    directory: Path, task: str, replicate: int, method: str, criterion: str, level: int
) -> dict[str, Any]:
    """What the header of a level file names: its run directory, task, cell and level."""
    return {
        "task": task,
        "run": directory.name,
        "replicate": replicate,
        "method": method,
        "criterion": criterion,
        "level": level,
    }


def resumable_levels(folder: Path, levels: int, owner: Callable[[int], Mapping[str, Any]]) -> int:
    """:func:`finished_levels`, after setting aside a last level file that is not the cell's
    (``owner(level)`` says whose it must be), as often as needed."""
    done = finished_levels(folder, levels)
    while 1 < done <= levels:
        file = folder / level_name(done - 1)
        problem = foreign_file(file, owner(done - 1))
        if problem is None:
            break
        set_aside(file, folder / row_name(done - 1), problem)
        done -= 1
    return done


def reference_params(row_file: Path) -> int:
    """The parameter count of a cell's level-0 row, checked: the shares kept are taken of it."""
    value = read_json(row_file).get("params")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LotteryError(
            f"{row_file}: field 'params' must be a positive integer, got {value!r:.40}; "
            "delete the file to run the level again"
        )
    return value


def slim_level(path: Path, build: Callable[[], nn.Module]) -> None:
    """Rewrite a superseded level file without the trimmer state (it is only for resuming)."""
    if not path.exists() or not has_saved_state(path):
        return
    _, plan, meta = load_state(path)
    with torch.random.fork_rng(devices=[]):
        model = load(path, build)
    save(model, path, metadata=meta, plan=plan)

"""The files of a run directory: one model file and one JSON row per finished level."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lotterytrim.storage.atomic import write_bytes_atomic

__all__ = [
    "cell_folder",
    "finished_levels",
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

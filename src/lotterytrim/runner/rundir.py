"""The files of a run directory: one model file and one JSON row per finished level."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lotterytrim.storage.atomic import write_bytes_atomic

__all__ = ["level_name", "row_name", "finished_levels", "write_json"]


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

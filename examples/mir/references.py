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
from typing import Any

from safetensors import safe_open
from safetensors.torch import save_file

import lotterytrim as lt

__all__ = [
    "REFERENCE_FILES",
    "adopt_from",
    "adopt_from_cli",
    "adopt_references",
    "finished_references",
]

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


def adopt_from(donor: Path, lottery: lt.Lottery, replicates: int) -> int:
    """Copy ``donor``'s references into ``lottery``'s run directory; returns how many.

    Raises ValueError, naming the donor and what differs, where its level 0 is not the one
    ``lottery`` would train (task, seed, rewind point, data or training settings) or where an
    ``@earlybird`` method needs the reference trained in this run, and copies nothing then.
    """
    drawn = [m for m in lottery.config.methods if lt.methods.split_pacing(m)[1] == "earlybird"]
    if drawn:
        raise ValueError(
            f"{donor}: {', '.join(drawn)} draws its tickets while the reference trains, so "
            "this run must train its own references; nothing copied"
        )
    record = donor / "settings.json"
    if not record.is_file():
        raise ValueError(f"{donor}: not a run directory (no settings.json)")
    theirs = json.loads(record.read_text())
    given = theirs.get("config", {})
    config = lottery.config
    ours = {
        "task": config.task,
        "seed": config.seed,
        "rewind_fraction": config.rewind_fraction,
        "settings": _level0(lottery.settings),
    }
    given = {
        "task": given.get("task"),
        "seed": given.get("seed"),
        "rewind_fraction": given.get("rewind_fraction"),
        "settings": _level0(theirs.get("settings", {})),
    }
    differ = [key for key in ours if _canonical(ours[key]) != _canonical(given[key])]
    if differ:
        raise ValueError(
            f"{donor}: its level 0 differs from this run's in {', '.join(differ)}; nothing copied"
        )
    if donor.resolve() == lottery.directory.resolve():
        return 0
    return adopt_references(donor, lottery.directory, replicates)


def adopt_from_cli(donor: Path, lottery: lt.Lottery, replicates: int) -> int:
    """:func:`adopt_from` for a command line: a refusal exits, naming ``--references-from``."""
    try:
        return adopt_from(donor, lottery, replicates)
    except ValueError as err:
        raise SystemExit(f"--references-from {err}") from None


def _level0(settings: Any) -> Any:
    """The settings that shape a reference: all but the distillation's (levels only)."""
    train = {k: v for k, v in settings.get("train", {}).items() if not k.startswith("kd_")}
    return {**settings, "train": train}


def _canonical(value: Any) -> str:
    """``value`` as JSON with sorted keys (tuples and lists alike), for comparing records."""
    return json.dumps(value, sort_keys=True, default=str)


def _restamp(source: Path, destination: Path, run: str) -> None:
    """Copy a model file whose header names ``run`` as its run directory."""
    with safe_open(str(source), framework="pt") as handle:
        meta = dict(handle.metadata() or {})
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    header = json.loads(meta[_HEADER])
    header["metadata"] = {**header.get("metadata", {}), "run": run}
    meta[_HEADER] = json.dumps(header, separators=(",", ":"), allow_nan=False)
    save_file(tensors, str(destination), metadata=meta)

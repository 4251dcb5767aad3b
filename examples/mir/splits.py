"""Train / val / test splits of each data source (synthetic, rendered, real), cached per process."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from . import datasets_annotated, datasets_clips, render, synth
from .features import MIRData, Splits
from .models import TASKS

__all__ = [
    "GROUP_KEYS",
    "REAL_DATA",
    "describe_splits",
    "load_real_splits",
    "rendered_splits",
    "split_by_group",
    "subset",
    "synthetic_splits",
]

#: Per-example ``meta`` key whose values must not be shared between splits of real data
#: (drum and onset data are split by clip).
GROUP_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "instrument": "file",
        "singing": "singer",
        "pitch": "instrument",
        "chord": "song",
        "drum": "clip",
        "onset": "clip",
    }
)

#: Folder under ``--data-root`` that holds each task's dataset, in the loader's layout.
REAL_DATA: Mapping[str, str] = MappingProxyType(
    {
        "instrument": "instruments",
        "singing": "vocalset",
        "pitch": "nsynth",
        "chord": "beatles",
        "drum": "smt-drums",
        "onset": "smt-drums",
    }
)

_FRACTIONS = (0.7, 0.15, 0.15)


@functools.lru_cache(maxsize=16)
def synthetic_splits(
    task: str,
    n: int,
    seed: int,
    size: str,
    fractions: tuple[float, float, float] = _FRACTIONS,
) -> Splits:
    """Seeded synthetic train / val / test splits, generated once per process and reused."""
    return synth.make_dataset(task, n, seed=seed, size=size, fractions=fractions)


@functools.lru_cache(maxsize=4)
def rendered_splits(
    task: str,
    n: int,
    seed: int,
    size: str,
    fractions: tuple[float, float, float] = _FRACTIONS,
    soundfont: str | None = None,
) -> Splits:
    """SoundFont-rendered splits (cached on disk by :mod:`examples.mir.render`, and per process)."""
    return render.make_dataset(task, n, seed, size, soundfont, fractions)


def _per_clip_keys(data: MIRData) -> set[str]:
    """``meta`` keys of window data that hold one entry per clip rather than per window."""
    n_clips = len(data.meta["onsets"])
    return {
        k
        for k, v in data.meta.items()
        if k == "onsets" or (isinstance(v, list | np.ndarray) and k != "clip" and len(v) == n_clips)
    }


def subset(data: MIRData, rows: np.ndarray) -> MIRData:
    """The examples ``rows`` of ``data``, with per-example ``meta`` entries cut to match.

    Window data (drums, onsets: ``meta["clip"]``) are cut by whole clips: ``rows`` must hold
    every window of the clips kept, and the clips are renumbered from 0 in order.
    """
    rows = np.asarray(rows, dtype=np.int64)
    meta: dict[str, Any] = {}
    if "clip" in data.meta:
        clip = np.asarray(data.meta["clip"])
        kept = np.unique(clip[rows])
        per_clip = _per_clip_keys(data)
        renumber = np.full(int(clip.max()) + 1, -1, dtype=np.int64)
        renumber[kept] = np.arange(kept.size)
        for k, v in data.meta.items():
            if k == "clip":
                meta[k] = renumber[clip[rows]]
            elif k in per_clip:
                meta[k] = [v[int(c)] for c in kept]
            elif isinstance(v, np.ndarray) and len(v) == data.n:
                meta[k] = v[rows]
            else:
                meta[k] = v
    else:
        for k, v in data.meta.items():
            if isinstance(v, np.ndarray | list) and len(v) == data.n:
                meta[k] = v[rows] if isinstance(v, np.ndarray) else [v[int(i)] for i in rows]
            else:
                meta[k] = v
    index = torch.from_numpy(rows)
    return MIRData(data.inputs[index], data.targets[index], meta)


def split_by_group(data: MIRData, key: str, seed: int, limit: int | None = None) -> Splits:
    """Split ``data`` 70/15/15 by the groups of ``meta[key]`` (whole songs, singers, clips).

    Groups are shuffled with ``seed``. With ``limit``, groups are taken until ``limit`` examples
    (clips for window data) are reached, so a small profile can run on a large dataset.
    """
    groups = np.asarray([str(g) for g in data.meta[key]])
    names, inverse = np.unique(groups, return_inverse=True)
    if names.size < 3:
        raise ValueError(f"need at least 3 distinct '{key}' groups to split, found {names.size}")
    order = np.random.default_rng(seed).permutation(names.size)
    if limit is not None:
        sizes = np.ones(names.size) if key == "clip" else np.bincount(inverse)
        enough = int(np.searchsorted(np.cumsum(sizes[order]), limit)) + 1
        order = order[: max(3, min(enough, names.size))]
    n_val = max(1, round(order.size * _FRACTIONS[1]))
    n_test = max(1, round(order.size * _FRACTIONS[2]))
    parts = np.split(order, [order.size - n_val - n_test, order.size - n_test])
    return Splits(*(subset(data, np.flatnonzero(np.isin(inverse, p))) for p in parts))


def _load_real(task: str, folder: Path, size: str) -> MIRData:
    """Run the real-dataset loader of ``task`` on ``folder`` at the inputs of ``size``."""
    spec = TASKS[task].size(size)
    if task in ("instrument", "singing"):
        seconds = spec.input_shape[-1] / spec.sample_rate
        if task == "instrument":
            return datasets_clips.load_instruments(folder, seconds=seconds, sr=spec.sample_rate)
        return datasets_clips.load_vocalset(folder, seconds=seconds, sr=spec.sample_rate)
    if task == "pitch":
        return datasets_clips.load_nsynth(folder)
    if task == "chord":
        return datasets_annotated.load_chords(folder / "audio", folder / "chordlab")
    return datasets_annotated.load_smt_drums(folder, task=task)


@functools.lru_cache(maxsize=4)
def load_real_splits(
    task: str, data_root: str, size: str, seed: int, limit: int | None = None
) -> Splits:
    """Load ``task``'s dataset from ``data_root / REAL_DATA[task]`` and split it by recording.

    Cached per process, like the synthetic data.
    """
    data = _load_real(task, Path(data_root) / REAL_DATA[task], size)
    return split_by_group(data, GROUP_KEYS[task], seed, limit)


# ------------------------------------------------------------------------------- training


def describe_splits(splits: Splits) -> str:
    """``train/val/test`` example counts, for the run's header line."""
    return "/".join(str(part.n) for part in splits)

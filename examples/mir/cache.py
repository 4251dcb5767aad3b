"""On-disk cache of rendered splits: one ``.npz`` per (task, size, counts, seed, SoundFont).

The key hashes everything that changes the data, the SoundFont's bytes included, so editing or
swapping the SoundFont renders anew. Files hold arrays and JSON only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .features import MIRData, Splits

__all__ = ["RENDER_VERSION", "cache_key", "cached_splits", "default_cache_dir"]

#: Bumped whenever the renderers change what they make, so old cache files are not reused.
RENDER_VERSION = 1
_SPLITS = ("train", "val", "test")


def default_cache_dir() -> Path:
    """``$LOTTERYTRIM_CACHE`` or ``~/.cache/lotterytrim``, plus ``rendered``."""
    root = os.environ.get("LOTTERYTRIM_CACHE") or Path.home() / ".cache" / "lotterytrim"
    return Path(root) / "rendered"


def cache_key(fields: Mapping[str, Any]) -> str:
    """A short hash of the JSON of ``fields`` and of :data:`RENDER_VERSION`."""
    text = json.dumps({**fields, "version": RENDER_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_splits(
    key: str, make: Callable[[], Splits], cache_dir: str | Path | None = None
) -> tuple[Splits, bool]:
    """The splits stored under ``key``, or ``make()``'s, written there; and whether it was a hit."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return Splits(*(_unpack(stored, name) for name in _SPLITS)), True
    splits = make()
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for name, data in zip(_SPLITS, splits, strict=True):
        arrays.update(_pack(data, name))
    partial = folder / f".{key}.{os.getpid()}.npz"
    np.savez(partial, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool
    partial.replace(path)  # atomic: a reader never sees half a file
    return splits, False


def _pack(data: MIRData, prefix: str) -> dict[str, np.ndarray]:
    """Arrays of one split: inputs, targets, array meta, onset lists and JSON for the rest."""
    arrays = {f"{prefix}.inputs": data.inputs.numpy(), f"{prefix}.targets": data.targets.numpy()}
    other: dict[str, Any] = {}
    for key, value in data.meta.items():
        if isinstance(value, np.ndarray):
            arrays[f"{prefix}.meta.{key}"] = value
        elif key == "onsets":  # per clip, per target: arrays of times
            flat = [np.asarray(t, dtype=np.float64) for clip in value for t in clip]
            arrays[f"{prefix}.onsets.times"] = np.concatenate(flat) if flat else np.zeros(0)
            arrays[f"{prefix}.onsets.counts"] = np.asarray([t.size for t in flat], np.int64)
            arrays[f"{prefix}.onsets.per_clip"] = np.asarray([len(c) for c in value], np.int64)
        else:
            other[key] = list(value) if isinstance(value, tuple) else value
    arrays[f"{prefix}.json"] = np.asarray(json.dumps(other))
    return arrays


def _unpack(stored: Any, prefix: str) -> MIRData:
    """One split back from the arrays :func:`_pack` wrote."""
    meta: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in json.loads(str(stored[f"{prefix}.json"])).items()
    }
    head = f"{prefix}.meta."
    for name in stored.files:
        if name.startswith(head):
            meta[name[len(head) :]] = stored[name]
    if f"{prefix}.onsets.times" in stored.files:
        counts = stored[f"{prefix}.onsets.counts"]
        times = np.split(stored[f"{prefix}.onsets.times"], np.cumsum(counts)[:-1])
        per_clip = np.cumsum(stored[f"{prefix}.onsets.per_clip"])[:-1]
        meta["onsets"] = [list(c) for c in np.split(np.arange(len(times)), per_clip)]
        meta["onsets"] = [[times[i] for i in clip] for clip in meta["onsets"]]
    inputs = torch.from_numpy(stored[f"{prefix}.inputs"])
    return MIRData(inputs, torch.from_numpy(stored[f"{prefix}.targets"]), meta)

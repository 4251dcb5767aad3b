"""Task data rendered from a General MIDI SoundFont: real instrument samples, exact labels.

Every generator takes ``(n, seed, size, soundfont)``, draws all its choices from
``np.random.default_rng(seed)`` (same seed, same arrays) and returns a
:class:`~examples.mir.features.MIRData` shaped like the synthetic data of :mod:`synth`, so the
models, metrics and runner take either. Labels come from the MIDI notes that were played.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_key, cached_splits
from .features import MIRData, Splits, split_counts
from .render_chords import chords
from .render_ddsp import DDSP_PROGRAMS, DDSP_RENDER, ddsp_phrases
from .render_drums import drums, onsets
from .render_pitch import (
    PITCH_HELDOUT_PROGRAMS,
    PITCH_HELDOUT_SHARE,
    PITCH_RENDER,
    PITCH_TRAIN_PROGRAMS,
    pitch,
)
from .render_tones import instrument, singing
from .soundfont import SoundFont, default_soundfont, soundfont_fingerprint

__all__ = ["GENERATORS", "make_dataset", "render_fields"]


GENERATORS: Mapping[str, Callable[..., MIRData]] = {
    "instrument": instrument,
    "singing": singing,
    "pitch": pitch,
    "chord": chords,
    "drum": drums,
    "onset": onsets,
    "ddsp": ddsp_phrases,
}


def render_fields(task: str) -> dict[str, Any]:
    """What changes ``task``'s rendered splits beyond its task, size, counts, seed and SoundFont.

    Pitch's held-out timbres and its render version, ddsp's programs and render version;
    nothing for the other tasks, whose cache keys (and run settings) stay as they were.
    """
    if task == "ddsp":
        return {"ddsp_render": DDSP_RENDER, "programs": list(DDSP_PROGRAMS)}
    if task != "pitch":
        return {}
    return {
        "pitch_render": PITCH_RENDER,
        "heldout_programs": list(PITCH_HELDOUT_PROGRAMS),
        "heldout_share": PITCH_HELDOUT_SHARE,
    }


def _split_options(task: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Extra generator arguments of the train, val and test splits: pitch's program sets."""
    if task != "pitch":
        return {}, {}, {}
    seen = {"programs": PITCH_TRAIN_PROGRAMS}
    return seen, seen, {**seen, "heldout_share": PITCH_HELDOUT_SHARE}


def make_dataset(
    task: str,
    n: int,
    seed: int = 0,
    size: str = "quick",
    soundfont: SoundFont = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    cache_dir: str | Path | None = None,
) -> Splits:
    """Rendered train / val / test splits of ``n`` examples (clips for drums), cached on disk.

    Each split comes from its own child seed of ``seed``. The first call renders and writes
    ``cache_dir`` (default :func:`examples.mir.cache.default_cache_dir`); later calls with the
    same task, size, counts, seed and SoundFont bytes read the file back. Pitch's training and
    validation notes avoid :data:`PITCH_HELDOUT_PROGRAMS`; its test split holds
    :data:`PITCH_HELDOUT_SHARE` of frames played by them.
    """
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(GENERATORS)}")
    counts = split_counts(n, fractions)
    path = Path(soundfont) if soundfont is not None else default_soundfont()
    fields = {
        "task": task,
        "size": size,
        "counts": counts,
        "seed": seed,
        "soundfont": soundfont_fingerprint(path),
        **render_fields(task),
    }

    def _make() -> Splits:
        children = np.random.SeedSequence(seed).spawn(3)
        gen = GENERATORS[task]
        return Splits(
            *(
                gen(count, seed=int(child.generate_state(1)[0]), size=size, soundfont=path, **opts)
                for count, child, opts in zip(counts, children, _split_options(task), strict=True)
            )
        )

    return cached_splits(cache_key(fields), _make, cache_dir)[0]

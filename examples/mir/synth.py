"""Seeded synthetic stand-ins for the paper's datasets, for offline experiments and CI.

Every generator is deterministic for a given seed (``np.random.default_rng``), vectorised over
examples with numpy, and returns a :class:`~examples.mir.features.MIRData` that unpacks as
``(inputs, targets)`` ready for the model of the same task in :mod:`examples.mir.models`.
The data are deliberately not trivial: classes overlap, sounds are noisy, pitches vary, and
several sources play at once, so that model capacity and trimming actually matter.

The generators live in one module per task (:mod:`~examples.mir.synth_pitch`,
:mod:`~examples.mir.synth_tones`, :mod:`~examples.mir.synth_chords`,
:mod:`~examples.mir.synth_drums`); ``make_dataset(task, n, seed, size)`` builds independent
train / validation / test splits of any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .features import MIRData, Splits, split_counts
from .synth_chords import chords
from .synth_ddsp import ddsp_tones
from .synth_drums import drums, onsets
from .synth_pitch import pitch
from .synth_tones import instrument, singing

__all__ = ["GENERATORS", "make_dataset"]

GENERATORS: Mapping[str, Callable[..., MIRData]] = {
    "instrument": instrument,
    "singing": singing,
    "pitch": pitch,
    "chord": chords,
    "drum": drums,
    "onset": onsets,
    "ddsp": ddsp_tones,
}


def make_dataset(
    task: str,
    n: int,
    seed: int = 0,
    size: str = "quick",
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    **kwargs: Any,
) -> Splits:
    """Independent train / val / test splits of ``n`` synthetic examples (clips for drums).

    Each split comes from its own child seed of ``seed``, so no sound is shared between splits
    and the whole thing is reproducible.
    """
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(GENERATORS)}")
    counts = split_counts(n, fractions)
    children = np.random.SeedSequence(seed).spawn(3)
    gen = GENERATORS[task]
    parts = [
        gen(count, seed=child, size=size, **kwargs)
        for count, child in zip(counts, children, strict=True)
    ]
    return Splits(*parts)

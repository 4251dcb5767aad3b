"""Rendered chord data: CQT patches of triads played by GM pianos, organs, guitars, pads."""

from __future__ import annotations

import numpy as np
import torch

from .audio import balanced_labels, db_gain, triad
from .features import CHORD_HOP, CHORD_SEGMENT, CHORD_SR, MIRData, chord_features, chord_patches
from .models import TASKS
from .soundfont import Note, Renderer, SoundFont

__all__ = ["chords"]

_CHORD_PROGRAMS = (0, 1, 2, 4, 16, 17, 19, 24, 25, 26, 48, 49, 61, 88, 89)


def _voicing(rng: np.random.Generator, label: int) -> list[int]:
    """MIDI keys of chord class ``label`` (0-11 major, 12-23 minor roots; 24: N) in a voicing.

    A triad in a random inversion and octave, sometimes with a doubled root and a bass note;
    ``N`` is silence or one lone note.
    """
    if label == 24:
        return [int(rng.integers(48, 80))] if rng.random() < 0.4 else []
    base, tones, _ = triad(rng, label, 6)
    keys = [base + x for x in tones]
    if rng.random() < 0.5:
        keys.append(base + 12)
    if rng.random() < 0.5:
        keys.append(base - 12)
    return keys


def chords(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """CQT patches (105 x 15) of chords played by GM piano, organ, guitar, strings, pads...

    Segments of 21 frames are rendered back to back at 11025 Hz (random program, voicing,
    strum and velocity each), one CQT covers them all, and each segment's 15 central frames
    form a patch; ``N`` segments hold silence or a lone note. Classes are balanced.
    """
    TASKS["chord"].size(size)  # raises for an unknown size
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, CHORD_SR)
    programs = [p for p in _CHORD_PROGRAMS if synth.has_program(p)]
    labels = balanced_labels(rng, n, 25)
    seg = CHORD_SEGMENT * CHORD_HOP
    seconds = seg / CHORD_SR
    audio = np.zeros(n * seg, dtype=np.float32)
    for i, label in enumerate(labels):
        keys = _voicing(rng, int(label))
        strum = rng.uniform(0, 0.03)
        start = rng.uniform(0, 0.1)
        velocity = int(rng.integers(50, 121))
        notes = [
            Note(start + j * strum, seconds, 0, k, velocity) for j, k in enumerate(sorted(keys))
        ]
        part = synth.render(notes, seg, {0: int(rng.choice(programs))})
        audio[i * seg : (i + 1) * seg] = part * db_gain(rng, -12)
    audio = audio + 1e-4 * rng.standard_normal(audio.size).astype(np.float32)
    patches = chord_patches(chord_features(audio, CHORD_SR), n)
    return MIRData(patches, torch.from_numpy(labels), {"sample_rate": CHORD_SR})

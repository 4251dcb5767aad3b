"""Rendered ddsp data: monophonic phrases of sustained GM instruments, with f0 and loudness.

Each phrase is one instrument of :data:`DDSP_PROGRAMS` playing a melody at 16 kHz; its f0 per
frame comes from the MIDI notes and their pitch bend (vibrato), its loudness from the rendered
audio (:func:`examples.mir.ddsp_features.frame_loudness`).
"""

from __future__ import annotations

import numpy as np

from .audio import midi_to_hz
from .ddsp import DDSP_HOP, DDSP_SR
from .features import MIRData
from .models import TASKS
from .soundfont import Note, Renderer, SoundFont
from .synth_ddsp import ddsp_example

__all__ = ["DDSP_PROGRAMS", "DDSP_RANGES", "DDSP_RENDER", "ddsp_phrases"]

#: GM programs of the phrases: violin, trumpet, flute (sustained, monophonic timbres).
DDSP_PROGRAMS: tuple[int, ...] = (40, 56, 73)
#: The MIDI keys each program's melodies stay within.
DDSP_RANGES: dict[int, tuple[int, int]] = {40: (55, 88), 56: (55, 79), 73: (60, 91)}
DDSP_RENDER = 1  # bumped when the ddsp phrases change, so old cache files are not reused
_CHUNK = 256  # samples between two pitch-bend updates of the renderer (examples.mir.soundfont)
_PEAK = 0.5  # each phrase is scaled to this peak


def ddsp_phrases(
    n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None
) -> MIRData:
    """``n`` phrases (the length of ``size``'s input) of one random program each.

    A phrase is a random walk of notes (steps of up to 5 semitones within the program's
    range), 0.2-0.8 s long, legato or after a 0.05-0.3 s rest, velocity 60-120; half of the
    notes carry a vibrato (5-6.5 Hz, 0.1-0.4 semitone) from 0.15 s in, played by the pitch
    bend. f0 per frame is the sounding note's key plus the bend the renderer applied at the
    frame centre; through rests and release tails it holds the last note's f0 (the first
    note's before it starts), and ``voiced`` marks the frames where a note is held, from
    20 ms after its onset. Each phrase is scaled to a peak of 0.5. ``meta``: ``program``,
    ``voiced``, ``sample_rate``, ``hop``.
    """
    frames = TASKS["ddsp"].size(size).input_shape[-1]
    length = frames * DDSP_HOP
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, DDSP_SR)
    pool = [p for p in DDSP_PROGRAMS if synth.has_program(p)]
    if not pool:
        raise ValueError(f"{synth.path.name} has none of the ddsp programs {DDSP_PROGRAMS}")
    centres = np.arange(frames) * DDSP_HOP + DDSP_HOP // 2
    audio = np.zeros((n, length))
    f0 = np.zeros((n, frames))
    voiced = np.zeros((n, frames), dtype=bool)
    programs = np.zeros(n, dtype=np.int64)
    for i in range(n):
        program = int(rng.choice(pool))
        notes, bend, key_at = _phrase(rng, DDSP_RANGES[program], length)
        clip = synth.render(notes, length, {0: program}, bend=bend)
        audio[i] = clip * (_PEAK / max(float(np.abs(clip).max()), 1e-9))
        applied = bend[(centres // _CHUNK) * _CHUNK]  # the bend in force at each centre
        f0[i] = midi_to_hz(key_at[centres] + applied)
        held = np.zeros(length, dtype=bool)
        for note in notes:
            start = int(round((note.start + 0.02) * DDSP_SR))
            held[start : int(round((note.start + note.duration) * DDSP_SR))] = True
        voiced[i] = held[centres]
        programs[i] = program
    return ddsp_example(f0, audio, voiced, program=programs)


def _phrase(
    rng: np.random.Generator, keys: tuple[int, int], length: int
) -> tuple[list[Note], np.ndarray, np.ndarray]:
    """A phrase's notes, its bend curve (semitones per sample) and the key in force at each
    sample (held through rests)."""
    lo, hi = keys
    notes: list[Note] = []
    bend = np.zeros(length)
    key_at = np.zeros(length)
    t = rng.uniform(0.0, 0.2)
    key = int(rng.integers(lo, hi + 1))
    seconds = length / DDSP_SR
    while t < seconds - 0.1:
        duration = min(rng.uniform(0.2, 0.8), seconds - t)
        velocity = int(rng.integers(60, 121))
        notes.append(Note(float(t), float(duration), 0, key, velocity))
        a, b = int(round(t * DDSP_SR)), int(round((t + duration) * DDSP_SR))
        if rng.random() < 0.5:
            since = np.arange(b - a) / DDSP_SR
            depth, rate = rng.uniform(0.1, 0.4), rng.uniform(5.0, 6.5)
            bend[a:b] = depth * np.sin(2 * np.pi * rate * np.maximum(since - 0.15, 0.0))
        key_at[a:] = key
        t += duration + (rng.uniform(0.05, 0.3) if rng.random() < 0.5 else 0.0)
        key = int(np.clip(key + rng.integers(-5, 6), lo, hi))
    first = int(round(notes[0].start * DDSP_SR))
    key_at[:first] = notes[0].key
    return notes, bend, key_at

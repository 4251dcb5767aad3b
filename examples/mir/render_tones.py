"""Rendered instrument and singing data: GM phrases, voice techniques made with MIDI."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .audio import balanced_labels, random_level, rms
from .features import MIRData
from .models import INSTRUMENTS, TASKS, TECHNIQUES
from .soundfont import Note, Renderer, SoundFont

__all__ = ["INSTRUMENT_PROGRAMS", "instrument", "phrase", "singing"]

#: GM program and playable MIDI range of each URMP instrument (same order as INSTRUMENTS).
INSTRUMENT_PROGRAMS: Mapping[str, tuple[int, int, int]] = {
    "violin": (40, 55, 96),
    "viola": (41, 48, 88),
    "cello": (42, 36, 76),
    "double_bass": (43, 28, 60),
    "flute": (73, 60, 96),
    "oboe": (68, 58, 91),
    "clarinet": (71, 50, 89),
    "saxophone": (65, 49, 81),
    "bassoon": (70, 34, 75),
    "trumpet": (56, 54, 84),
    "horn": (60, 41, 77),
    "trombone": (57, 40, 72),
    "tuba": (58, 28, 58),
}
assert tuple(INSTRUMENT_PROGRAMS) == INSTRUMENTS
#: The GM voice programs that sing: choir aahs, voice oohs, synth voice, solo vox.
_VOICE_PROGRAMS = (52, 53, 54, 85)


def phrase(
    rng: np.random.Generator, lo: int, hi: int, seconds: float, channel: int = 0
) -> list[Note]:
    """A random monophonic phrase: steps within a fifth, 0.15-0.6 s notes, some rests."""
    notes, t = [], rng.uniform(0.0, 0.15)
    key = int(rng.integers(lo, hi + 1))
    while t < seconds:
        length = rng.uniform(0.15, 0.6)
        velocity = int(rng.integers(50, 121))
        notes.append(Note(t, length * rng.uniform(0.7, 1.0), channel, key, velocity))
        t += length + (rng.uniform(0.05, 0.2) if rng.random() < 0.15 else 0.0)
        key = int(np.clip(key + rng.integers(-7, 8), lo, hi))
    return notes


def instrument(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """Phrases of the 13 URMP instruments as GM programs, balanced classes.

    Each clip (the size's length and rate: 1.5 s at 22.05 kHz for ``quick``) is a random
    phrase in the instrument's range, at a random level with a 20-45 dB noise floor.
    """
    shape = TASKS["instrument"].size(size).input_shape
    sr = TASKS["instrument"].size(size).sample_rate
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, sr)
    labels = balanced_labels(rng, n, len(INSTRUMENTS))
    seconds = shape[-1] / sr
    out = np.empty((n, shape[-1]), dtype=np.float32)
    for i, label in enumerate(labels):
        program, lo, hi = INSTRUMENT_PROGRAMS[INSTRUMENTS[label]]
        audio = synth.render(phrase(rng, lo, hi, seconds), shape[-1], {0: program})
        out[i] = random_level(rng, audio, rng.uniform(20, 45))
    meta = {"labels": INSTRUMENTS, "sample_rate": sr}
    return MIRData(torch.from_numpy(out[:, None, :]), torch.from_numpy(labels), meta)


def _technique(
    rng: np.random.Generator, name: str, n_samples: int, sr: int
) -> tuple[list[Note], np.ndarray, np.ndarray, float]:
    """Notes, pitch bend (semitones), amplitude curve and breath-noise share of a technique."""
    t = np.arange(n_samples) / sr
    seconds = n_samples / sr
    lo, hi = (36, 50) if name == "vocal_fry" else (48, 76)
    notes = phrase(rng, lo, hi, seconds)
    if name in ("spoken", "inhaled"):
        notes = [Note(x.start, x.duration * 0.6, 0, x.key, x.velocity) for x in notes]
    if name == "belt":
        notes = [Note(x.start, x.duration, 0, min(x.key + 5, 84), 127) for x in notes]
    if name == "breathy":
        notes = [Note(x.start, x.duration, 0, x.key, max(30, x.velocity // 2)) for x in notes]
    bend = np.zeros(n_samples)
    amp = np.ones(n_samples)
    noise = 0.0
    phase = rng.uniform(0, 2 * np.pi)
    if name == "vibrato":
        bend = rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.uniform(5, 7) * t + phase)
    elif name == "trill":
        square = np.sign(np.sin(2 * np.pi * rng.uniform(5, 8) * t + phase))
        bend = rng.choice((1.0, 2.0)) * (square > 0)
    elif name == "trillo":
        amp = 1 - rng.uniform(0.6, 0.95) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
    elif name == "lip_trill":
        amp = 1 - rng.uniform(0.6, 0.95) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(18, 30) * t))
        bend = rng.uniform(-2, 2) * np.sin(np.pi * t / seconds + phase)
        noise = 0.1
    elif name == "spoken":
        bend = -rng.uniform(1, 4) * ((t * rng.uniform(2, 4)) % 1.0)
        amp = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + phase) ** 2
        noise = 0.15
    elif name == "inhaled":
        bend = rng.uniform(1, 4) * ((t * rng.uniform(1, 2)) % 1.0)
        noise = rng.uniform(0.5, 0.8)
    elif name == "breathy":
        noise = rng.uniform(0.3, 0.6)
    elif name == "vocal_fry":
        pulses = np.sin(
            2
            * np.pi
            * np.cumsum(rng.uniform(30, 70) * (1 + 0.3 * rng.standard_normal(n_samples)))
            / sr
        )
        amp = np.clip(pulses, 0, None) ** 4
    return notes, np.clip(bend, -11.9, 11.9), amp, noise


def singing(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """The 10 VocalSet techniques sung by GM voice programs (choir, oohs, synth and solo vox).

    A technique is made with MIDI and light signal processing: pitch bend (vibrato, trill,
    glides of spoken and inhaled phrases), amplitude curves (trillo, lip trill, vocal fry
    pulses), velocity and register (belt, breathy) and breath noise (breathy, inhaled).
    """
    shape = TASKS["singing"].size(size).input_shape
    sr = TASKS["singing"].size(size).sample_rate
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, sr)
    voices = [p for p in _VOICE_PROGRAMS if synth.has_program(p)]
    labels = balanced_labels(rng, n, len(TECHNIQUES))
    out = np.empty((n, shape[-1]), dtype=np.float32)
    for i, label in enumerate(labels):
        notes, bend, amp, noise = _technique(rng, TECHNIQUES[label], shape[-1], sr)
        program = int(rng.choice(voices))
        voice = synth.render(notes, shape[-1], {0: program}, bend=bend, bend_range=12.0)
        voice = voice * amp / (float(rms(voice * amp)) + 1e-9)
        breath = np.diff(rng.standard_normal(shape[-1] + 1))  # bright, hiss-like noise
        envelope = np.convolve(np.abs(voice), np.ones(512) / 512, "same")
        breath = breath * envelope / (float(rms(breath * envelope)) + 1e-9)
        mix = np.sqrt(1 - noise) * voice + np.sqrt(noise) * breath
        out[i] = random_level(rng, mix, rng.uniform(25, 45))
    meta = {"labels": TECHNIQUES, "sample_rate": sr}
    return MIRData(torch.from_numpy(out[:, None, :]), torch.from_numpy(labels), meta)

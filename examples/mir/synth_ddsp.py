"""Synthetic ddsp data: harmonic tones on a random f0 contour, with their f0 and loudness.

A small, fast stand-in for the rendered phrases of :mod:`examples.mir.render_ddsp` (the tiny
profile and the tests use it): the same inputs, targets and ``meta``, no SoundFont.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import Seed, midi_to_hz, smooth_noise
from .ddsp import DDSP_HOP, DDSP_SR
from .ddsp_features import frame_loudness
from .features import MIRData
from .models import TASKS

__all__ = ["ddsp_example", "ddsp_tones"]

_HARMONICS = 20


def ddsp_example(
    f0_hz: np.ndarray, audio: np.ndarray, voiced: np.ndarray, **meta: object
) -> MIRData:
    """One :class:`MIRData` of ddsp phrases: inputs (N, 2, T) hold f0 (Hz) and the audio's
    loudness (dB, :func:`examples.mir.ddsp_features.frame_loudness`), targets (N, T * hop)
    the audio; ``meta``: ``voiced`` (N, T), ``sample_rate``, ``hop`` and the extra ``meta``."""
    loud = np.stack([frame_loudness(clip) for clip in audio])
    inputs = np.stack([f0_hz, loud], axis=1).astype(np.float32)
    info = {"voiced": np.asarray(voiced, dtype=bool), "sample_rate": DDSP_SR, "hop": DDSP_HOP}
    return MIRData(
        torch.from_numpy(inputs), torch.from_numpy(audio.astype(np.float32)), {**info, **meta}
    )


def ddsp_tones(n: int, seed: Seed = 0, size: str = "tiny") -> MIRData:
    """``n`` phrases of one to three harmonic notes with rests, on a random f0 contour.

    Each note starts at a random MIDI key of 48-84 that glides (about 2 changes a second, up
    to a semitone) and may carry a 5-7 Hz vibrato; its harmonics fall off as ``k^-p`` (p in
    1-2.5) under an attack-decay envelope, with white noise 30 dB below. f0 is held at the
    last note's value through rests (and at the first note's before it); ``voiced`` marks
    frames inside a note.
    """
    frames = TASKS["ddsp"].size(size).input_shape[-1]
    rng = np.random.default_rng(seed)
    length = frames * DDSP_HOP
    t = np.arange(length) / DDSP_SR
    f0_frames = np.zeros((n, frames))
    voiced = np.zeros((n, frames), dtype=bool)
    audio = np.zeros((n, length))
    k = np.arange(1, _HARMONICS + 1)
    centres = np.arange(frames) * DDSP_HOP + DDSP_HOP // 2
    for i in range(n):
        glide = smooth_noise(rng, 1, length, DDSP_SR, 2.0)[0]
        midi = np.full(length, np.nan)
        for a, b in _notes(rng, length):
            key = rng.uniform(48, 84)
            since = t[: b - a]
            vibrato = rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(5, 7) * since)
            midi[a:b] = key + 0.5 * glide[a:b] + vibrato
            attack, decay = rng.uniform(0.01, 0.08), rng.uniform(0.5, 3.0)
            env = (1 - np.exp(-since / attack)) * np.exp(-since / decay)
            release = env[-1] * np.exp(-np.arange(length - b) / (DDSP_SR * 0.05))
            f0 = midi_to_hz(np.where(np.isnan(midi[a:]), midi[b - 1], midi[a:]))
            phase = 2 * np.pi * np.cumsum(f0) / DDSP_SR
            amps = k ** -rng.uniform(1.0, 2.5) * (k * f0[:, None] < DDSP_SR / 2)
            tone = (amps * np.sin(phase[:, None] * k)).sum(axis=1) / amps[0].sum()
            audio[i, a:] += rng.uniform(0.1, 0.5) * np.concatenate([env, release]) * tone
        held = ~np.isnan(midi)
        # hold the last note's f0 through rests, the first note's before it
        idx = np.maximum.accumulate(np.where(held, np.arange(length), 0))
        idx[: np.argmax(held)] = np.argmax(held)
        f0_frames[i] = midi_to_hz(midi[idx])[centres]
        voiced[i] = held[centres]
    audio += 10 ** (-30 / 20) * 0.1 * rng.standard_normal(audio.shape)
    return ddsp_example(f0_frames, audio, voiced)


def _notes(rng: np.random.Generator, length: int) -> list[tuple[int, int]]:
    """(start, stop) samples of a phrase's notes: 0.25-0.8 s each, legato or after a
    0.05-0.3 s rest, the first within 0.2 s of the start."""
    notes, pos = [], int(rng.uniform(0, 0.2) * DDSP_SR)
    while pos < length - DDSP_HOP:
        stop = min(length, pos + int(rng.uniform(0.25, 0.8) * DDSP_SR))
        notes.append((pos, stop))
        pos = stop + (int(rng.uniform(0.05, 0.3) * DDSP_SR) if rng.random() < 0.5 else 0)
    return notes

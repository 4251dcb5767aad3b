"""Synthetic chord data: CQT patches of voiced major / minor triads in five timbres."""

from __future__ import annotations

import numpy as np
import torch

from .audio import (
    CHUNK,
    Seed,
    attack_decay,
    balanced_labels,
    db_gain,
    midi_to_hz,
    play,
    rms_normalize,
    shaped_noise,
    triad,
    wavetables,
)
from .features import CHORD_HOP, CHORD_SEGMENT, CHORD_SR, MIRData, chord_features, chord_patches
from .models import TASKS

__all__ = ["chords"]

_TIMBRES: dict[str, dict[str, tuple[float, float]]] = {
    "organ": {"slope": (1.0, 2.0), "attack": (0.01, 0.05), "decay": (5.0, 20.0)},
    "piano": {"slope": (1.0, 1.6), "attack": (0.002, 0.01), "decay": (0.4, 1.5)},
    "pluck": {"slope": (0.8, 1.3), "attack": (0.002, 0.01), "decay": (0.15, 0.6)},
    "pad": {"slope": (1.5, 2.5), "attack": (0.1, 0.3), "decay": (5.0, 20.0)},
    "brass": {"slope": (0.7, 1.1), "attack": (0.02, 0.06), "decay": (2.0, 8.0)},
}
_MAX_VOICES = 7


def _chord_notes(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """MIDI notes (n, 7) of each segment's voicing; NaN marks an unused voice.

    Major/minor triads in a random inversion, optional doubled root, bass note, seventh and a
    melody note (a chord tone or a diatonic passing tone). No-chord segments (label 24) get a
    monophonic line or nothing (noise and bursts are added later).
    """
    n = len(labels)
    notes = np.full((n, _MAX_VOICES), np.nan)
    for i, lab in enumerate(labels):
        if lab == 24:
            if rng.random() < 0.35:
                notes[i, 0] = rng.integers(48, 80)
            continue
        base, tones, third = triad(rng, int(lab), 5)  # the root's octave, MIDI 36..59 + root
        voice = [base + x for x in tones]
        if rng.random() < 0.5:
            voice.append(base + 12)
        if rng.random() < 0.6:
            voice.append(base + tones[0] - 12)
        if rng.random() < 0.25:
            voice.append(base + (11 if third == 4 and rng.random() < 0.5 else 10))
        if rng.random() < 0.5:
            pool = [0, third, 7] if rng.random() < 0.7 else [2, 5, 9]
            voice.append(base + 24 + pool[rng.integers(len(pool))])
        voice = voice[:_MAX_VOICES]
        notes[i, : len(voice)] = voice
    return notes


def chords(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """CQT patches (105 x 15) of synthetic chords, 25 classes (12 maj, 12 min, N = 24).

    Segments of 21 frames (0.98 s) are rendered at 11025 Hz with one of five timbres (organ,
    piano, pluck, pad, brass), random voicings and inversions, strummed onsets, re-strikes,
    noise and drum-like bursts, then concatenated so that one CQT covers them all (neighbours
    bleed into the low bins, as in real music). The 15 central frames of each segment form the
    input. ``size`` does not change the data.
    """
    TASKS["chord"].size(size)
    rng = np.random.default_rng(seed)
    sr = CHORD_SR
    labels = balanced_labels(rng, n, 25)
    notes = _chord_notes(rng, labels)
    seg_len = CHORD_SEGMENT * CHORD_HOP
    t = np.arange(seg_len) / sr
    timbre_names = list(_TIMBRES)
    timbre = rng.integers(0, len(timbre_names), n)
    tp = {
        key: np.array([_TIMBRES[timbre_names[j]][key] for j in timbre]) for key in _TIMBRES["organ"]
    }
    u = rng.random((n, 3))
    slope = tp["slope"][:, 0] + u[:, 0] * (tp["slope"][:, 1] - tp["slope"][:, 0])
    attack = np.exp(
        np.log(tp["attack"][:, 0]) + u[:, 1] * np.log(tp["attack"][:, 1] / tp["attack"][:, 0])
    )
    decay = np.exp(
        np.log(tp["decay"][:, 0]) + u[:, 2] * np.log(tp["decay"][:, 1] / tp["decay"][:, 0])
    )
    strike = rng.uniform(0.0, 0.1, n)
    restrike = np.where(rng.random(n) < 0.5, rng.uniform(0.3, 0.6, n), np.inf)
    strum = rng.uniform(0.0, 0.04, (n, _MAX_VOICES)) * (timbre[:, None] != 0)
    detune = rng.normal(0.0, 6.0, (n, _MAX_VOICES))
    voice_gain = rng.uniform(0.5, 1.0, (n, _MAX_VOICES))
    n_harm = 10
    phases = rng.uniform(0, 2 * np.pi, (n, _MAX_VOICES, n_harm))
    audio = np.zeros((n, seg_len))
    for i in range(0, n, CHUNK):
        s = slice(i, min(n, i + CHUNK))
        m = s.stop - s.start
        acc = np.zeros((m, seg_len))
        for v in range(_MAX_VOICES):
            midi = notes[s, v]
            active = ~np.isnan(midi)
            if not active.any():
                continue
            f0 = midi_to_hz(np.where(active, midi, 60.0) + detune[s, v] / 100.0)
            k = np.arange(1, n_harm + 1)
            amps = (k * f0[:, None] < 0.45 * sr) * k ** -slope[s, None]
            tables = wavetables(amps[:, None, :], phases[s, v][:, None, :])
            tone = play(tables, f0[:, None] * t[None, :])
            env = np.zeros((m, seg_len))
            for onset in (strike[s], restrike[s]):
                ts = t[None, :] - (onset + strum[s, v])[:, None]
                env = np.maximum(env, attack_decay(ts, attack[s, None], decay[s, None]))
            acc += (active * voice_gain[s, v])[:, None] * tone * env
        audio[s] = acc
    # noise bed and drum-like bursts on every segment; no-chord segments may be noise only
    bursts = np.zeros((n, seg_len))
    n_bursts = rng.integers(0, 4, n)
    for i in range(n):
        for b_t in rng.uniform(0, seg_len / sr, n_bursts[i]):
            idx = int(b_t * sr)
            length = min(seg_len - idx, int(0.15 * sr))
            bursts[i, idx : idx + length] += rng.standard_normal(length) * np.exp(
                -np.arange(length) / (0.03 * sr)
            )
    silent = ~np.any(~np.isnan(notes), axis=1)
    tonal = np.where(silent[:, None], 0.0, rms_normalize(audio))
    noise = shaped_noise(
        rng, n, seg_len, sr, np.exp(rng.uniform(np.log(200), np.log(4000), n)), np.full(n, 2.0)
    )
    noise_gain = np.where(silent, rng.uniform(0.05, 1.0, n), 10 ** (-rng.uniform(15, 35, n) / 20))
    burst_gain = rng.uniform(0.0, 0.5, n)
    mix = tonal + noise_gain[:, None] * noise + burst_gain[:, None] * bursts
    mix = mix * (0.1 * db_gain(rng, -15, n))[:, None]
    patches = chord_patches(chord_features(mix.reshape(-1), sr), n)
    meta = {"timbre": [timbre_names[j] for j in timbre], "sample_rate": sr}
    return MIRData(patches, torch.from_numpy(labels), meta)

"""Synthetic instrument and singing data: tones drawn from per-class parameter ranges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .audio import (
    CHUNK,
    Seed,
    add_noise,
    attack_decay,
    balanced_labels,
    db_gain,
    midi_to_hz,
    play,
    rms_normalize,
    shaped_noise,
    smooth_noise,
    wavetables,
)
from .features import MIRData
from .models import INSTRUMENTS, TASKS, TECHNIQUES

__all__ = ["instrument", "singing"]

# Parameter ranges shared by every tonal class; prototypes below override some of them.
# midi: pitch range; n_notes: notes per excerpt; slope: harmonic roll-off k**-slope;
# even: gain of even harmonics; f1/f2 (Hz), fbw (octaves), fgain: two resonances;
# vib_*: vibrato (Hz, cents); trill: alternation (semitones) at trill_rate; glide: cents over
# the excerpt; jitter: random pitch wander (cents); shimmer: random amplitude wander;
# am_*: periodic amplitude modulation; attack/decay: per-note envelope (s); noise: share of
# shaped noise, centred at noise_fc (Hz) with width noise_bw (octaves); snr: background (dB).
_TONE_DEFAULTS: dict[str, tuple[float, float]] = {
    "midi": (48.0, 72.0),
    "n_notes": (1.0, 3.999),
    "slope": (0.8, 1.6),
    "even": (0.7, 1.0),
    "f1": (300.0, 800.0),
    "f2": (1000.0, 2500.0),
    "fbw": (0.3, 0.6),
    "fgain": (0.5, 3.0),
    "vib_rate": (4.5, 6.5),
    "vib_depth": (0.0, 10.0),
    "trill": (0.0, 0.0),
    "trill_rate": (5.0, 8.0),
    "glide": (-20.0, 20.0),
    "jitter": (0.0, 5.0),
    "shimmer": (0.0, 0.05),
    "am_rate": (3.0, 6.0),
    "am_depth": (0.0, 0.0),
    "attack": (0.01, 0.08),
    "decay": (2.0, 10.0),
    "noise": (0.01, 0.06),
    "noise_fc": (1000.0, 5000.0),
    "noise_bw": (1.0, 2.0),
    "snr": (20.0, 45.0),
}
_LOG_PARAMS = frozenset({"f1", "f2", "noise_fc", "attack", "decay", "vib_rate", "am_rate"})

_INSTRUMENT_PROTOTYPES: dict[str, dict[str, tuple[float, float]]] = {
    "violin": {
        "midi": (55, 93), "slope": (0.8, 1.3), "f1": (250, 450), "f2": (2500, 3500),
        "vib_depth": (10, 35), "noise": (0.03, 0.1), "noise_fc": (2000, 6000),
        "attack": (0.03, 0.12),
    },
    "viola": {
        "midi": (48, 84), "slope": (1.0, 1.5), "f1": (300, 500), "f2": (1600, 2500),
        "vib_depth": (10, 30), "noise": (0.03, 0.08), "attack": (0.03, 0.12),
    },
    "cello": {
        "midi": (36, 76), "slope": (1.0, 1.6), "f1": (180, 300), "f2": (900, 1500),
        "vib_depth": (10, 30), "noise": (0.02, 0.08), "attack": (0.04, 0.15),
    },
    "double_bass": {
        "midi": (28, 60), "slope": (1.3, 2.0), "f1": (100, 200), "f2": (600, 1000),
        "vib_depth": (0, 20), "noise": (0.02, 0.06), "attack": (0.05, 0.2),
    },
    "flute": {
        "midi": (60, 96), "slope": (2.0, 3.0), "even": (0.8, 1.0), "vib_depth": (5, 20),
        "noise": (0.1, 0.3), "noise_fc": (1000, 4000), "attack": (0.04, 0.1),
    },
    "oboe": {
        "midi": (58, 91), "slope": (0.5, 1.0), "f1": (900, 1500), "fgain": (3.0, 6.0),
        "vib_depth": (5, 15), "attack": (0.02, 0.06),
    },
    "clarinet": {
        "midi": (50, 89), "slope": (1.0, 1.8), "even": (0.05, 0.3), "vib_depth": (0, 5),
        "attack": (0.02, 0.06),
    },
    "saxophone": {
        "midi": (49, 81), "slope": (0.6, 1.1), "f1": (500, 800), "f2": (1500, 2500),
        "vib_depth": (10, 30), "noise": (0.02, 0.08), "attack": (0.02, 0.06),
    },
    "bassoon": {
        "midi": (34, 75), "slope": (1.0, 1.6), "f1": (400, 550), "f2": (1000, 1300),
        "fgain": (2.0, 5.0), "vib_depth": (0, 15), "attack": (0.02, 0.07),
    },
    "trumpet": {
        "midi": (54, 84), "slope": (0.5, 0.9), "f1": (1000, 1500), "f2": (2500, 3000),
        "vib_depth": (0, 12), "attack": (0.01, 0.04),
    },
    "horn": {
        "midi": (41, 77), "slope": (1.5, 2.3), "f1": (300, 500), "vib_depth": (0, 10),
        "attack": (0.03, 0.08),
    },
    "trombone": {
        "midi": (40, 72), "slope": (0.8, 1.3), "f1": (500, 700), "f2": (1100, 1500),
        "glide": (-60, 60), "vib_depth": (0, 12), "attack": (0.02, 0.06),
    },
    "tuba": {
        "midi": (28, 58), "slope": (1.6, 2.4), "f1": (200, 300), "vib_depth": (0, 10),
        "attack": (0.04, 0.1),
    },
}  # fmt: skip

# Voice: every technique shares random vowel formants, so timbre alone does not give the class.
_VOICE_BASE: dict[str, tuple[float, float]] = {
    "midi": (45, 79), "f1": (300, 850), "f2": (850, 2400), "fbw": (0.2, 0.4),
    "fgain": (2.0, 6.0), "noise_fc": (1500, 5000),
}  # fmt: skip
_SINGING_PROTOTYPES: dict[str, dict[str, tuple[float, float]]] = {
    "belt": {"slope": (0.4, 0.8), "vib_depth": (0, 20), "noise": (0.01, 0.04)},
    "breathy": {"slope": (1.5, 2.5), "noise": (0.3, 0.6), "vib_depth": (0, 15)},
    "inhaled": {
        "slope": (1.8, 2.8), "noise": (0.5, 0.8), "jitter": (20, 60), "glide": (50, 300),
        "shimmer": (0.1, 0.3),
    },
    "lip_trill": {
        "slope": (1.5, 2.2), "am_rate": (18, 30), "am_depth": (0.6, 0.95),
        "glide": (-300, 300), "noise": (0.05, 0.15),
    },
    "spoken": {
        "midi": (45, 65), "n_notes": (3, 3.999), "glide": (-400, -100), "am_rate": (3, 5),
        "am_depth": (0.5, 0.9), "jitter": (15, 40), "noise": (0.05, 0.2),
    },
    "straight": {"slope": (0.9, 1.4), "vib_depth": (0, 5)},
    "trill": {"trill": (1.0, 2.0), "trill_rate": (5, 8), "vib_depth": (0, 5)},
    "trillo": {"am_rate": (5, 8), "am_depth": (0.6, 0.95), "vib_depth": (0, 10)},
    "vibrato": {"vib_depth": (40, 100), "vib_rate": (5, 7)},
    "vocal_fry": {
        "midi": (30, 45), "slope": (0.7, 1.2), "jitter": (30, 80), "shimmer": (0.3, 0.6),
        "noise": (0.05, 0.15),
    },
}  # fmt: skip


def _sample_params(
    rng: np.random.Generator,
    labels: np.ndarray,
    prototypes: Sequence[Mapping[str, tuple[float, float]]],
) -> dict[str, np.ndarray]:
    """Draw every tone parameter per example, uniformly (or log-uniformly) within its class."""
    params: dict[str, np.ndarray] = {}
    for name, default in _TONE_DEFAULTS.items():
        ranges = np.array([proto.get(name, default) for proto in prototypes], dtype=np.float64)
        lo, hi = ranges[labels, 0], ranges[labels, 1]
        u = rng.random(len(labels))
        if name in _LOG_PARAMS:
            params[name] = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        else:
            params[name] = lo + u * (hi - lo)
    return params


def _render_tones(
    rng: np.random.Generator, p: Mapping[str, np.ndarray], sr: int, n_samples: int
) -> np.ndarray:
    """Render one excerpt per row of the parameter table (see ``_TONE_DEFAULTS``)."""
    n = len(p["midi"])
    t = np.arange(n_samples) / sr
    dur = n_samples / sr
    # note sequence: up to three notes, later notes step away from the first by <= a fifth
    n_notes = np.floor(p["n_notes"]).astype(int)
    bounds = np.sort(rng.uniform(0.15, 0.85, (n, 2)) * dur, axis=1)
    bounds = np.where(np.arange(2)[None, :] < (n_notes - 1)[:, None], bounds, np.inf)
    start0 = rng.uniform(0.0, 0.08, n) * dur
    steps = rng.integers(-7, 8, (n, 2))
    midi_notes = np.concatenate([p["midi"][:, None], p["midi"][:, None] + np.cumsum(steps, 1)], 1)
    midi_notes = np.round(midi_notes)
    starts = np.concatenate([start0[:, None], bounds], axis=1)
    vib_phase = rng.uniform(0, 2 * np.pi, n)
    am_phase = rng.uniform(0, 2 * np.pi, n)
    trill_phase = rng.uniform(0, 2 * np.pi, n)
    n_harm = 40
    phases = rng.uniform(0, 2 * np.pi, (n, n_harm))
    out = np.empty((n, n_samples), dtype=np.float32)
    for i in range(0, n, CHUNK):
        s = slice(i, min(n, i + CHUNK))
        m = s.stop - s.start
        q = {k: v[s, None] for k, v in p.items()}
        note_idx = (t[None, None, :] >= bounds[s, :, None]).sum(axis=1)
        t_since = t[None, :] - np.take_along_axis(starts[s], note_idx, axis=1)
        midi = np.take_along_axis(midi_notes[s], note_idx, axis=1)
        cents = q["glide"] * (t[None, :] / dur - 0.5)
        cents = cents + q["vib_depth"] * np.sin(2 * np.pi * q["vib_rate"] * t + vib_phase[s, None])
        trill = 0.5 * (
            1 + np.tanh(3 * np.sin(2 * np.pi * q["trill_rate"] * t + trill_phase[s, None]))
        )
        cents = cents + 100.0 * q["trill"] * trill
        cents = cents + q["jitter"] * smooth_noise(rng, m, n_samples, sr, 15.0)
        f_track = midi_to_hz(midi + cents / 100.0)
        cycles = np.cumsum(f_track, axis=1) / sr
        f_notes = midi_to_hz(midi_notes[s])  # (m, 3): tables are built per nominal note
        k = np.arange(1, n_harm + 1)
        fk = k * f_notes[..., None]  # (m, 3, K)
        amps = k ** -q["slope"][..., None] * np.where(k % 2 == 0, q["even"][..., None], 1.0)
        gain = 1.0
        for fc in ("f1", "f2"):
            d = np.log2(fk / q[fc][..., None]) / q["fbw"][..., None]
            gain = gain + q["fgain"][..., None] * np.exp(-0.5 * d**2)
        # keep partials below Nyquist even at the top of a trill or vibrato
        amps = amps * gain * (fk * 1.3 < 0.5 * sr)
        tables = wavetables(amps, np.broadcast_to(phases[s, None, :], amps.shape))
        harm = play(tables, cycles, note_idx)
        env = attack_decay(t_since, q["attack"], q["decay"])
        am = 1.0 - q["am_depth"] * (
            0.5 + 0.5 * np.sin(2 * np.pi * q["am_rate"] * t + am_phase[s, None])
        )
        shimmer = np.clip(1.0 + q["shimmer"] * smooth_noise(rng, m, n_samples, sr, 40.0), 0, None)
        env = env * am * shimmer
        noise = shaped_noise(rng, m, n_samples, sr, p["noise_fc"][s], p["noise_bw"][s])
        mix = np.sqrt(1 - q["noise"]) * rms_normalize(harm * env)
        mix = mix + np.sqrt(q["noise"]) * rms_normalize(noise * env)
        mix = add_noise(rng, rms_normalize(mix), p["snr"][s, None])
        level = db_gain(rng, -20.0, m)
        out[s] = (0.1 * level[:, None] * mix).astype(np.float32)
    return out


def _tonal_classes(
    task: str,
    names: tuple[str, ...],
    prototypes: Mapping[str, Mapping[str, tuple[float, float]]],
    base: Mapping[str, tuple[float, float]],
    n: int,
    seed: Seed,
    size: str,
) -> MIRData:
    """Shared body of the instrument and singing generators."""
    spec = TASKS[task].size(size)
    rng = np.random.default_rng(seed)
    labels = balanced_labels(rng, n, len(names))
    protos = [{**base, **prototypes[name]} for name in names]
    params = _sample_params(rng, labels, protos)
    audio = _render_tones(rng, params, spec.sample_rate, spec.input_shape[-1])
    first_note_hz = midi_to_hz(np.round(params["midi"]))
    meta = {"sample_rate": spec.sample_rate, "labels": names, "f0_hz": first_note_hz}
    return MIRData(torch.from_numpy(audio[:, None, :]), torch.from_numpy(labels), meta)


def instrument(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """Excerpts of 13 synthetic orchestral timbres (URMP's instruments), labels 0..12.

    Classes differ by pitch range, harmonic roll-off, odd/even balance, body resonances,
    vibrato, attack and breath/bow noise; ranges overlap so no single cue separates them.
    Length and rate follow the size: 1.5 s at 22.05 kHz (paper, quick) or 8192 samples at
    8 kHz (tiny).
    """
    return _tonal_classes("instrument", INSTRUMENTS, _INSTRUMENT_PROTOTYPES, {}, n, seed, size)


def singing(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """Excerpts of 10 synthetic singing techniques (VocalSet's classes), labels 0..9.

    All techniques share random vowel formants and pitch ranges; they differ by vibrato,
    trills, amplitude modulation (lip trill, trillo, speech syllables), breath noise, pitch
    jitter (vocal fry, inhaled) and brightness. 3 s at 44.1 kHz (paper), 1.5 s at 22.05 kHz
    (quick) or 8192 samples at 8 kHz (tiny).
    """
    return _tonal_classes("singing", TECHNIQUES, _SINGING_PROTOTYPES, _VOICE_BASE, n, seed, size)

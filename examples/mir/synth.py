"""Seeded synthetic stand-ins for the paper's datasets, for offline experiments and CI.

Every generator is deterministic for a given seed (``np.random.default_rng``), vectorised over
examples with numpy, and returns a :class:`~examples.mir.features.MIRData` that unpacks as
``(inputs, targets)`` ready for the model of the same task in :mod:`examples.mir.models`.
The data are deliberately not trivial: classes overlap, sounds are noisy, pitches vary, and
several sources play at once, so that model capacity and trimming actually matter.

``make_dataset(task, n, seed, size)`` builds independent train / validation / test splits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from scipy.signal import fftconvolve

from .features import (
    CHORD_FRAMES,
    CHORD_HOP,
    CHORD_SR,
    CREPE_FRAME,
    CREPE_SR,
    DRUM_CONTEXT,
    DRUM_HOP,
    DRUM_SR,
    PITCH_CENTS,
    MIRData,
    Splits,
    cents_to_hz,
    chord_features,
    drum_features,
    drum_windows,
    merge_onsets,
    normalize_frames,
    pitch_target,
)
from .models import INSTRUMENTS, TASKS, TECHNIQUES

__all__ = [
    "GENERATORS",
    "chords",
    "drums",
    "instrument",
    "make_dataset",
    "onsets",
    "pitch",
    "singing",
]

Seed = int | np.random.SeedSequence
_CHUNK = 16  # examples rendered at once; keeps temporaries small and cache-friendly


def _midi_to_hz(midi: np.ndarray) -> np.ndarray:
    """MIDI note number (possibly fractional) to Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """``n`` labels with every class as equally frequent as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes)


def _smooth_noise(
    rng: np.random.Generator, n: int, n_samples: int, sr: int, rate: float
) -> np.ndarray:
    """Unit-variance random curves changing about ``rate`` times per second (linear interp)."""
    m = int(np.ceil(n_samples / sr * rate)) + 2
    ctrl = rng.standard_normal((n, m))
    pos = np.arange(n_samples) / sr * rate
    i0 = np.floor(pos).astype(int)
    frac = pos - i0
    return ctrl[:, i0] * (1.0 - frac) + ctrl[:, i0 + 1] * frac


def _shaped_noise(
    rng: np.random.Generator,
    n: int,
    n_samples: int,
    sr: int,
    centre: np.ndarray,
    width_oct: np.ndarray,
    floor: float = 0.05,
) -> np.ndarray:
    """White noise band-passed by a log-frequency Gaussian (centre Hz, width in octaves)."""
    spec = np.fft.rfft(rng.standard_normal((n, n_samples)), axis=1)
    freqs = np.fft.rfftfreq(n_samples, 1.0 / sr)
    freqs[0] = freqs[1]
    d = np.log2(freqs[None, :] / centre[:, None]) / width_oct[:, None]
    noise = np.fft.irfft(spec * (np.exp(-0.5 * d**2) + floor), n=n_samples, axis=1)
    return noise / (noise.std(axis=1, keepdims=True) + 1e-12)


_TABLE = 2048  # samples per period of a wavetable


def _wavetables(amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period of ``sum_k amps[..., k] * sin(2 pi (k + 1) x + phases[..., k])`` per row.

    Rendering a harmonic tone by reading a per-note table is as exact as summing sines (the
    partials are periodic in the fundamental's phase) and costs the same for any number of
    harmonics, which keeps long excerpts fast.
    """
    n_harm = amps.shape[-1]
    x = 2 * np.pi * np.outer(np.arange(1, n_harm + 1), np.arange(_TABLE) / _TABLE)
    return (amps * np.cos(phases)) @ np.sin(x) + (amps * np.sin(phases)) @ np.cos(x)


def _play(tables: np.ndarray, cycles: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
    """Read ``tables`` (m, notes, TABLE) at fundamental phase ``cycles`` (m, L), in periods.

    ``which`` (m, L) picks the note table per sample (default: the first); linear interpolation.
    """
    m, n_tables, _ = tables.shape
    pos = (cycles % 1.0) * _TABLE
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    i1 = (i0 + 1) % _TABLE
    row = np.arange(m)[:, None] * n_tables
    base = (row if which is None else row + which) * _TABLE
    flat = tables.reshape(-1)
    v0 = flat[base + i0]
    return v0 + frac * (flat[base + i1] - v0)


def _rms_normalize(x: np.ndarray) -> np.ndarray:
    """Scale every row to unit RMS (silent rows stay silent)."""
    return x / (np.sqrt(np.mean(x**2, axis=1, keepdims=True)) + 1e-12)


def _add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: np.ndarray) -> np.ndarray:
    """Add white noise to unit-RMS rows at the given signal-to-noise ratios (dB)."""
    noise = rng.standard_normal(x.shape) * 10.0 ** (-snr_db[:, None] / 20.0)
    return x + noise


# ============================================================================== pitch (CREPE)


def pitch(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """Single 1024-sample frames at 16 kHz of harmonic tones, with CREPE-style soft targets.

    Each frame has a random f0 (log-uniform over the 360-bin range), a random spectral
    envelope (slope, odd/even balance, two formant-like bumps, sometimes a weak fundamental),
    piano-like inharmonicity for half of the tones, slight vibrato and glide, an occasional
    note onset inside the frame, coloured noise at 0-30 dB SNR and a random level above a
    fixed noise floor. Frames are normalised per frame as CREPE expects. ``meta["f0_hz"]`` is
    the f0 at the frame centre, for :func:`examples.mir.metrics.pitch_error`. ``size`` does not
    change the data (CREPE always reads 1024-sample frames).
    """
    TASKS["pitch"].size(size)
    rng = np.random.default_rng(seed)
    sr, length = CREPE_SR, CREPE_FRAME
    lo_c, hi_c = PITCH_CENTS[0] + 20.0, PITCH_CENTS[-1] - 100.0
    f0 = cents_to_hz(rng.uniform(lo_c, hi_c, n))
    slope = rng.uniform(0.3, 2.2, n)
    even = np.where(rng.random(n) < 0.3, rng.uniform(0.05, 0.6, n), 1.0)
    weak_fund = np.where(rng.random(n) < 0.15, rng.uniform(0.0, 0.3, n), 1.0)
    form_c = np.exp(rng.uniform(np.log(250.0), np.log(5000.0), (n, 2)))
    form_w = rng.uniform(0.2, 0.8, (n, 2))
    form_g = rng.uniform(0.0, 6.0, (n, 2))
    inharm = np.where(rng.random(n) < 0.5, np.exp(rng.uniform(np.log(1e-5), np.log(4e-4), n)), 0)
    vib_depth = rng.uniform(0.0, 30.0, n)
    vib_rate = rng.uniform(4.0, 7.0, n)
    vib_phase = rng.uniform(0, 2 * np.pi, n)
    glide = rng.uniform(-25.0, 25.0, n)
    onset_at = np.where(rng.random(n) < 0.2, rng.uniform(0.0, 0.4, n), -1.0) * length / sr
    decay = np.exp(rng.uniform(np.log(0.05), np.log(3.0), n))
    snr = rng.uniform(0.0, 30.0, n)
    noise_tilt = rng.uniform(0.0, 1.5, n)
    level_db = rng.uniform(-50.0, 0.0, n)
    n_harm = 48
    phases = rng.uniform(0, 2 * np.pi, (n, n_harm))

    t = np.arange(length) / sr
    centre = t[length // 2]
    out = np.empty((n, length))
    for i in range(0, n, _CHUNK):
        s = slice(i, min(n, i + _CHUNK))
        m = s.stop - s.start
        dev = vib_depth[s, None] * np.sin(2 * np.pi * vib_rate[s, None] * t + vib_phase[s, None])
        dev = dev + glide[s, None] * (t - centre) / t[-1]
        f_track = f0[s, None] * 2.0 ** (dev / 1200.0)
        cycles = np.cumsum(f_track, axis=1) / sr
        acc = np.zeros((m, length))
        for k in range(1, n_harm + 1):
            stretch = k * np.sqrt(1.0 + inharm[s] * k * k)
            fk = stretch * f0[s]
            amp = k ** -slope[s] * (even[s] if k % 2 == 0 else 1.0)
            if k == 1:
                amp = amp * weak_fund[s]
            d = np.log2(fk[:, None] / form_c[s]) / form_w[s]
            amp = amp * (1.0 + np.sum(form_g[s] * np.exp(-0.5 * d**2), axis=1))
            amp = np.where(fk * 1.05 < sr / 2, amp, 0.0)  # vibrato and glide stay below Nyquist
            if not amp.any():
                break
            acc += amp[:, None] * np.sin(
                2 * np.pi * stretch[:, None] * cycles + phases[s, k - 1 : k]
            )
        ts = t[None, :] - np.maximum(onset_at[s, None], 0.0)
        env = np.where(ts >= 0, (1.0 - np.exp(-np.maximum(ts, 0) / 0.005)), 0.0)
        env = env * np.exp(-np.maximum(ts, 0) / decay[s, None])
        acc = _rms_normalize(acc * env)
        white = np.fft.rfft(rng.standard_normal((m, length)), axis=1)
        freqs = np.maximum(np.fft.rfftfreq(length, 1.0 / sr), 20.0)
        noise = np.fft.irfft(white * freqs[None, :] ** (-noise_tilt[s, None] / 2), n=length)
        noise = _rms_normalize(noise) * 10.0 ** (-snr[s, None] / 20.0)
        sig = (acc + noise) * 10.0 ** (level_db[s, None] / 20.0)
        out[s] = sig + 1e-4 * rng.standard_normal((m, length))
    frames = normalize_frames(out).astype(np.float32)
    # the f0 at the frame centre, where vibrato and glide are evaluated
    dev_c = vib_depth * np.sin(2 * np.pi * vib_rate * centre + vib_phase)
    f0_centre = f0 * 2.0 ** (dev_c / 1200.0)
    return MIRData(
        torch.from_numpy(frames[:, None, :]),
        pitch_target(f0_centre),
        {"f0_hz": f0_centre, "sample_rate": sr},
    )


# ============================================================== instrument and singing voice

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
    prototypes: list[Mapping[str, tuple[float, float]]],
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
    for i in range(0, n, _CHUNK):
        s = slice(i, min(n, i + _CHUNK))
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
        cents = cents + q["jitter"] * _smooth_noise(rng, m, n_samples, sr, 15.0)
        f_track = _midi_to_hz(midi + cents / 100.0)
        cycles = np.cumsum(f_track, axis=1) / sr
        f_notes = _midi_to_hz(midi_notes[s])  # (m, 3): tables are built per nominal note
        k = np.arange(1, n_harm + 1)
        fk = k * f_notes[..., None]  # (m, 3, K)
        amps = k ** -q["slope"][..., None] * np.where(k % 2 == 0, q["even"][..., None], 1.0)
        gain = 1.0
        for fc in ("f1", "f2"):
            d = np.log2(fk / q[fc][..., None]) / q["fbw"][..., None]
            gain = gain + q["fgain"][..., None] * np.exp(-0.5 * d**2)
        # keep partials below Nyquist even at the top of a trill or vibrato
        amps = amps * gain * (fk * 1.3 < 0.5 * sr)
        tables = _wavetables(amps, np.broadcast_to(phases[s, None, :], amps.shape))
        harm = _play(tables, cycles, note_idx)
        ts = np.maximum(t_since, 0.0)
        env = (t_since >= 0) * (1.0 - np.exp(-ts / q["attack"])) * np.exp(-ts / q["decay"])
        am = 1.0 - q["am_depth"] * (
            0.5 + 0.5 * np.sin(2 * np.pi * q["am_rate"] * t + am_phase[s, None])
        )
        shimmer = np.clip(1.0 + q["shimmer"] * _smooth_noise(rng, m, n_samples, sr, 40.0), 0, None)
        env = env * am * shimmer
        noise = _shaped_noise(rng, m, n_samples, sr, p["noise_fc"][s], p["noise_bw"][s])
        mix = np.sqrt(1 - q["noise"]) * _rms_normalize(harm * env)
        mix = mix + np.sqrt(q["noise"]) * _rms_normalize(noise * env)
        mix = _add_noise(rng, _rms_normalize(mix), p["snr"][s])
        level = 10.0 ** (rng.uniform(-20.0, 0.0, m) / 20.0)
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
    labels = _balanced_labels(rng, n, len(names))
    protos = [{**base, **prototypes[name]} for name in names]
    params = _sample_params(rng, labels, protos)
    audio = _render_tones(rng, params, spec.sample_rate, spec.input_shape[-1])
    first_note_hz = _midi_to_hz(np.round(params["midi"]))
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


# ==================================================================================== chords

_CHORD_MARGIN = 3  # extra frames rendered on each side of the 15-frame window
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
        root = lab % 12
        third = 3 if lab >= 12 else 4
        tones = [0, third, 7]
        inv = rng.integers(0, 3)
        tones = tones[inv:] + [x + 12 for x in tones[:inv]]
        base = 12 * rng.integers(3, 5) + root  # the root's octave, MIDI 36..59 + root
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
    labels = _balanced_labels(rng, n, 25)
    notes = _chord_notes(rng, labels)
    seg_frames = CHORD_FRAMES + 2 * _CHORD_MARGIN
    seg_len = seg_frames * CHORD_HOP
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
    for i in range(0, n, _CHUNK):
        s = slice(i, min(n, i + _CHUNK))
        m = s.stop - s.start
        acc = np.zeros((m, seg_len))
        for v in range(_MAX_VOICES):
            midi = notes[s, v]
            active = ~np.isnan(midi)
            if not active.any():
                continue
            f0 = _midi_to_hz(np.where(active, midi, 60.0) + detune[s, v] / 100.0)
            k = np.arange(1, n_harm + 1)
            amps = (k * f0[:, None] < 0.45 * sr) * k ** -slope[s, None]
            tables = _wavetables(amps[:, None, :], phases[s, v][:, None, :])
            tone = _play(tables, f0[:, None] * t[None, :])
            env = np.zeros((m, seg_len))
            for onset in (strike[s], restrike[s]):
                ts = t[None, :] - (onset + strum[s, v])[:, None]
                pos = np.maximum(ts, 0.0)
                e = (ts >= 0) * (1 - np.exp(-pos / attack[s, None])) * np.exp(-pos / decay[s, None])
                env = np.maximum(env, e)
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
    tonal = np.where(silent[:, None], 0.0, _rms_normalize(audio))
    noise = _shaped_noise(
        rng, n, seg_len, sr, np.exp(rng.uniform(np.log(200), np.log(4000), n)), np.full(n, 2.0)
    )
    noise_gain = np.where(silent, rng.uniform(0.05, 1.0, n), 10 ** (-rng.uniform(15, 35, n) / 20))
    burst_gain = rng.uniform(0.0, 0.5, n)
    mix = tonal + noise_gain[:, None] * noise + burst_gain[:, None] * bursts
    mix = mix * (0.1 * 10 ** (rng.uniform(-15, 0, n) / 20))[:, None]
    cqt = chord_features(mix.reshape(-1), sr)
    first = np.arange(n) * seg_frames + _CHORD_MARGIN
    idx = first[:, None] + np.arange(CHORD_FRAMES)[None, :]
    patches = np.ascontiguousarray(cqt[:, idx].transpose(1, 0, 2))
    meta = {"timbre": [timbre_names[j] for j in timbre], "sample_rate": sr}
    return MIRData(
        torch.from_numpy(patches[:, None].astype(np.float32)),
        torch.from_numpy(labels),
        meta,
    )


# ================================================================================== drums

_KICK_BAR = np.array(
    [0.9, 0.0, 0.15, 0.1, 0.2, 0.0, 0.3, 0.1, 0.7, 0.0, 0.3, 0.1, 0.2, 0.1, 0.2, 0.1]
)


def _drum_kit(rng: np.random.Generator, n: int, sr: int) -> dict[str, np.ndarray]:
    """One randomised kit per clip: kick, snare, closed and open hi-hat samples (n, 0.6 s)."""
    length = int(0.6 * sr)
    t = np.arange(length) / sr
    # kick: exponentially falling sine sweep plus a short click
    f_hi = rng.uniform(80, 200, n)[:, None]
    f_lo = rng.uniform(40, 70, n)[:, None]
    sweep = rng.uniform(0.01, 0.06, n)[:, None]
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / sweep)
    body = np.sin(2 * np.pi * np.cumsum(freq, axis=1) / sr)
    body *= np.exp(-t / rng.uniform(0.08, 0.4, n)[:, None])
    click = rng.standard_normal((n, length)) * np.exp(-t / 0.003) * rng.uniform(0, 0.5, n)[:, None]
    kick = body + click
    # snare: two damped partials plus band-passed noise
    f_s = rng.uniform(150, 300, n)[:, None]
    tone = np.sin(2 * np.pi * f_s * t) + 0.5 * np.sin(2 * np.pi * 1.6 * f_s * t)
    tone *= np.exp(-t / rng.uniform(0.03, 0.12, n)[:, None])
    rattle = _shaped_noise(rng, n, length, sr, rng.uniform(1500, 5000, n), rng.uniform(1, 2.5, n))
    rattle *= np.exp(-t / rng.uniform(0.08, 0.3, n)[:, None])
    mix = rng.uniform(0.3, 0.8, n)[:, None]
    snare = (1 - mix) * tone + mix * rattle
    # hi-hats: high-passed noise plus a metallic cluster of square-ish partials
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523])
    base = rng.uniform(300, 500, n)[:, None, None]
    metal = np.tanh(4 * np.sin(2 * np.pi * base * ratios[None, :, None] * t[None, None, :]))
    metal = metal.sum(axis=1)
    hiss = _shaped_noise(rng, n, length, sr, rng.uniform(7000, 10000, n), rng.uniform(0.5, 1.2, n))
    metal_share = rng.uniform(0.0, 0.5, n)[:, None]
    spectrum = (1 - metal_share) * hiss + metal_share * _rms_normalize(
        np.diff(metal, axis=1, prepend=0.0)
    )
    closed = spectrum * np.exp(-t / rng.uniform(0.015, 0.06, n)[:, None])
    opened = spectrum * np.exp(-t / rng.uniform(0.15, 0.4, n)[:, None])
    return {"kick": kick, "snare": snare, "hh_closed": closed, "hh_open": opened}


def _drum_patterns(
    rng: np.random.Generator, n: int, duration: float
) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]], list[np.ndarray]]:
    """Per clip: hit times and velocities for kick, snare and hi-hat, and open-hat flags."""
    times: list[list[np.ndarray]] = []
    vels: list[list[np.ndarray]] = []
    open_flags: list[np.ndarray] = []
    for _ in range(n):
        step = 60.0 / rng.uniform(80, 170) / 4  # a sixteenth note
        offset = rng.uniform(0.0, 4 * step)
        n_steps = int(np.ceil((duration - offset) / step))
        pos = np.arange(n_steps) % 16
        bar = (np.arange(n_steps) // 16).astype(int)
        kick_bar = rng.random(16) < _KICK_BAR
        kick = kick_bar[pos] ^ (rng.random(n_steps) < 0.05)
        snare_steps = (4, 12) if rng.random() < 0.8 else (8,)
        snare = np.isin(pos, snare_steps) & (rng.random(n_steps) < 0.95)
        snare |= rng.random(n_steps) < 0.06
        mode = rng.integers(0, 3)
        hat_grid = {0: pos % 2 == 0, 1: np.ones(n_steps, bool), 2: pos % 4 == 0}[int(mode)]
        hat = hat_grid & (rng.random(n_steps) < 0.9)
        hat |= rng.random(n_steps) < 0.03
        if rng.random() < 0.2 and bar.max() > 0:  # a break: one bar without drums
            quiet = bar == rng.integers(0, bar.max() + 1)
            kick, snare, hat = kick & ~quiet, snare & ~quiet, hat & ~quiet
        grid = offset + np.arange(n_steps) * step
        clip_t, clip_v = [], []
        for hits in (kick, snare, hat):
            when = grid[hits] + rng.normal(0.0, 0.006, hits.sum())
            keep = (when >= 0.01) & (when < duration - 0.05)
            when = when[keep]
            accent = np.where(pos[hits][keep] % 4 == 0, 1.0, rng.uniform(0.15, 0.9, keep.sum()))
            clip_t.append(np.sort(when))
            clip_v.append(accent[np.argsort(when)])
        times.append(clip_t)
        vels.append(clip_v)
        open_flags.append(rng.random(len(clip_t[2])) < 0.15)
    return times, vels, open_flags


def _drum_clips(n: int, seed: Seed, size: str) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Render ``n`` drum clips; return mel features (n, 64, frames) and per-drum onset times."""
    TASKS["drum"].size(size)
    rng = np.random.default_rng(seed)
    sr = DRUM_SR
    duration = 2.0 if size == "tiny" else 4.0
    length = int(duration * sr)
    kit = _drum_kit(rng, n, sr)
    times, vels, open_flags = _drum_patterns(rng, n, duration)
    trains = {k: np.zeros((n, length)) for k in kit}
    for c in range(n):
        for name, d in (("kick", 0), ("snare", 1)):
            np.add.at(trains[name][c], (times[c][d] * sr).astype(int), vels[c][d])
        hat_idx = (times[c][2] * sr).astype(int)
        opened = open_flags[c]
        np.add.at(trains["hh_open"][c], hat_idx[opened], vels[c][2][opened])
        np.add.at(trains["hh_closed"][c], hat_idx[~opened], vels[c][2][~opened])
    gains = {
        "kick": rng.uniform(0.6, 1.0, n),
        "snare": rng.uniform(0.4, 1.0, n),
        "hh_closed": rng.uniform(0.1, 0.5, n),
    }
    gains["hh_open"] = gains["hh_closed"]
    audio = np.zeros((n, length))
    for name, sample in kit.items():
        sample = sample / (np.abs(sample).max(axis=1, keepdims=True) + 1e-12)
        audio += gains[name][:, None] * fftconvolve(trains[name], sample, axes=1)[:, :length]
    # distractors: room reverb, a slowly swelling pad (no sharp onsets) and a noise floor
    t = np.arange(length) / sr
    pad_f = _midi_to_hz(rng.integers(40, 64, n))[:, None]
    pad = sum(
        np.sin(2 * np.pi * r * pad_f * t + rng.uniform(0, 6.28, (n, 1))) / r for r in (1, 2, 3)
    )
    swell = 0.5 - 0.5 * np.cos(2 * np.pi * t / duration)
    pad_gain = np.where(rng.random(n) < 0.7, rng.uniform(0.05, 0.5, n), 0.0)
    # a room: exponentially decaying noise as impulse response, mixed in at a random level
    ir_t = np.arange(int(0.8 * sr)) / sr
    ir = rng.standard_normal((n, ir_t.size)) * np.exp(
        -6.9 * ir_t / rng.uniform(0.1, 0.8, n)[:, None]
    )
    wet = fftconvolve(audio, _rms_normalize(ir), axes=1)[:, :length]
    wet_gain = rng.uniform(0.0, 0.6, n) * audio.std(axis=1) / (wet.std(axis=1) + 1e-12)
    audio = audio + wet_gain[:, None] * wet
    audio = audio + pad_gain[:, None] * pad * swell
    audio = _add_noise(rng, _rms_normalize(audio), rng.uniform(6.0, 35.0, n))
    audio *= 0.1 * 10 ** (rng.uniform(-15, 0, n) / 20)[:, None]
    return drum_features(audio.astype(np.float32), sr), times


def drums(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """Windows of synthetic drum clips with kick / snare / hi-hat onset targets per frame.

    ``n`` counts clips (4 s; 2 s for ``tiny``); every frame of every clip becomes one
    ``(1, 64, 11)`` window whose target is ``(3,)`` binary onsets at the centre frame. Each
    clip has its own kit (swept kick, tone+noise snare, closed/open hats), tempo, pattern,
    timing jitter, accents, overlapping hits, sometimes a break, a pad and a noise floor.
    ``meta`` holds ``clip``, ``frame``, reference ``onsets`` per clip and drum, and ``fps``.
    """
    mels, times = _drum_clips(n, seed, size)
    data = drum_windows(list(mels), times, DRUM_CONTEXT, DRUM_SR / DRUM_HOP)
    data.meta["labels"] = TASKS["drum"].labels
    return data


def onsets(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """The drum clips of :func:`drums` with all drums merged into one onset target ``(1,)``.

    Hits closer than 50 ms (the evaluation window) count as one onset, the earliest.
    """
    mels, times = _drum_clips(n, seed, size)
    merged = [[merge_onsets(np.concatenate(clip), tolerance=0.05)] for clip in times]
    data = drum_windows(list(mels), merged, DRUM_CONTEXT, DRUM_SR / DRUM_HOP)
    data.meta["labels"] = ("onset",)
    return data


# ================================================================================ datasets

GENERATORS: Mapping[str, Callable[..., MIRData]] = {
    "instrument": instrument,
    "singing": singing,
    "pitch": pitch,
    "chord": chords,
    "drum": drums,
    "onset": onsets,
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
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ValueError("fractions must be three positive numbers")
    total = sum(fractions)
    n_train = max(1, round(n * fractions[0] / total))
    n_val = max(1, round(n * fractions[1] / total))
    n_test = max(1, n - n_train - n_val)
    children = np.random.SeedSequence(seed).spawn(3)
    gen = GENERATORS[task]
    parts = [
        gen(count, seed=child, size=size, **kwargs)
        for count, child in zip((n_train, n_val, n_test), children, strict=True)
    ]
    return Splits(*parts)

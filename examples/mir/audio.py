"""Signal helpers that the synthetic and the rendered data share: pitch, levels, noise, labels.

Each helper draws from the generator it is given in a fixed order, so a generator that calls
it makes the same arrays for the same seed.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHUNK",
    "Seed",
    "add_noise",
    "attack_decay",
    "balanced_labels",
    "clip_seconds",
    "db_gain",
    "midi_to_hz",
    "play",
    "random_level",
    "rms",
    "rms_normalize",
    "shaped_noise",
    "sixteenth",
    "smooth_noise",
    "triad",
    "wavetables",
]

Seed = int | np.random.SeedSequence
CHUNK = 16  # synthetic examples rendered at once; keeps temporaries small and cache-friendly
_TABLE = 2048  # samples per period of a wavetable


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray:
    """MIDI note number (possibly fractional) to Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def balanced_labels(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """``n`` labels with every class as equally frequent as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes)


def db_gain(rng: np.random.Generator, low_db: float, size: int | None = None) -> np.ndarray:
    """A random gain (or ``size`` of them) between ``low_db`` dB and 0 dB."""
    return 10 ** (rng.uniform(low_db, 0, size) / 20)


def clip_seconds(size: str) -> float:
    """Length of a drum / onset clip: 2 s at the ``tiny`` size, else 4 s."""
    return 2.0 if size == "tiny" else 4.0


def sixteenth(rng: np.random.Generator) -> float:
    """The length (s) of a sixteenth note at a random tempo of 80-170 BPM."""
    return 60.0 / rng.uniform(80, 170) / 4


def triad(rng: np.random.Generator, label: int, top_octave: int) -> tuple[int, list[int], int]:
    """Root key, tones above it and third (3 or 4) of chord class ``label`` (0-11 major,
    12-23 minor roots), in a random inversion and a random octave of 3 .. ``top_octave`` - 1."""
    root, third = label % 12, (3 if label >= 12 else 4)
    tones = [0, third, 7]
    inversion = int(rng.integers(0, 3))
    tones = tones[inversion:] + [x + 12 for x in tones[:inversion]]
    return 12 * int(rng.integers(3, top_octave)) + root, tones, third


def attack_decay(
    t_since: np.ndarray, attack: np.ndarray | float, decay: np.ndarray | float
) -> np.ndarray:
    """A note's envelope ``t_since`` seconds after its onset (zero before it): exponential
    attack and decay with time constants ``attack`` and ``decay`` (s)."""
    pos = np.maximum(t_since, 0.0)
    return (t_since >= 0) * (1.0 - np.exp(-pos / attack)) * np.exp(-pos / decay)


def rms(x: np.ndarray) -> np.ndarray:
    """Root mean square along the last axis, in float64."""
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1))


def rms_normalize(x: np.ndarray) -> np.ndarray:
    """Scale every row to unit RMS (silent rows stay silent)."""
    return x / (np.sqrt(np.mean(x**2, axis=1, keepdims=True)) + 1e-12)


def add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: np.ndarray | float) -> np.ndarray:
    """Add white noise to unit-RMS ``x`` at ``snr_db`` (broadcast against ``x``)."""
    return x + rng.standard_normal(x.shape) * 10 ** (-snr_db / 20)


def random_level(rng: np.random.Generator, audio: np.ndarray, snr_db: float) -> np.ndarray:
    """One clip scaled to a random level (-12 to 0 dB of 0.1 RMS), white noise ``snr_db`` below."""
    noisy = add_noise(rng, audio / (float(rms(audio)) + 1e-9), snr_db)
    return (0.1 * db_gain(rng, -12) * noisy).astype(np.float32)


def smooth_noise(
    rng: np.random.Generator, n: int, n_samples: int, sr: int, rate: float
) -> np.ndarray:
    """Unit-variance random curves changing about ``rate`` times per second (linear interp)."""
    m = int(np.ceil(n_samples / sr * rate)) + 2
    ctrl = rng.standard_normal((n, m))
    pos = np.arange(n_samples) / sr * rate
    i0 = np.floor(pos).astype(int)
    frac = pos - i0
    return ctrl[:, i0] * (1.0 - frac) + ctrl[:, i0 + 1] * frac


def shaped_noise(
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


def wavetables(amps: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """One period of ``sum_k amps[..., k] * sin(2 pi (k + 1) x + phases[..., k])`` per row.

    Rendering a harmonic tone by reading a per-note table is as exact as summing sines (the
    partials are periodic in the fundamental's phase) and costs the same for any number of
    harmonics, which keeps long excerpts fast.
    """
    n_harm = amps.shape[-1]
    x = 2 * np.pi * np.outer(np.arange(1, n_harm + 1), np.arange(_TABLE) / _TABLE)
    return (amps * np.cos(phases)) @ np.sin(x) + (amps * np.sin(phases)) @ np.cos(x)


def play(tables: np.ndarray, cycles: np.ndarray, which: np.ndarray | None = None) -> np.ndarray:
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

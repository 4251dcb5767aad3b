"""Synthetic pitch data: CREPE frames of harmonic tones with soft targets on 360 bins."""

from __future__ import annotations

import numpy as np
import torch

from .audio import CHUNK, Seed, attack_decay, rms_normalize
from .features import (
    CREPE_FRAME,
    CREPE_SR,
    PITCH_CENTS,
    MIRData,
    cents_to_hz,
    normalize_frames,
    pitch_target,
)
from .models import TASKS

__all__ = ["pitch"]


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
    for i in range(0, n, CHUNK):
        s = slice(i, min(n, i + CHUNK))
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
        env = attack_decay(ts, 0.005, decay[s, None])
        acc = rms_normalize(acc * env)
        white = np.fft.rfft(rng.standard_normal((m, length)), axis=1)
        freqs = np.maximum(np.fft.rfftfreq(length, 1.0 / sr), 20.0)
        noise = np.fft.irfft(white * freqs[None, :] ** (-noise_tilt[s, None] / 2), n=length)
        noise = rms_normalize(noise) * 10.0 ** (-snr[s, None] / 20.0)
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

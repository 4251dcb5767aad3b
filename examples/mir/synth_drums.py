"""Synthetic drum and onset data: random kits and patterns with reverb, pads and noise."""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from .audio import (
    Seed,
    add_noise,
    clip_seconds,
    db_gain,
    midi_to_hz,
    rms_normalize,
    shaped_noise,
    sixteenth,
)
from .features import DRUM_SR, MIRData, all_onsets, drum_features, drum_windows
from .models import TASKS

__all__ = ["drums", "onsets"]

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
    rattle = shaped_noise(rng, n, length, sr, rng.uniform(1500, 5000, n), rng.uniform(1, 2.5, n))
    rattle *= np.exp(-t / rng.uniform(0.08, 0.3, n)[:, None])
    mix = rng.uniform(0.3, 0.8, n)[:, None]
    snare = (1 - mix) * tone + mix * rattle
    # hi-hats: high-passed noise plus a metallic cluster of square-ish partials
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523])
    base = rng.uniform(300, 500, n)[:, None, None]
    metal = np.tanh(4 * np.sin(2 * np.pi * base * ratios[None, :, None] * t[None, None, :]))
    metal = metal.sum(axis=1)
    hiss = shaped_noise(rng, n, length, sr, rng.uniform(7000, 10000, n), rng.uniform(0.5, 1.2, n))
    metal_share = rng.uniform(0.0, 0.5, n)[:, None]
    spectrum = (1 - metal_share) * hiss + metal_share * rms_normalize(
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
        step = sixteenth(rng)
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
    duration = clip_seconds(size)
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
    pad_f = midi_to_hz(rng.integers(40, 64, n))[:, None]
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
    wet = fftconvolve(audio, rms_normalize(ir), axes=1)[:, :length]
    wet_gain = rng.uniform(0.0, 0.6, n) * audio.std(axis=1) / (wet.std(axis=1) + 1e-12)
    audio = audio + wet_gain[:, None] * wet
    audio = audio + pad_gain[:, None] * pad * swell
    audio = add_noise(rng, rms_normalize(audio), rng.uniform(6.0, 35.0, n)[:, None])
    audio *= 0.1 * db_gain(rng, -15, n)[:, None]
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
    return drum_windows(list(mels), times, labels=TASKS["drum"].labels)


def onsets(n: int, seed: Seed = 0, size: str = "quick") -> MIRData:
    """The drum clips of :func:`drums` with all drums merged into one onset target ``(1,)``.

    Hits closer than 50 ms (the evaluation window) count as one onset, the earliest.
    """
    mels, times = _drum_clips(n, seed, size)
    return drum_windows(list(mels), all_onsets(times), labels=("onset",))

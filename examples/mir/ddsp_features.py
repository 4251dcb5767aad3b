"""The ddsp task's frame features (A-weighted loudness) and its f0 check of generated audio.

Frames are those of :mod:`examples.mir.ddsp`: frame ``i`` covers samples
``[i * hop, (i + 1) * hop)`` and its values are those at its centre, ``i * hop + hop / 2``.
Plain numpy, shared by the rendered and the synthetic data and by the evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

from .ddsp import DDSP_HOP, DDSP_SR
from .features import MIRData

__all__ = [
    "LOUDNESS_FLOOR_DB",
    "a_weighting_db",
    "estimate_f0",
    "f0_accuracy",
    "f0_metrics",
    "frame_classes",
    "frame_loudness",
]

#: Loudness of silence: frames quieter than this are clipped to it.
LOUDNESS_FLOOR_DB = -120.0
_LOUD_FFT = 1024  # 64 ms analysis window of the loudness
_F0_FRAME = 1024  # 64 ms analysis window of the f0 estimator
_F0_RANGE = (50.0, 2000.0)  # Hz searched by the f0 estimator
_F0_STRIDE = 4  # estimate every 4th frame (16 ms) to keep the check cheap
_PITCH_EDGES = (60.0, 66.0, 72.0, 78.0, 84.0)  # MIDI keys between the pitch bands of a class


def a_weighting_db(freqs: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB: ``20 log10 R_A(f) + 2.00``, with
    ``R_A(f) = 12194^2 f^4 / ((f^2 + 20.6^2) sqrt((f^2 + 107.7^2)(f^2 + 737.9^2))
    (f^2 + 12194^2))`` (0 dB at 1 kHz; -inf at 0 Hz)."""
    f2 = np.square(np.asarray(freqs, dtype=np.float64))
    num = 12194.0**2 * f2**2
    den = (f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2)) * (f2 + 12194.0**2)
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(num / den) + 2.0


def _centred_frames(audio: np.ndarray, size: int, hop: int) -> np.ndarray:
    """(T, size) windows of 1-D ``audio`` centred on its frame centres (zeros past the ends)."""
    n_frames = audio.shape[-1] // hop
    padded = np.pad(np.asarray(audio, dtype=np.float64), (size // 2, size // 2))
    views = np.lib.stride_tricks.sliding_window_view(padded, size)
    return views[hop // 2 :: hop][:n_frames]


def frame_loudness(audio: np.ndarray, sr: int = DDSP_SR, hop: int = DDSP_HOP) -> np.ndarray:
    """A-weighted power in dB per frame of 1-D ``audio``: ``(len(audio) // hop,)``.

    With ``X`` the 1024-point spectrum of the frame's Hann-windowed samples ``x w``:
    ``10 log10(2 sum_k g_k |X_k|^2 / (N sum_n w_n^2))``, ``g_k = 10^(A(f_k) / 10)`` the
    A-weighting's power gain and the sum over the one-sided bins, i.e. the mean square of the
    A-weighted signal (a 1 kHz sine of amplitude 1 reads about -3 dB), clipped below at
    :data:`LOUDNESS_FLOOR_DB`.
    """
    window = np.hanning(_LOUD_FFT)
    spec = np.fft.rfft(_centred_frames(audio, _LOUD_FFT, hop) * window, axis=-1)
    gain = 10.0 ** (a_weighting_db(np.fft.rfftfreq(_LOUD_FFT, 1.0 / sr)) / 10.0)
    power = 2.0 * (np.abs(spec) ** 2 @ gain) / (_LOUD_FFT * np.sum(window**2))
    return np.maximum(10.0 * np.log10(np.maximum(power, 1e-30)), LOUDNESS_FLOOR_DB)


def estimate_f0(audio: np.ndarray, sr: int = DDSP_SR, hop: int = DDSP_HOP) -> np.ndarray:
    """f0 (Hz) of 1-D ``audio`` per frame by autocorrelation (0 where it is silent).

    Each 1024-sample Hann-windowed frame's autocorrelation, divided by the window's own, is
    searched over periods of 50-2000 Hz; the shortest period whose peak reaches 90 % of the
    highest one wins (so a period's multiples, equally high, do not halve f0), refined by a
    parabola through the peak and its neighbours.
    """
    window = np.hanning(_F0_FRAME)
    frames = _centred_frames(audio, _F0_FRAME, hop) * window
    size = 2 * _F0_FRAME
    acf = np.fft.irfft(np.abs(np.fft.rfft(frames, size, axis=-1)) ** 2, size, axis=-1)
    norm = np.fft.irfft(np.abs(np.fft.rfft(window, size)) ** 2, size)
    lo, hi = int(sr / _F0_RANGE[1]), int(np.ceil(sr / _F0_RANGE[0]))
    r = acf[:, : hi + 2] / np.maximum(norm[: hi + 2], 1e-12) / np.maximum(acf[:, :1], 1e-12)
    inner = r[:, lo : hi + 1]
    peaks = (inner >= r[:, lo - 1 : hi]) & (inner >= r[:, lo + 1 : hi + 2]) & (inner > 0)
    best = np.where(peaks, inner, -np.inf).max(axis=1, keepdims=True)
    first = np.argmax(peaks & (inner >= 0.9 * best), axis=1) + lo
    rows = np.arange(len(r))
    a, b, c = r[rows, first - 1], r[rows, first], r[rows, first + 1]
    shift = np.clip(
        0.5 * (a - c) / np.where(np.abs(a - 2 * b + c) > 1e-12, a - 2 * b + c, 1.0), -1, 1
    )
    f0 = sr / (first + shift)
    silent = (acf[:, 0] <= 1e-10) | ~np.isfinite(best[:, 0])
    return np.where(silent, 0.0, f0)


def f0_accuracy(
    audio: np.ndarray,
    f0_hz: np.ndarray,
    voiced: np.ndarray,
    sr: int = DDSP_SR,
    hop: int = DDSP_HOP,
    tolerance: float = 50.0,
) -> tuple[float, float]:
    """Median absolute f0 error (cents) of generated ``audio`` (N, S) against the input
    ``f0_hz`` (N, T) on ``voiced`` frames (every 4th), and the share within ``tolerance``.

    Frames where the estimator finds silence count as wrong (an error of 1200 cents).
    """
    errors = []
    for clip, ref, mask in zip(audio, f0_hz, voiced, strict=True):
        frames = np.flatnonzero(np.asarray(mask, dtype=bool) & (ref > 0))
        frames = frames[frames % _F0_STRIDE == 0]
        if frames.size == 0:
            continue
        est = estimate_f0(clip, sr, hop)[frames]
        with np.errstate(divide="ignore", invalid="ignore"):
            cents = np.abs(1200.0 * np.log2(est / ref[frames]))
        errors.append(np.where(est > 0, cents, 1200.0))
    if not errors:
        return float("nan"), float("nan")
    flat = np.concatenate(errors)
    return float(np.median(flat)), float(np.mean(flat <= tolerance))


def f0_metrics(outputs: torch.Tensor, data: MIRData) -> dict[str, float]:
    """The f0 check of generated audio ``outputs`` on ddsp ``data``: ``f0_cents`` (median
    absolute error on voiced frames) and ``f0_within_50`` (share within 50 cents)."""
    audio = outputs.detach().cpu().numpy().astype(np.float64)
    f0 = data.inputs[:, 0].numpy().astype(np.float64)
    cents, within = f0_accuracy(audio, f0, np.asarray(data.meta["voiced"], dtype=bool))
    return {"f0_cents": cents, "f0_within_50": within}


def frame_classes(inputs: torch.Tensor, loudness_bands: int = 3) -> torch.Tensor:
    """A class per frame of ddsp inputs ``(B, 2, T)``, for the ``information`` criterion ranked
    per position: the frame's pitch band (six bands of half an octave from MIDI 60 up, the
    lowest taking everything below) times its loudness band (``loudness_bands`` bands between
    the quantiles of these frames' loudness), ``(B, T)`` integers."""
    f0, loud = inputs[:, 0].double(), inputs[:, 1].double()
    midi = 12 * torch.log2(f0.clamp_min(1e-3) / 440) + 69
    pitch = torch.bucketize(midi, torch.tensor(_PITCH_EDGES, dtype=midi.dtype))
    quantiles = torch.linspace(0, 1, loudness_bands + 1, dtype=loud.dtype)[1:-1]
    edges = torch.quantile(loud.reshape(-1), quantiles)
    return (pitch * loudness_bands + torch.bucketize(loud, edges)).long()

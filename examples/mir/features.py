"""Shared input features and target encodings for the MIR examples.

The synthetic and rendered generators (:mod:`examples.mir.synth`, :mod:`examples.mir.render`)
and the real-dataset loaders (:mod:`examples.mir.datasets_clips`,
:mod:`examples.mir.datasets_annotated`) all go through these functions, so
a model trained on one sees exactly the same kind of tensors on the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHORD_BINS",
    "CHORD_BINS_PER_OCTAVE",
    "CHORD_FMIN",
    "CHORD_FRAMES",
    "CHORD_HOP",
    "CHORD_MARGIN",
    "CHORD_SEGMENT",
    "CHORD_SR",
    "CREPE_FRAME",
    "CREPE_SR",
    "DRUM_CONTEXT",
    "DRUM_FMAX",
    "DRUM_FMIN",
    "DRUM_HOP",
    "DRUM_MELS",
    "DRUM_NFFT",
    "DRUM_SR",
    "MIRData",
    "PITCH_BINS",
    "PITCH_CENTS",
    "PITCH_FMIN",
    "Splits",
    "all_onsets",
    "center_windows",
    "cents_to_hz",
    "chord_features",
    "chord_patches",
    "drum_features",
    "drum_windows",
    "hz_to_cents",
    "merge_onsets",
    "normalize_frames",
    "onset_frames",
    "pitch_in_range",
    "pitch_target",
    "split_counts",
    "transpose_chords",
]

# Pitch (CREPE): 360 bins, 20 cents apart, starting at C1. Cents are relative to 10 Hz, the
# reference mir_eval uses, so they can be passed to mir_eval.melody directly.
CREPE_SR = 16000
CREPE_FRAME = 1024
PITCH_BINS = 360
PITCH_FMIN = 32.70319566257483  # C1
PITCH_CENTS: np.ndarray = 1200.0 * np.log2(PITCH_FMIN / 10.0) + 20.0 * np.arange(PITCH_BINS)
PITCH_TARGET_STD_CENTS = 25.0

# Chords: 105 CQT bins, 2 per semitone from C1 (C1 .. about E5), 15 frames of 46.4 ms. The CQT
# is computed at 11025 Hz with hop 512, the same frame rate as hop 2048 at 44.1 kHz; the top
# bin (about 660 Hz) is far below the 5.5 kHz Nyquist limit, so nothing is lost.
CHORD_SR = 11025
CHORD_HOP = 512
CHORD_FMIN = PITCH_FMIN
CHORD_BINS = 105
CHORD_BINS_PER_OCTAVE = 24
CHORD_FRAMES = 15
CHORD_MARGIN = 3  # frames rendered on each side of a chord patch, so neighbours bleed in
CHORD_SEGMENT = CHORD_FRAMES + 2 * CHORD_MARGIN  # frames of one generated chord segment

# Drums and onsets: 64 mel bands 20 Hz - 11025 Hz, FFT 2048, hop 512 at 22.05 kHz
# (43.07 frames per second), context windows of 11 frames centred on the predicted frame.
DRUM_SR = 22050
DRUM_NFFT = 2048
DRUM_HOP = 512
DRUM_MELS = 64
DRUM_FMIN = 20.0
DRUM_FMAX = 11025.0
DRUM_CONTEXT = 11


@dataclass
class MIRData:
    """Model-ready tensors plus what evaluation needs (``meta``), for one split of one task.

    Unpacks as ``inputs, targets = data``. ``meta`` holds per-example arrays (e.g. ``f0_hz``,
    ``clip``, ``frame``) and per-dataset values (e.g. ``fps``, reference ``onsets``).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Yield ``inputs`` then ``targets`` so that ``x, y = data`` works."""
        return iter((self.inputs, self.targets))

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.inputs.shape[0])

    def dataset(self) -> torch.utils.data.TensorDataset:
        """The examples as a ``TensorDataset`` for a ``DataLoader``."""
        return torch.utils.data.TensorDataset(self.inputs, self.targets)


@dataclass
class Splits:
    """Train / validation / test splits of one task, generated or loaded independently."""

    train: MIRData
    val: MIRData
    test: MIRData

    def __iter__(self) -> Iterator[MIRData]:
        """Yield train, val, test so that ``train, val, test = splits`` works."""
        return iter((self.train, self.val, self.test))

    def as_dict(self) -> Mapping[str, MIRData]:
        """The splits keyed by name."""
        return {"train": self.train, "val": self.val, "test": self.test}


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Train / val / test counts of ``n`` examples in the given shares (each at least 1)."""
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ValueError("fractions must be three positive numbers")
    total = sum(fractions)
    n_train = max(1, round(n * fractions[0] / total))
    n_val = max(1, round(n * fractions[1] / total))
    return n_train, n_val, max(1, n - n_train - n_val)


# ----------------------------------------------------------------------------------- pitch


def hz_to_cents(f_hz: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz to cents above 10 Hz (mir_eval's convention)."""
    return 1200.0 * np.log2(np.asarray(f_hz, dtype=np.float64) / 10.0)


def cents_to_hz(cents: np.ndarray | float) -> np.ndarray:
    """Cents above 10 Hz back to Hz."""
    return 10.0 * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)


def pitch_target(f0_hz: np.ndarray) -> torch.Tensor:
    """CREPE-style soft targets: a Gaussian (std 25 cents) over the 360 bins around each f0."""
    cents = hz_to_cents(np.asarray(f0_hz, dtype=np.float64))[:, None]
    target = np.exp(-((PITCH_CENTS[None, :] - cents) ** 2) / (2 * PITCH_TARGET_STD_CENTS**2))
    return torch.from_numpy(target.astype(np.float32))


def pitch_in_range(f0_hz: np.ndarray) -> np.ndarray:
    """Whether each f0 lies within the 360-bin range (inclusive of half a bin at each end)."""
    cents = hz_to_cents(np.asarray(f0_hz, dtype=np.float64))
    return (cents >= PITCH_CENTS[0] - 10.0) & (cents <= PITCH_CENTS[-1] + 10.0)


def normalize_frames(frames: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-variance per frame, as CREPE expects (silent frames stay zero)."""
    frames = frames - frames.mean(axis=-1, keepdims=True)
    std = frames.std(axis=-1, keepdims=True)
    return frames / np.maximum(std, 1e-8)


# ----------------------------------------------------------------------------------- chords


def chord_features(y: np.ndarray, sr: int = CHORD_SR) -> np.ndarray:
    """Log-magnitude CQT (105 bins x frames) of mono audio ``y``; resamples to 11025 Hz first."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if sr != CHORD_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=CHORD_SR)
    c = librosa.cqt(
        y,
        sr=CHORD_SR,
        hop_length=CHORD_HOP,
        fmin=CHORD_FMIN,
        n_bins=CHORD_BINS,
        bins_per_octave=CHORD_BINS_PER_OCTAVE,
    )
    return np.log1p(np.abs(c)).astype(np.float32)


def transpose_chords(
    inputs: torch.Tensor, targets: torch.Tensor, semitones: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pitch-shift CQT patches by whole semitones (2 bins each) and relabel the chords.

    Bins shifted in from outside the CQT range are zero. Used for the paper's -6..+6 semitone
    augmentation; ``N`` (class 24) stays ``N``.
    """
    shift = 2 * semitones
    out = torch.zeros_like(inputs)
    if shift > 0:
        out[..., shift:, :] = inputs[..., :-shift, :]
    elif shift < 0:
        out[..., :shift, :] = inputs[..., -shift:, :]
    else:
        out = inputs.clone()
    labels = targets.clone()
    chord = labels < 24
    quality = labels // 12
    root = (labels % 12 + semitones) % 12
    labels[chord] = (quality * 12 + root)[chord]
    return out, labels


# ----------------------------------------------------------------------------------- drums


def drum_features(y: np.ndarray, sr: int = DRUM_SR) -> np.ndarray:
    """Log-compressed 64-band mel magnitudes (..., 64, frames); resamples to 22.05 kHz first.

    Accepts one signal ``(samples,)`` or a batch ``(n, samples)``.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if sr != DRUM_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=DRUM_SR, axis=-1)
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=DRUM_SR,
        n_fft=DRUM_NFFT,
        hop_length=DRUM_HOP,
        n_mels=DRUM_MELS,
        fmin=DRUM_FMIN,
        fmax=DRUM_FMAX,
        power=1.0,
    )
    return np.log1p(mel).astype(np.float32)


def center_windows(features: np.ndarray, context: int) -> np.ndarray:
    """All ``context``-frame windows of ``(bins, frames)`` centred on each frame (zero-padded).

    Returns ``(frames, bins, context)``; window ``i`` has frame ``i`` in its middle column.
    """
    if context % 2 != 1:
        raise ValueError("context must be odd so that a window has a centre frame")
    half = context // 2
    padded = np.pad(features, ((0, 0), (half, half)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, context, axis=1)
    return np.ascontiguousarray(windows.transpose(1, 0, 2))


def onset_frames(times: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """Binary frame activations (``n_frames``,) with a 1 at the frame nearest each onset time."""
    target = np.zeros(n_frames, dtype=np.float32)
    idx = np.round(np.asarray(times, dtype=np.float64) * fps).astype(int)
    idx = idx[(idx >= 0) & (idx < n_frames)]
    target[idx] = 1.0
    return target


def chord_patches(cqt: np.ndarray, n: int) -> torch.Tensor:
    """The ``n`` patches ``(n, 1, bins, CHORD_FRAMES)`` at the centre of back-to-back segments
    of ``CHORD_SEGMENT`` frames in one CQT ``(bins, frames)``."""
    first = np.arange(n) * CHORD_SEGMENT + CHORD_MARGIN
    idx = first[:, None] + np.arange(CHORD_FRAMES)[None, :]
    patches = np.ascontiguousarray(cqt[:, idx].transpose(1, 0, 2))
    return torch.from_numpy(patches[:, None].astype(np.float32))


def merge_onsets(times: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
    """Sorted onset times with events closer than ``tolerance`` seconds merged into the first."""
    times = np.sort(np.asarray(times, dtype=np.float64))
    if times.size == 0:
        return times
    keep = [times[0]]
    for t in times[1:]:
        if t - keep[-1] >= tolerance:
            keep.append(t)
    return np.asarray(keep)


def all_onsets(clips: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Every clip's onsets of all parts as one target; closer than 50 ms (the evaluation
    window) count as one, the earliest."""
    return [[merge_onsets(np.concatenate(parts), tolerance=0.05)] for parts in clips]


def drum_windows(
    mels: list[np.ndarray],
    onsets: list[list[np.ndarray]],
    context: int = DRUM_CONTEXT,
    fps: float = DRUM_SR / DRUM_HOP,
    labels: tuple[str, ...] | None = None,
) -> MIRData:
    """Turn per-clip mel spectrograms and per-drum onset times into one window per frame.

    ``onsets[c][d]`` are the onset times (s) of target ``d`` in clip ``c``. Targets are
    ``(windows, len(onsets[c]))``; ``meta`` records ``clip`` and ``frame`` of every window,
    ``onsets`` and ``fps`` for :func:`examples.mir.metrics.onset_error`, and ``labels`` if given.
    """
    xs, ys, clip_idx, frame_idx = [], [], [], []
    for c, (mel, clip_onsets) in enumerate(zip(mels, onsets, strict=True)):
        n_frames = mel.shape[1]
        xs.append(center_windows(mel, context))
        ys.append(np.stack([onset_frames(t, n_frames, fps) for t in clip_onsets], axis=1))
        clip_idx.append(np.full(n_frames, c))
        frame_idx.append(np.arange(n_frames))
    inputs = torch.from_numpy(np.concatenate(xs)[:, None].astype(np.float32))
    targets = torch.from_numpy(np.concatenate(ys).astype(np.float32))
    meta = {
        "clip": np.concatenate(clip_idx),
        "frame": np.concatenate(frame_idx),
        "onsets": [[np.asarray(t, dtype=np.float64) for t in o] for o in onsets],
        "fps": fps,
    }
    if labels is not None:
        meta["labels"] = labels
    return MIRData(inputs, targets, meta)

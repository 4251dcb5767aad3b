"""Task errors as reported in the paper (lower is better), computed with mir_eval.

* instrument, singing, chord: ``1 - accuracy``;
* pitch: ``1 - raw pitch accuracy`` within 50 cents (``mir_eval.melody``); raw chroma
  accuracy (octave errors forgiven) is reported beside it;
* drum, onset: ``1 - F-measure`` of peak-picked frame activations against reference onset
  times within a 50 ms window (``mir_eval.onset.f_measure``), micro-averaged over clips and
  drums (hits are summed before the F-measure is taken);
* ddsp (generative, not in [0, 1]): the multi-scale spectral loss of the generated audio
  (:func:`examples.mir.ddsp.spectral_loss`), averaged over phrases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .ddsp import example_losses
from .features import PITCH_CENTS, MIRData, cents_to_hz
from .models import TASKS

__all__ = [
    "best_threshold",
    "classification_error",
    "decode_pitch",
    "onset_counts",
    "onset_error",
    "peak_pick",
    "pitch_error",
    "raw_chroma_accuracy",
    "raw_pitch_accuracy",
    "task_error",
]

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def _numpy(x: ArrayLike) -> np.ndarray:
    """Detach and convert a tensor (or sequence) to a float64/int numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically safe logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def classification_error(outputs: ArrayLike, targets: ArrayLike) -> float:
    """``1 - accuracy``; ``outputs`` are logits/probabilities (N, C) or predicted labels (N,)."""
    out = _numpy(outputs)
    labels = out.argmax(axis=1) if out.ndim == 2 else out.astype(np.int64)
    ref = _numpy(targets).astype(np.int64)
    if labels.shape != ref.shape:
        raise ValueError(f"{labels.shape[0]} predictions for {ref.shape[0]} targets")
    if ref.size == 0:
        raise ValueError("no examples to score")
    return float(1.0 - np.mean(labels == ref))


def decode_pitch(outputs: ArrayLike, from_logits: bool = True, radius: int = 4) -> np.ndarray:
    """f0 in Hz from 360-bin activations: activation-weighted mean of the bins near the peak.

    Averaging the ``radius`` bins on each side of the strongest bin (as CREPE does) gives a
    resolution finer than the 20-cent bin spacing.
    """
    act = _numpy(outputs).astype(np.float64)
    if act.ndim != 2 or act.shape[1] != len(PITCH_CENTS):
        raise ValueError(f"expected (N, {len(PITCH_CENTS)}) activations, got {act.shape}")
    if from_logits:
        act = _sigmoid(act)
    peak = act.argmax(axis=1)
    idx = np.clip(peak[:, None] + np.arange(-radius, radius + 1)[None, :], 0, act.shape[1] - 1)
    offsets = np.arange(-radius, radius + 1)[None, :]
    valid = (peak[:, None] + offsets >= 0) & (peak[:, None] + offsets < act.shape[1])
    w = np.take_along_axis(act, idx, axis=1) * valid
    cents = (w * PITCH_CENTS[idx]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
    return cents_to_hz(cents)


def _melody(
    est_hz: ArrayLike, ref_hz: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mir_eval's (ref voicing, ref cents, est voicing, est cents) of frame-wise f0 in Hz.

    A frequency of 0 Hz or below is an unvoiced frame; a reference without a voiced frame has
    no accuracy, so it is refused.
    """
    import mir_eval

    est = _numpy(est_hz).astype(np.float64).ravel()
    ref = _numpy(ref_hz).astype(np.float64).ravel()
    if est.shape != ref.shape:
        raise ValueError(f"{est.size} estimates for {ref.size} reference frames")
    ref_voicing = (ref > 0).astype(np.float64)
    est_voicing = (est > 0).astype(np.float64)
    if ref_voicing.sum() == 0:
        raise ValueError("the reference has no voiced frame")
    hz2cents = mir_eval.melody.hz2cents
    return ref_voicing, hz2cents(ref), est_voicing, hz2cents(est)


def raw_pitch_accuracy(est_hz: ArrayLike, ref_hz: ArrayLike, cent_tolerance: float = 50.0) -> float:
    """Share of voiced reference frames whose estimate is within 50 cents (``mir_eval``)."""
    import mir_eval

    return float(
        mir_eval.melody.raw_pitch_accuracy(*_melody(est_hz, ref_hz), cent_tolerance=cent_tolerance)
    )


def raw_chroma_accuracy(
    est_hz: ArrayLike, ref_hz: ArrayLike, cent_tolerance: float = 50.0
) -> float:
    """Raw pitch accuracy with octave errors forgiven: within 50 cents of the pitch class.

    Tells octave confusions (a common failure of pitch trackers) from wrong notes.
    """
    import mir_eval

    return float(
        mir_eval.melody.raw_chroma_accuracy(*_melody(est_hz, ref_hz), cent_tolerance=cent_tolerance)
    )


def pitch_error(est_hz: ArrayLike, ref_hz: ArrayLike, cent_tolerance: float = 50.0) -> float:
    """``1 - raw pitch accuracy``: share of voiced reference frames more than 50 cents off."""
    return float(1.0 - raw_pitch_accuracy(est_hz, ref_hz, cent_tolerance))


def peak_pick(
    activation: ArrayLike, threshold: float = 0.5, pre_max: int = 1, post_max: int = 1
) -> np.ndarray:
    """Frame indices of local maxima above ``threshold``.

    A frame is a peak when it is >= the ``pre_max`` frames before it and > the ``post_max``
    frames after it, so a flat plateau yields exactly one peak (its last frame).
    """
    x = _numpy(activation).astype(np.float64).ravel()
    if x.size == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.pad(x, (pre_max, post_max), constant_values=-np.inf)
    keep = x >= threshold
    for j in range(1, pre_max + 1):
        keep &= x >= padded[pre_max - j : pre_max - j + x.size]
    for j in range(1, post_max + 1):
        keep &= x > padded[pre_max + j : pre_max + j + x.size]
    return np.flatnonzero(keep)


def onset_counts(
    reference: ArrayLike, estimated: ArrayLike, window: float = 0.05
) -> tuple[int, int, int]:
    """(hits, reference count, estimate count) of one onset list, via mir_eval's matching."""
    import mir_eval

    ref = np.sort(_numpy(reference).astype(np.float64).ravel())
    est = np.sort(_numpy(estimated).astype(np.float64).ravel())
    if ref.size == 0 or est.size == 0:
        return 0, ref.size, est.size
    _, precision, _ = mir_eval.onset.f_measure(ref, est, window=window)
    return round(precision * est.size), ref.size, est.size


def onset_error(
    outputs: ArrayLike,
    data: MIRData,
    from_logits: bool = True,
    threshold: float = 0.5,
    window: float = 0.05,
) -> float:
    """``1 - F-measure`` of peak-picked window predictions against ``data``'s onset times.

    ``outputs`` (N, heads) are the model's outputs for the N windows of ``data`` (one window per
    frame, as built by :func:`examples.mir.features.drum_windows`). Activations are re-assembled
    per clip, peak-picked per head, converted to times with ``data.meta["fps"]`` and matched
    with a ``window``-second tolerance. Hits, references and estimates are summed over all clips
    and heads; when there is neither a reference nor an estimate anywhere the error is 0.
    """
    act = _numpy(outputs).astype(np.float64)
    if act.ndim == 1:
        act = act[:, None]
    if from_logits:
        act = _sigmoid(act)
    meta = data.meta
    clips, frames, refs, fps = meta["clip"], meta["frame"], meta["onsets"], float(meta["fps"])
    if act.shape[0] != len(clips):
        raise ValueError(f"{act.shape[0]} outputs for {len(clips)} windows")
    hits = n_ref = n_est = 0
    for c, clip_refs in enumerate(refs):
        rows = np.flatnonzero(clips == c)
        if len(clip_refs) != act.shape[1]:
            raise ValueError(f"clip {c} has {len(clip_refs)} targets, outputs have {act.shape[1]}")
        n_frames = int(frames[rows].max()) + 1 if rows.size else 0
        for h, ref in enumerate(clip_refs):
            curve = np.zeros(n_frames)
            curve[frames[rows]] = act[rows, h]
            est = peak_pick(curve, threshold) / fps
            k, r, e = onset_counts(ref, est, window)
            hits, n_ref, n_est = hits + k, n_ref + r, n_est + e
    if n_ref + n_est == 0:
        return 0.0
    return float(1.0 - 2.0 * hits / (n_ref + n_est))


def best_threshold(
    outputs: ArrayLike,
    data: MIRData,
    from_logits: bool = True,
    candidates: Sequence[float] | None = None,
    window: float = 0.05,
) -> tuple[float, float]:
    """The peak-picking threshold with the lowest :func:`onset_error` on ``data``, and that error.

    Meant for a validation split: an undertrained or imbalanced onset model rarely reaches 0.5,
    so pick the threshold on validation data and report the test error at that threshold.
    """
    grid = np.linspace(0.05, 0.95, 19) if candidates is None else np.asarray(candidates, float)
    errors = [onset_error(outputs, data, from_logits, float(th), window) for th in grid]
    best = int(np.argmin(errors))
    return float(grid[best]), float(errors[best])


def task_error(task: str, outputs: ArrayLike, data: MIRData, **kwargs: Any) -> float:
    """The paper's error for ``task`` given model ``outputs`` (logits) on ``data``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    metric = TASKS[task].metric
    if metric == "classification_error":
        return classification_error(outputs, data.targets)
    if metric == "pitch_error":
        return pitch_error(decode_pitch(outputs, **kwargs), data.meta["f0_hz"])
    if metric == "spectral_error":
        return float(example_losses(torch.as_tensor(outputs), data.targets).mean())
    return onset_error(outputs, data, **kwargs)

"""How noisy a test error is: a seeded bootstrap over the test examples (clips for onsets).

Classification and pitch errors are means of per-example 0/1 errors; the onset error is
``1 - F`` of hit counts summed over clips, so its bootstrap resamples clips and recomputes F.
"""

from __future__ import annotations

import numpy as np
import torch

from . import metrics
from .ddsp import example_losses
from .features import MIRData
from .models import TASKS

__all__ = ["bootstrap_interval", "example_errors", "onset_clip_counts"]


def _array(x: metrics.ArrayLike) -> np.ndarray:
    """A numpy copy of a tensor or array."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def example_errors(task: str, outputs: metrics.ArrayLike, data: MIRData) -> np.ndarray:
    """Per-example errors of a classification or pitch task (0/1) or of ddsp (spectral
    losses); the error is their mean."""
    out = _array(outputs)
    metric = TASKS[task].metric
    if metric == "classification_error":
        return (out.argmax(axis=1) != _array(data.targets)).astype(np.float64)
    if metric == "pitch_error":
        est = metrics.decode_pitch(out)
        ref = np.asarray(data.meta["f0_hz"], dtype=np.float64)
        return (np.abs(1200.0 * np.log2(est / ref)) > 50.0).astype(np.float64)
    if metric == "spectral_error":
        losses = example_losses(torch.as_tensor(outputs), data.targets)
        return losses.numpy().astype(np.float64)
    raise ValueError(f"{task} errors are not per example; use onset_clip_counts")


def onset_clip_counts(
    outputs: metrics.ArrayLike, data: MIRData, threshold: float = 0.5
) -> np.ndarray:
    """(hits, references, estimates) per clip, summed over heads: ``(clips, 3)``."""
    act = 0.5 * (1.0 + np.tanh(0.5 * _array(outputs).astype(np.float64)))
    act = act[:, None] if act.ndim == 1 else act
    clips, frames, fps = data.meta["clip"], data.meta["frame"], float(data.meta["fps"])
    counts = np.zeros((len(data.meta["onsets"]), 3))
    for c, refs in enumerate(data.meta["onsets"]):
        rows = np.flatnonzero(clips == c)
        n_frames = int(frames[rows].max()) + 1 if rows.size else 0
        for h, ref in enumerate(refs):
            curve = np.zeros(n_frames)
            curve[frames[rows]] = act[rows, h]
            est = metrics.peak_pick(curve, threshold) / fps
            counts[c] += metrics.onset_counts(ref, est)
    return counts


def bootstrap_interval(
    task: str,
    outputs: metrics.ArrayLike,
    data: MIRData,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, int]:
    """The ``level`` percentile interval of the test error and the number of units resampled."""
    rng = np.random.default_rng(seed)
    if TASKS[task].metric == "onset_error":
        counts = onset_clip_counts(outputs, data, threshold)
        draws = counts[rng.integers(0, len(counts), (n_boot, len(counts)))].sum(axis=1)
        denominator = np.maximum(draws[:, 1] + draws[:, 2], 1.0)
        errors = 1.0 - 2.0 * draws[:, 0] / denominator
        n = len(counts)
    else:
        per = example_errors(task, outputs, data)
        errors = per[rng.integers(0, per.size, (n_boot, per.size))].mean(axis=1)
        n = per.size
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(errors, [tail, 100 - tail])
    return float(low), float(high), n

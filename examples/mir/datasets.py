"""What every real-dataset loader shares: reading audio, and naming what is missing.

The loaders (:mod:`examples.mir.datasets_clips` for NSynth, VocalSet and URMP/MedleyDB,
:mod:`examples.mir.datasets_annotated` for Isophonics chords and IDMT-SMT-Drums) read datasets
already on disk (nothing is downloaded) and return the same
:class:`~examples.mir.features.MIRData` as the synthetic generator of the same task, so the
models and metrics do not care where the data came from. Missing folders or files raise
:class:`DatasetNotFoundError` naming the path that was expected. Expected layouts are
documented per loader and in ``docs/examples.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = [
    "AUDIO_EXTENSIONS",
    "DatasetNotFoundError",
    "load_audio",
    "normalise_name",
    "require",
]

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".aiff", ".aif")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file the loader needs is not on disk."""


def require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else raise a :class:`DatasetNotFoundError` naming it."""
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    return path


def load_audio(path: str | Path, sr: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr`` Hz (channels averaged, resampled if needed)."""
    import soundfile as sf

    path = require(Path(path), "audio file")
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    y = data.mean(axis=1)
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def normalise_name(name: str) -> str:
    """Lower-case a folder or label name and turn spaces and dashes into underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())

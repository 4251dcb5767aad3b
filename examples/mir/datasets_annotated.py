"""Loaders of time-annotated recordings: Isophonics chords and IDMT-SMT-Drums onsets.

Each returns the :class:`~examples.mir.features.MIRData` of its task (chord, drum, onset),
labelled frame by frame from the annotation; shared helpers are in :mod:`examples.mir.datasets`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .datasets import AUDIO_EXTENSIONS, DatasetNotFoundError, load_audio, normalise_name, require
from .features import (
    CHORD_FRAMES,
    CHORD_HOP,
    CHORD_SR,
    DRUM_CONTEXT,
    DRUM_HOP,
    DRUM_SR,
    MIRData,
    center_windows,
    chord_features,
    drum_features,
    drum_windows,
    merge_onsets,
)

__all__ = ["chord_class", "load_chords", "load_smt_drums", "read_lab", "read_smt_annotation"]


# ========================================================== Beatles / Isophonics (chords)


def chord_class(label: str, other: str = "skip") -> int | None:
    """Class (0-11 major, 12-23 minor, 24 no-chord) of a chord label in Harte syntax.

    Reduction to major/minor uses the third above the root: a major third gives ``maj``
    (``7``, ``maj7``, ``aug`` ...), a minor third ``min`` (``min7``, ``dim``, ``hdim7`` ...).
    ``N`` is class 24; ``X`` (unknown) gives ``None``. Chords with no third (``sus4``, ``5``,
    ``1``) give ``None`` with ``other="skip"`` or 24 with ``other="N"``.
    """
    import mir_eval

    label = label.strip()
    if label == "X":
        return None
    if label == "N":
        return 24
    root, bitmap, _ = mir_eval.chord.encode(label)
    if bitmap[4]:
        return int(root)
    if bitmap[3]:
        return 12 + int(root)
    if other == "N":
        return 24
    if other == "skip":
        return None
    raise ValueError(f"other must be 'skip' or 'N', not {other!r}")


def read_lab(path: str | Path) -> list[tuple[float, float, str]]:
    """Read a ``.lab`` annotation: one ``start end label`` per line (tabs or spaces)."""
    path = require(Path(path), "chord annotation")
    segments = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) < 3:
                raise ValueError(f"{path}:{n}: expected 'start end label', got {line!r}")
            segments.append((float(parts[0]), float(parts[1]), parts[2]))
    return segments


def _find_audio(lab: Path, label_dir: Path, audio_dir: Path, by_stem: dict[str, Path]) -> Path:
    """The audio file matching an annotation: same relative path, else same file stem."""
    rel = lab.relative_to(label_dir).with_suffix("")
    for ext in AUDIO_EXTENSIONS:
        candidate = audio_dir / rel.with_suffix(ext)
        if candidate.exists():
            return candidate
    if lab.stem in by_stem:
        return by_stem[lab.stem]
    raise DatasetNotFoundError(
        f"audio for {lab} not found: expected {audio_dir / rel}.wav (or .flac) "
        f"or a file named {lab.stem}.* under {audio_dir}"
    )


def load_chords(
    audio_dir: str | Path, label_dir: str | Path, stride: int = 1, other: str = "skip"
) -> MIRData:
    """CQT patches (105 x 15) centred on every ``stride``-th frame, with 25-class chord labels.

    Layout: Isophonics-style ``.lab`` files anywhere under ``label_dir`` (e.g.
    ``chordlab/The Beatles/01_-_Please_Please_Me/01_-_I_Saw_Her_Standing_There.lab``), and
    the audio under ``audio_dir`` at the same relative path with an audio extension, or
    anywhere under ``audio_dir`` with the same file stem. Each frame gets the label of the
    segment holding its centre (``N`` outside all segments); frames labelled ``X`` (and,
    with ``other="skip"``, chords without a third) are dropped. ``meta``: ``song``, ``time``.
    Patches are materialised: about 6 KB each, so the 180 Beatles songs at ``stride=1`` take
    some 4 GB; use a larger ``stride`` or fewer songs on a small machine.
    """
    audio_dir = require(Path(audio_dir), "chord audio folder")
    label_dir = require(Path(label_dir), "chord annotation folder")
    labs = sorted(label_dir.rglob("*.lab"))
    if not labs:
        raise DatasetNotFoundError(f"no .lab chord annotation found under {label_dir}")
    by_stem = {
        p.stem: p for p in sorted(audio_dir.rglob("*")) if p.suffix.lower() in AUDIO_EXTENSIONS
    }
    xs, ys, songs, times = [], [], [], []
    for lab in labs:
        segments = read_lab(lab)
        cqt = chord_features(load_audio(_find_audio(lab, label_dir, audio_dir, by_stem), CHORD_SR))
        frame_t = np.arange(cqt.shape[1]) * CHORD_HOP / CHORD_SR
        label = np.full(cqt.shape[1], 24, dtype=np.int64)
        keep = np.ones(cqt.shape[1], dtype=bool)
        for start, end, name in segments:
            inside = (frame_t >= start) & (frame_t < end)
            cls = chord_class(name, other)
            if cls is None:
                keep &= ~inside
            else:
                label[inside] = cls
        keep[np.arange(cqt.shape[1]) % stride != 0] = False
        windows = center_windows(cqt, CHORD_FRAMES)[keep]
        xs.append(windows)
        ys.append(label[keep])
        songs.extend([str(lab.relative_to(label_dir).with_suffix(""))] * int(keep.sum()))
        times.append(frame_t[keep])
    x = torch.from_numpy(np.concatenate(xs)[:, None].astype(np.float32))
    meta = {"song": songs, "time": np.concatenate(times), "sample_rate": CHORD_SR}
    return MIRData(x, torch.from_numpy(np.concatenate(ys)), meta)


# ======================================================================== SMT-Drums (drums)

_DRUM_ALIASES: dict[str, int] = {
    "kd": 0, "bd": 0, "kick": 0, "bass_drum": 0, "0": 0,
    "sd": 1, "snare": 1, "snare_drum": 1, "1": 1,
    "hh": 2, "hihat": 2, "hi_hat": 2, "chh": 2, "ohh": 2, "2": 2,
}  # fmt: skip


def read_smt_annotation(path: str | Path) -> list[np.ndarray]:
    """Onset times (s) of kick, snare and hi-hat from an SMT-Drums annotation file.

    ``.xml`` (the dataset's ``annotation_xml`` files): every ``<event>`` element with an
    ``<onsetSec>`` time and an ``<instrument>`` of ``KD``, ``SD`` or ``HH``. ``.txt``/``.csv``
    (a common conversion): one ``time label`` pair per line, label ``KD``/``SD``/``HH``,
    ``kick``/``snare``/``hihat`` or ``0``/``1``/``2``. Other instruments are ignored.
    """
    path = require(Path(path), "drum annotation")
    onsets: list[list[float]] = [[], [], []]
    if path.suffix.lower() == ".xml":
        tree = ET.parse(path)
        for event in tree.getroot().iter("event"):
            time_el, inst_el = event.find("onsetSec"), event.find("instrument")
            if time_el is None or inst_el is None or time_el.text is None:
                continue
            drum = _DRUM_ALIASES.get(normalise_name(inst_el.text or ""))
            if drum is not None:
                onsets[drum].append(float(time_el.text))
    else:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.replace(",", " ").split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) < 2:
                    raise ValueError(f"{path}:{n}: expected 'time label', got {line.strip()!r}")
                drum = _DRUM_ALIASES.get(normalise_name(parts[1]))
                if drum is not None:
                    onsets[drum].append(float(parts[0]))
    return [np.sort(np.asarray(t, dtype=np.float64)) for t in onsets]


def _smt_annotation_for(audio: Path, root: Path) -> Path:
    """The annotation of a mix: ``annotation_xml/<stem>.xml``, a ``.txt`` twin, or a sibling."""
    candidates: Sequence[Path] = (
        root / "annotation_xml" / f"{audio.stem}.xml",
        root / "annotation_txt" / f"{audio.stem}.txt",
        audio.with_suffix(".xml"),
        audio.with_suffix(".txt"),
    )
    for c in candidates:
        if c.exists():
            return c
    raise DatasetNotFoundError(
        f"annotation for {audio.name} not found: expected {candidates[0]} (or {candidates[1]})"
    )


def load_smt_drums(root: str | Path, task: str = "drum", mixes_only: bool = True) -> MIRData:
    """Mel windows with per-frame onset targets from IDMT-SMT-Drums.

    Layout (IDMT-SMT-DRUMS-V2): ``root/audio/<name>#MIX.wav`` (44.1 kHz mixes, next to
    single-instrument ``#KD``/``#SD``/``#HH`` files) and ``root/annotation_xml/<name>#MIX.xml``.
    With ``mixes_only`` only the ``#MIX`` files are used. ``task="drum"`` gives (N, 3) targets
    (kick, snare, hi-hat); ``task="onset"`` merges them into (N, 1), hits closer than 50 ms
    counting once. ``meta`` is as for the synthetic drums, plus ``file`` per clip.
    """
    if task not in ("drum", "onset"):
        raise ValueError(f"task must be 'drum' or 'onset', not {task!r}")
    root = Path(root)
    audio_dir = require(root / "audio", "SMT-Drums audio folder")
    files = sorted(p for p in audio_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if mixes_only:
        files = [p for p in files if p.stem.upper().endswith("#MIX")]
    if not files:
        raise DatasetNotFoundError(f"no drum mix (*#MIX.wav) found in {audio_dir}")
    mels, onsets = [], []
    for audio in files:
        per_drum = read_smt_annotation(_smt_annotation_for(audio, root))
        mels.append(drum_features(load_audio(audio, DRUM_SR)))
        if task == "onset":
            onsets.append([merge_onsets(np.concatenate(per_drum), tolerance=0.05)])
        else:
            onsets.append(per_drum)
    data = drum_windows(mels, onsets, DRUM_CONTEXT, DRUM_SR / DRUM_HOP)
    data.meta["file"] = [p.name for p in files]
    return data

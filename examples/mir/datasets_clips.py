"""Loaders of labelled recordings cut into chunks: NSynth notes, VocalSet and URMP/MedleyDB.

Each returns the :class:`~examples.mir.features.MIRData` of its task (pitch, singing,
instrument); the helpers they share with the other loaders are in :mod:`examples.mir.datasets`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from .datasets import AUDIO_EXTENSIONS, DatasetNotFoundError, load_audio, normalise_name, require
from .features import CREPE_FRAME, CREPE_SR, MIRData, normalize_frames, pitch_in_range, pitch_target
from .models import INSTRUMENTS, TECHNIQUES

__all__ = ["load_instruments", "load_nsynth", "load_vocalset"]


def _chunks(y: np.ndarray, length: int, min_rms: float) -> list[np.ndarray]:
    """Non-overlapping chunks of ``length`` samples, dropping near-silent ones.

    A file shorter than one chunk is zero-padded to one chunk rather than dropped.
    """
    if y.size < length:
        y = np.pad(y, (0, length - y.size))
    n = y.size // length
    out = []
    for i in range(n):
        c = y[i * length : (i + 1) * length]
        if np.sqrt(np.mean(c**2)) >= min_rms:
            out.append(c)
    return out


# =============================================================================== NSynth (pitch)


def load_nsynth(
    root: str | Path,
    notes_per_instrument: int | None = 10,
    seconds: float = 2.0,
    hop: int = CREPE_FRAME,
    seed: int = 0,
    min_rms: float = 0.0,
) -> MIRData:
    """CREPE frames and soft pitch targets from an NSynth split.

    Layout (as distributed): ``root/examples.json`` (a dict keyed by note name, each entry with
    at least ``pitch`` (MIDI) and ``instrument_str``) and ``root/audio/<note name>.wav``
    (16 kHz, 4 s). As in the paper, ``notes_per_instrument`` notes are drawn per instrument
    (``None`` keeps all), each note is cut to its first ``seconds``, and every 1024-sample frame
    (every ``hop`` samples) is labelled with the note's pitch. Notes outside the 360-bin range
    (C1 to about C7) are skipped. ``meta``: ``f0_hz``, ``note`` and ``instrument`` per frame.
    """
    root = Path(root)
    meta_path = require(root / "examples.json", "NSynth metadata (examples.json)")
    audio_dir = require(root / "audio", "NSynth audio folder")
    with open(meta_path, encoding="utf-8") as f:
        notes: dict[str, dict] = json.load(f)
    by_instrument: dict[str, list[str]] = defaultdict(list)
    for name, info in sorted(notes.items()):
        f0 = 440.0 * 2.0 ** ((float(info["pitch"]) - 69.0) / 12.0)
        if pitch_in_range(np.array([f0]))[0]:
            by_instrument[str(info.get("instrument_str", info.get("instrument", "?")))].append(name)
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for inst in sorted(by_instrument):
        names = by_instrument[inst]
        if notes_per_instrument is not None and len(names) > notes_per_instrument:
            pick = rng.choice(len(names), notes_per_instrument, replace=False)
            names = [names[i] for i in sorted(pick)]
        chosen.extend(names)
    if not chosen:
        raise ValueError(f"no NSynth note with a pitch inside the CREPE range in {meta_path}")
    frames, f0s, note_ids, insts = [], [], [], []
    n_keep = int(seconds * CREPE_SR)
    for name in chosen:
        y = load_audio(audio_dir / f"{name}.wav", CREPE_SR)[:n_keep]
        if y.size < CREPE_FRAME:
            y = np.pad(y, (0, CREPE_FRAME - y.size))
        n_frames = 1 + (y.size - CREPE_FRAME) // hop
        idx = np.arange(n_frames)[:, None] * hop + np.arange(CREPE_FRAME)[None, :]
        fr = y[idx]
        fr = fr[np.sqrt(np.mean(fr**2, axis=1)) >= min_rms]
        info = notes[name]
        f0 = 440.0 * 2.0 ** ((float(info["pitch"]) - 69.0) / 12.0)
        frames.append(fr)
        f0s.append(np.full(len(fr), f0))
        note_ids.extend([name] * len(fr))
        insts.extend([str(info.get("instrument_str", "?"))] * len(fr))
    x = normalize_frames(np.concatenate(frames).astype(np.float64)).astype(np.float32)
    f0_hz = np.concatenate(f0s)
    meta = {"f0_hz": f0_hz, "note": note_ids, "instrument": insts, "sample_rate": CREPE_SR}
    return MIRData(torch.from_numpy(x[:, None, :]), pitch_target(f0_hz), meta)


# ======================================================================= VocalSet (singing)

_TECHNIQUE_ALIASES: dict[str, str] = {
    **{t: t for t in TECHNIQUES},
    "fry": "vocal_fry",
    "liptrill": "lip_trill",
    "lip_trills": "lip_trill",
    "inhale": "inhaled",
    "straight_tone": "straight",
}


def load_vocalset(
    root: str | Path,
    seconds: float = 3.0,
    sr: int = 44100,
    singers: Iterable[str] | None = None,
    min_rms: float = 1e-3,
) -> MIRData:
    """3-second excerpts labelled with one of VocalSet's 10 techniques.

    Layout (VocalSet's ``FULL`` folder): ``root/<singer>/<context>/<technique>/*.wav``, e.g.
    ``root/f1/arpeggios/belt/f1_arpeggios_belt_c_a.wav``; the technique is the wav's parent
    folder and the singer is the first folder named like ``f1`` or ``m11``. Folders of other
    techniques (``fast_forte``, ``messa``, ...) are ignored. Files are cut into non-overlapping
    ``seconds`` chunks at ``sr``; near-silent chunks are dropped. ``singers`` keeps only those
    singers (VocalSet's split is by singer). ``meta``: ``singer`` and ``file`` per example.
    All excerpts are held in memory as float32 (the whole of VocalSet at 44.1 kHz is about
    6 GB), so load a subset of ``singers`` on a small machine.
    """
    root = require(Path(root), "VocalSet folder")
    keep_singers = {s.lower() for s in singers} if singers is not None else None
    length = int(round(seconds * sr))
    xs, labels, singer_of, file_of = [], [], [], []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        technique = _TECHNIQUE_ALIASES.get(normalise_name(path.parent.name))
        if technique is None:
            continue
        parts = path.relative_to(root).parts[:-1]
        singer = next((p.lower() for p in parts if re.fullmatch(r"[fm]\d+", p.lower())), "?")
        if keep_singers is not None and singer not in keep_singers:
            continue
        for chunk in _chunks(load_audio(path, sr), length, min_rms):
            xs.append(chunk)
            labels.append(TECHNIQUES.index(technique))
            singer_of.append(singer)
            file_of.append(str(path.relative_to(root)))
    if not xs:
        raise DatasetNotFoundError(
            f"no audio of the techniques {TECHNIQUES} found under {root} "
            "(expected <singer>/<context>/<technique>/*.wav)"
        )
    meta = {"singer": singer_of, "file": file_of, "labels": TECHNIQUES, "sample_rate": sr}
    x = torch.from_numpy(np.stack(xs)[:, None, :])
    return MIRData(x, torch.tensor(labels, dtype=torch.int64), meta)


# =========================================================== URMP / MedleyDB (instruments)

_INSTRUMENT_ALIASES: dict[str, str] = {
    **{i: i for i in INSTRUMENTS},
    # URMP file-name abbreviations (AuSep_1_vn_01_Jupiter.wav)
    "vn": "violin",
    "va": "viola",
    "vc": "cello",
    "db": "double_bass",
    "fl": "flute",
    "ob": "oboe",
    "cl": "clarinet",
    "sax": "saxophone",
    "bn": "bassoon",
    "tpt": "trumpet",
    "hn": "horn",
    "tbn": "trombone",
    "tba": "tuba",
    # common folder names (MedleyDB instrument labels and plain English)
    "contrabass": "double_bass",
    "violoncello": "cello",
    "french_horn": "horn",
    "alto_saxophone": "saxophone",
    "tenor_saxophone": "saxophone",
    "baritone_saxophone": "saxophone",
    "soprano_saxophone": "saxophone",
}


_URMP_TRACK = re.compile(r"AuSep_\d+_([A-Za-z]+)_", re.IGNORECASE)


def _instrument_of(path: Path, root: Path) -> str | None:
    """Instrument of a file: a known folder name on its path, else URMP's ``AuSep_<n>_<abbr>_``."""
    for part in reversed(path.relative_to(root).parts[:-1]):
        inst = _INSTRUMENT_ALIASES.get(normalise_name(part))
        if inst is not None:
            return inst
    match = _URMP_TRACK.match(path.stem)
    return _INSTRUMENT_ALIASES.get(match.group(1).lower()) if match else None


def load_instruments(
    root: str | Path, seconds: float = 1.5, sr: int = 22050, min_rms: float = 1e-3
) -> MIRData:
    """1.5-second excerpts of isolated instrument tracks, labelled with the 13 URMP instruments.

    Two layouts work, also mixed: a folder per instrument (``root/violin/*.wav``, or any
    depth, e.g. ``root/medleydb/flute/x.wav``; URMP abbreviations and common MedleyDB names
    such as ``french horn`` are accepted), or URMP separated tracks whose name carries the
    abbreviation (``root/01_Jupiter_vn_vc/AuSep_1_vn_01_Jupiter.wav``). Files of other
    instruments are ignored. Near-silent chunks are dropped (the paper removes silence).
    ``meta``: ``file`` per example.
    """
    root = require(Path(root), "instrument folder")
    length = int(round(seconds * sr))
    xs, labels, files = [], [], []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        inst = _instrument_of(path, root)
        if inst is None:
            continue
        for chunk in _chunks(load_audio(path, sr), length, min_rms):
            xs.append(chunk)
            labels.append(INSTRUMENTS.index(inst))
            files.append(str(path.relative_to(root)))
    if not xs:
        raise DatasetNotFoundError(
            f"no audio of the instruments {INSTRUMENTS} found under {root} "
            "(expected <instrument>/*.wav or URMP AuSep_<n>_<abbr>_*.wav files)"
        )
    meta = {"file": files, "labels": INSTRUMENTS, "sample_rate": sr}
    x = torch.from_numpy(np.stack(xs)[:, None, :])
    return MIRData(x, torch.tensor(labels, dtype=torch.int64), meta)

"""Loaders for the paper's real datasets, when they are already on disk (nothing is downloaded).

Each loader takes the dataset's root folder and returns the same
:class:`~examples.mir.features.MIRData` as the synthetic generator of the same task, so the
models and metrics do not care where the data came from. Missing folders or files raise
:class:`DatasetNotFoundError` naming the path that was expected. Expected layouts are
documented per loader and in ``docs/examples.md``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .features import (
    CHORD_FRAMES,
    CHORD_HOP,
    CHORD_SR,
    CREPE_FRAME,
    CREPE_SR,
    DRUM_CONTEXT,
    DRUM_HOP,
    DRUM_SR,
    MIRData,
    center_windows,
    chord_features,
    drum_features,
    drum_windows,
    merge_onsets,
    normalize_frames,
    pitch_in_range,
    pitch_target,
)
from .models import INSTRUMENTS, TECHNIQUES

__all__ = [
    "DatasetNotFoundError",
    "chord_class",
    "load_audio",
    "load_chords",
    "load_instruments",
    "load_nsynth",
    "load_smt_drums",
    "load_vocalset",
    "read_lab",
    "read_smt_annotation",
]

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".aiff", ".aif")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file the loader needs is not on disk."""


def _require(path: Path, what: str) -> Path:
    """Return ``path`` if it exists, else raise a :class:`DatasetNotFoundError` naming it."""
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}")
    return path


def load_audio(path: str | Path, sr: int) -> np.ndarray:
    """Read an audio file as mono float32 at ``sr`` Hz (channels averaged, resampled if needed)."""
    import soundfile as sf

    path = _require(Path(path), "audio file")
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    y = data.mean(axis=1)
    if file_sr != sr:
        import librosa

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr)
    return np.ascontiguousarray(y, dtype=np.float32)


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


def _normalise_name(name: str) -> str:
    """Lower-case a folder or label name and turn spaces and dashes into underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


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
    meta_path = _require(root / "examples.json", "NSynth metadata (examples.json)")
    audio_dir = _require(root / "audio", "NSynth audio folder")
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
    root = _require(Path(root), "VocalSet folder")
    keep_singers = {s.lower() for s in singers} if singers is not None else None
    length = int(round(seconds * sr))
    xs, labels, singer_of, file_of = [], [], [], []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        technique = _TECHNIQUE_ALIASES.get(_normalise_name(path.parent.name))
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
        inst = _INSTRUMENT_ALIASES.get(_normalise_name(part))
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
    root = _require(Path(root), "instrument folder")
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
    path = _require(Path(path), "chord annotation")
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
    audio_dir = _require(Path(audio_dir), "chord audio folder")
    label_dir = _require(Path(label_dir), "chord annotation folder")
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
    path = _require(Path(path), "drum annotation")
    onsets: list[list[float]] = [[], [], []]
    if path.suffix.lower() == ".xml":
        tree = ET.parse(path)
        for event in tree.getroot().iter("event"):
            time_el, inst_el = event.find("onsetSec"), event.find("instrument")
            if time_el is None or inst_el is None or time_el.text is None:
                continue
            drum = _DRUM_ALIASES.get(_normalise_name(inst_el.text or ""))
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
                drum = _DRUM_ALIASES.get(_normalise_name(parts[1]))
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
    audio_dir = _require(root / "audio", "SMT-Drums audio folder")
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

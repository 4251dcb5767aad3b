"""Real-dataset loaders, on tiny fixtures written here in each dataset's on-disk format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from examples.mir import datasets, datasets_annotated, datasets_clips
from examples.mir.datasets import DatasetNotFoundError
from examples.mir.features import CHORD_HOP, CHORD_SR, DRUM_HOP, DRUM_SR, PITCH_CENTS, hz_to_cents
from examples.mir.models import INSTRUMENTS, TECHNIQUES


def _tone(f0: float, seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _write(path: Path, y: np.ndarray, sr: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr)
    return path


# ----------------------------------------------------------------------------------- NSynth


def _nsynth(root: Path) -> dict[str, dict]:
    notes = {
        "guitar_acoustic_001-060-100": {"pitch": 60, "instrument_str": "guitar_acoustic_001"},
        "guitar_acoustic_001-064-050": {"pitch": 64, "instrument_str": "guitar_acoustic_001"},
        "bass_synthetic_009-040-075": {"pitch": 40, "instrument_str": "bass_synthetic_009"},
        "mallet_acoustic_002-120-100": {"pitch": 120, "instrument_str": "mallet_acoustic_002"},
    }
    for name, info in notes.items():
        info.update({"note_str": name, "sample_rate": 16000, "velocity": 100})
        f0 = 440.0 * 2 ** ((info["pitch"] - 69) / 12)
        _write(root / "audio" / f"{name}.wav", _tone(min(f0, 7000), 4.0, 16000), 16000)
    (root / "examples.json").write_text(json.dumps(notes))
    return notes


def test_nsynth_frames_and_targets(tmp_path: Path) -> None:
    _nsynth(tmp_path)
    data = datasets_clips.load_nsynth(tmp_path, notes_per_instrument=None)
    # three notes in range (MIDI 120 is above the 360 bins), 2 s each: 31 frames of 1024
    assert data.inputs.shape == (3 * 31, 1, 1024)
    assert data.targets.shape == (93, 360)
    assert sorted(set(data.meta["note"])) == [
        "bass_synthetic_009-040-075",
        "guitar_acoustic_001-060-100",
        "guitar_acoustic_001-064-050",
    ]
    for note, f0, target in zip(data.meta["note"], data.meta["f0_hz"], data.targets, strict=True):
        midi = int(note.split("-")[1])
        assert f0 == pytest.approx(440.0 * 2 ** ((midi - 69) / 12))
        assert abs(PITCH_CENTS[int(target.argmax())] - hz_to_cents(f0)) <= 10.0
    x = data.inputs[:, 0]
    torch.testing.assert_close(x.std(dim=1, unbiased=False), torch.ones(93), atol=1e-3, rtol=0)


def test_nsynth_subsampling_per_instrument_and_hop(tmp_path: Path) -> None:
    _nsynth(tmp_path)
    data = datasets_clips.load_nsynth(tmp_path, notes_per_instrument=1, hop=512, seed=1)
    assert len(set(data.meta["instrument"])) == 2  # guitar and bass; the mallet is out of range
    assert len(set(data.meta["note"])) == 2
    assert data.n == 2 * (1 + (32000 - 1024) // 512)


def test_nsynth_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="examples.json"):
        datasets_clips.load_nsynth(tmp_path)
    _nsynth(tmp_path)
    (tmp_path / "audio" / "bass_synthetic_009-040-075.wav").unlink()
    with pytest.raises(DatasetNotFoundError, match="bass_synthetic_009-040-075.wav"):
        datasets_clips.load_nsynth(tmp_path)


# --------------------------------------------------------------------------------- VocalSet


def _vocalset(root: Path, sr: int = 8000) -> None:
    _write(
        root / "f1" / "arpeggios" / "belt" / "f1_arpeggios_belt_c_a.wav", _tone(300, 2.5, sr), sr
    )
    _write(
        root / "f1" / "long_tones" / "vibrato" / "f1_long_vibrato_a.wav", _tone(400, 1.2, sr), sr
    )
    _write(
        root / "m3" / "scales" / "vocal_fry" / "m3_scales_vocal_fry_a.wav", _tone(80, 0.5, sr), sr
    )
    _write(
        root / "m3" / "scales" / "fast_forte" / "m3_scales_fast_forte_a.wav", _tone(200, 2, sr), sr
    )
    _write(root / "m3" / "excerpts" / "spoken" / "silent.wav", np.zeros(sr, np.float32), sr)


def test_vocalset_labels_singers_and_chunks(tmp_path: Path) -> None:
    _vocalset(tmp_path)
    data = datasets_clips.load_vocalset(tmp_path, seconds=1.0, sr=8000)
    labels = [TECHNIQUES[i] for i in data.targets.tolist()]
    # 2.5 s belt -> 2 chunks, 1.2 s vibrato -> 1, 0.5 s fry -> padded to 1, silence dropped
    assert sorted(labels) == ["belt", "belt", "vibrato", "vocal_fry"]
    assert data.inputs.shape == (4, 1, 8000)
    assert sorted(set(data.meta["singer"])) == ["f1", "m3"]
    fry = labels.index("vocal_fry")
    assert torch.all(data.inputs[fry, 0, 4000:] == 0)
    only_m3 = datasets_clips.load_vocalset(tmp_path, seconds=1.0, sr=8000, singers=["M3"])
    assert [TECHNIQUES[i] for i in only_m3.targets.tolist()] == ["vocal_fry"]


def test_vocalset_resamples_and_errors(tmp_path: Path) -> None:
    _write(tmp_path / "f2" / "long_tones" / "straight" / "a.wav", _tone(440, 1.0, 22050), 22050)
    data = datasets_clips.load_vocalset(tmp_path, seconds=0.5, sr=8000)
    assert data.inputs.shape == (2, 1, 4000) and set(data.targets.tolist()) == {5}
    spectrum = np.abs(np.fft.rfft(data.inputs[0, 0].numpy()))
    assert abs(np.argmax(spectrum) * 8000 / 4000 - 440) <= 2
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        datasets_clips.load_vocalset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="technique"):
        datasets_clips.load_vocalset(tmp_path / "empty")


# ------------------------------------------------------------------------ URMP / MedleyDB


def test_instrument_folders_and_urmp_names(tmp_path: Path) -> None:
    sr = 8000
    _write(tmp_path / "violin" / "take1.wav", _tone(660, 2.0, sr), sr)
    _write(tmp_path / "medleydb" / "French Horn" / "stem.wav", _tone(220, 1.0, sr), sr)
    urmp = tmp_path / "URMP" / "01_Jupiter_vn_vc"
    _write(urmp / "AuSep_2_vc_01_Jupiter.wav", _tone(130, 1.0, sr), sr)
    _write(urmp / "AuMix_01_Jupiter_vn_vc.wav", _tone(130, 1.0, sr), sr)  # a mix: no label
    _write(tmp_path / "piano" / "x.wav", _tone(262, 1.0, sr), sr)  # not one of the 13
    data = datasets_clips.load_instruments(tmp_path, seconds=1.0, sr=sr)
    names = sorted(INSTRUMENTS[i] for i in data.targets.tolist())
    assert names == ["cello", "horn", "violin", "violin"]
    assert data.inputs.shape == (4, 1, sr)
    with pytest.raises(DatasetNotFoundError, match="instruments"):
        datasets_clips.load_instruments(tmp_path / "piano")


# -------------------------------------------------------------------- Beatles / Isophonics


def test_chord_class_reduction() -> None:
    cases = {
        "C": 0, "C:maj": 0, "A:min": 21, "A:min7": 21, "G:7": 7, "Bb:maj7/3": 10, "E:dim": 16,
        "F#:aug": 6, "Db:min/b3": 13, "N": 24, "X": None, "D:sus4": None, "C:5": None,
    }  # fmt: skip
    for label, expected in cases.items():
        assert datasets_annotated.chord_class(label) == expected, label
    assert datasets_annotated.chord_class("D:sus4", other="N") == 24


def test_chords_from_lab_and_audio(tmp_path: Path) -> None:
    labels = tmp_path / "chordlab" / "The Beatles" / "01_-_Please_Please_Me"
    audio = tmp_path / "audio" / "The Beatles" / "01_-_Please_Please_Me"
    labels.mkdir(parents=True)
    (labels / "01_-_Song.lab").write_text(
        "0.000000 1.000000 C\n1.000000\t2.000000\tA:min\n\n2.000000 2.500000 X\n2.5 3.0 N\n"
    )
    t = np.arange(3 * 44100) / 44100
    y = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) * (t < 1)
    y = y + sum(np.sin(2 * np.pi * f * t) for f in (220.0, 261.6, 329.6)) * ((t >= 1) & (t < 2))
    _write(audio / "01_-_Song.wav", (0.1 * y).astype(np.float32), 44100)
    data = datasets_annotated.load_chords(tmp_path / "audio", tmp_path / "chordlab")
    assert data.inputs.shape[1:] == (1, 105, 15)
    times, y_cls = data.meta["time"], data.targets.numpy()
    assert np.all(y_cls[times < 1.0] == 0)
    assert np.all(y_cls[(times >= 1.0) & (times < 2.0)] == 21)
    assert not np.any((times >= 2.0) & (times < 2.5))  # X frames are dropped
    assert np.all(y_cls[times >= 2.5] == 24)
    frame_t = np.arange(0, 3.0 + 1e-9, CHORD_HOP / CHORD_SR)
    assert data.n == len(frame_t) - int(((frame_t >= 2.0) & (frame_t < 2.5)).sum())
    every_4th = datasets_annotated.load_chords(tmp_path / "audio", tmp_path / "chordlab", stride=4)
    assert every_4th.n < data.n / 3
    assert set(data.meta["song"]) == {"The Beatles/01_-_Please_Please_Me/01_-_Song"}


def test_chords_errors(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "audio").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"\.lab"):
        datasets_annotated.load_chords(tmp_path / "audio", tmp_path / "labels")
    (tmp_path / "labels" / "song.lab").write_text("0 1 C\n")
    with pytest.raises(DatasetNotFoundError, match="song"):
        datasets_annotated.load_chords(tmp_path / "audio", tmp_path / "labels")
    (tmp_path / "labels" / "bad.lab").write_text("0 1\n")
    with pytest.raises(ValueError, match="start end label"):
        datasets_annotated.read_lab(tmp_path / "labels" / "bad.lab")
    with pytest.raises(DatasetNotFoundError, match="chord audio folder"):
        datasets_annotated.load_chords(tmp_path / "missing", tmp_path / "labels")


# ------------------------------------------------------------------------------- SMT-Drums

SMT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<instrumentRecording>
  <globalParameter>
    <audioFileName>RealDrum01_00#MIX.wav</audioFileName>
  </globalParameter>
  <transcription>
{events}
  </transcription>
</instrumentRecording>
"""


def _smt(root: Path) -> dict[str, list[float]]:
    hits = {"KD": [0.25, 1.0], "SD": [0.5, 1.5], "HH": [0.25, 0.75, 1.25]}
    events = "\n".join(
        f"    <event><pitch>0</pitch><onsetSec>{t}</onsetSec><offsetSec>{t + 0.1}</offsetSec>"
        f"<instrument>{inst}</instrument></event>"
        for inst, times in hits.items()
        for t in times
    )
    sr = 44100
    y = np.zeros(2 * sr, np.float32)
    rng = np.random.default_rng(0)
    for times in hits.values():
        for t in times:
            i = int(t * sr)
            y[i : i + 2000] += rng.standard_normal(2000).astype(np.float32) * np.exp(
                -np.arange(2000) / 300
            ).astype(np.float32)
    _write(root / "audio" / "RealDrum01_00#MIX.wav", 0.2 * y, sr)
    _write(root / "audio" / "RealDrum01_00#KD.wav", 0.1 * y, sr)  # single-drum track: skipped
    (root / "annotation_xml").mkdir(parents=True)
    (root / "annotation_xml" / "RealDrum01_00#MIX.xml").write_text(SMT_XML.format(events=events))
    return hits


def test_smt_drums_xml(tmp_path: Path) -> None:
    hits = _smt(tmp_path)
    per_drum = datasets_annotated.read_smt_annotation(
        tmp_path / "annotation_xml" / "RealDrum01_00#MIX.xml"
    )
    assert [p.tolist() for p in per_drum] == [hits["KD"], hits["SD"], hits["HH"]]
    data = datasets_annotated.load_smt_drums(tmp_path)
    n_frames = 1 + 2 * DRUM_SR // DRUM_HOP
    assert data.inputs.shape == (n_frames, 1, 64, 11)
    assert data.targets.shape == (n_frames, 3)
    fps = DRUM_SR / DRUM_HOP
    for h, name in enumerate(("KD", "SD", "HH")):
        expected = np.round(np.array(hits[name]) * fps).astype(int)
        assert np.flatnonzero(data.targets[:, h].numpy()).tolist() == expected.tolist()
    assert data.meta["file"] == ["RealDrum01_00#MIX.wav"]
    onset = datasets_annotated.load_smt_drums(tmp_path, task="onset")
    assert onset.targets.shape == (n_frames, 1)
    merged = onset.meta["onsets"][0][0]
    assert merged.tolist() == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5]  # kick + hat at 0.25 s merge


def test_smt_drums_txt_annotations_and_errors(tmp_path: Path) -> None:
    hits = _smt(tmp_path)
    for xml in (tmp_path / "annotation_xml").iterdir():
        xml.unlink()
    (tmp_path / "annotation_xml").rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"RealDrum01_00#MIX\.xml"):
        datasets_annotated.load_smt_drums(tmp_path)
    txt = tmp_path / "annotation_txt" / "RealDrum01_00#MIX.txt"
    txt.parent.mkdir()
    lines = [f"{t:.3f}\t{inst}" for inst, times in hits.items() for t in times]
    txt.write_text("\n".join(lines + ["0.9\tTT"]) + "\n")  # a tom: ignored
    data = datasets_annotated.load_smt_drums(tmp_path)
    assert [o.tolist() for o in data.meta["onsets"][0]] == [hits["KD"], hits["SD"], hits["HH"]]
    with pytest.raises(ValueError, match="task"):
        datasets_annotated.load_smt_drums(tmp_path, task="chord")
    with pytest.raises(DatasetNotFoundError, match="audio folder"):
        datasets_annotated.load_smt_drums(tmp_path / "nope")


def test_load_audio_mixes_channels_and_names_missing_files(tmp_path: Path) -> None:
    stereo = np.stack([_tone(100, 0.5, 8000), -_tone(100, 0.5, 8000) * 0], axis=1)
    path = _write(tmp_path / "stereo.wav", stereo, 8000)
    y = datasets.load_audio(path, 8000)
    assert y.shape == (4000,) and y.dtype == np.float32
    np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-4)
    with pytest.raises(DatasetNotFoundError, match="missing.wav"):
        datasets.load_audio(tmp_path / "missing.wav", 8000)

"""SoundFont-rendered data (examples.mir.render, soundfont, cache): determinism, cache, labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tinysoundfont")

from examples.mir import render, render_chords, render_drums, render_pitch  # noqa: E402
from examples.mir.cache import cache_key  # noqa: E402
from examples.mir.features import (  # noqa: E402
    CHORD_BINS_PER_OCTAVE,
    DRUM_HOP,
    DRUM_SR,
    PITCH_CENTS,
    hz_to_cents,
    split_counts,
)
from examples.mir.models import MIR_TASKS, TASKS  # noqa: E402
from examples.mir.soundfont import (  # noqa: E402
    Note,
    Renderer,
    default_soundfont,
    soundfont_fingerprint,
)

SMALL = {"instrument": 4, "singing": 4, "pitch": 12, "chord": 6, "drum": 1, "onset": 1}


def _size(task: str) -> str:
    """Tiny inputs where the size changes the data (waveforms, drum clip length)."""
    return "tiny" if task in ("instrument", "singing", "drum", "onset") else "quick"


@pytest.mark.parametrize("task", list(MIR_TASKS))
def test_rendering_is_deterministic_and_shaped_like_the_model_input(task: str) -> None:
    make = render.GENERATORS[task]
    first = make(SMALL[task], seed=3, size=_size(task))
    again = make(SMALL[task], seed=3, size=_size(task))
    other = make(SMALL[task], seed=4, size=_size(task))
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert not torch.equal(first.inputs[:1], other.inputs[:1])
    spec = TASKS[task].size(_size(task))
    assert tuple(first.inputs.shape[1:]) == spec.input_shape
    assert torch.isfinite(first.inputs).all() and first.inputs.abs().amax() > 0
    if task in ("drum", "onset"):
        assert first.meta["fps"] == pytest.approx(DRUM_SR / DRUM_HOP)
        assert first.targets.shape[1] == TASKS[task].n_outputs
    else:
        assert first.meta["sample_rate"] == spec.sample_rate


def test_renderer_plays_the_midi_key_it_is_given() -> None:
    sr = 16000
    audio = Renderer(None, sr).render([Note(0.0, 1.0, 0, 69, 100)], sr, {0: 73})  # flute A4
    spectrum = np.abs(np.fft.rfft(audio[2000:10000] * np.hanning(8000)))
    peak_hz = np.argmax(spectrum) * sr / 8000
    assert abs(1200 * np.log2(peak_hz / 440.0)) < 30


def test_pitch_frames_are_labelled_with_the_note_played() -> None:
    data = render_pitch.pitch(40, seed=0)
    keys = np.round(69 + 12 * np.log2(data.meta["f0_hz"] / 440.0))
    assert np.allclose(data.meta["f0_hz"], 440.0 * 2 ** ((keys - 69) / 12))
    label_bin = data.targets.argmax(dim=1).numpy()
    assert np.array_equal(label_bin, 5 * (keys.astype(int) - 24))  # 20-cent bins from C1
    assert np.allclose(PITCH_CENTS[label_bin], hz_to_cents(data.meta["f0_hz"]), atol=1e-6)
    assert len(set(data.meta["program"].tolist())) >= 8  # many instruments
    # frames are normalised and not silent
    frames = data.inputs[:, 0].numpy()
    assert np.allclose(frames.std(axis=1), 1.0, atol=1e-3)


def test_pitch_holds_out_one_program_of_every_family_that_the_soundfont_has() -> None:
    heldout = render_pitch.PITCH_HELDOUT_PROGRAMS
    families = [p // 8 for p in heldout]
    assert sorted(families) == list(range(14))  # one per melodic GM family
    assert set(heldout).isdisjoint(render_pitch.PITCH_TRAIN_PROGRAMS)
    assert set(heldout) | set(render_pitch.PITCH_TRAIN_PROGRAMS) == set(render_pitch.PITCH_PROGRAMS)
    per_family = np.bincount([p // 8 for p in render_pitch.PITCH_TRAIN_PROGRAMS], minlength=14)
    assert (per_family == 7).all()  # every family stays in training
    synth = Renderer(None, 16000)
    assert all(synth.has_program(p) for p in heldout)
    assert 0 < render_pitch.PITCH_HELDOUT_SHARE < 0.5


def test_pitch_renders_the_held_out_share_from_the_held_out_programs() -> None:
    train = render_pitch.PITCH_TRAIN_PROGRAMS
    data = render_pitch.pitch(48, seed=2, programs=train, heldout_share=0.25)
    program = data.meta["program"]
    held = np.isin(program, render_pitch.PITCH_HELDOUT_PROGRAMS)
    assert abs(held.mean() - 0.25) <= 4 / 48  # within one note (up to four frames) of 1/4
    assert set(program[~held].tolist()) <= set(train)
    seen = render_pitch.pitch(24, seed=2, programs=train)
    assert not np.isin(seen.meta["program"], render_pitch.PITCH_HELDOUT_PROGRAMS).any()
    # by default every melodic program plays, as before held-out timbres existed
    assert np.isin(
        render_pitch.pitch(60, seed=0).meta["program"], render_pitch.PITCH_HELDOUT_PROGRAMS
    ).any()
    with pytest.raises(ValueError, match="heldout_share"):
        render_pitch.pitch(4, programs=train, heldout_share=1.5)
    with pytest.raises(ValueError, match="none of the programs"):
        render_pitch.pitch(4, programs=(128,))


def test_pitch_splits_keep_held_out_timbres_for_the_test_split(tmp_path: Path) -> None:
    splits = render.make_dataset("pitch", 80, seed=0, cache_dir=tmp_path)
    heldout = render_pitch.PITCH_HELDOUT_PROGRAMS
    for part in (splits.train, splits.val):
        assert not np.isin(part.meta["program"], heldout).any()
    test = np.isin(splits.test.meta["program"], heldout)
    assert test.any() and not test.all()  # both held-out and seen timbres
    again = render.make_dataset("pitch", 80, seed=0, cache_dir=tmp_path)  # from the cache
    assert np.array_equal(again.test.meta["program"], splits.test.meta["program"])


def test_only_pitch_cache_keys_carry_the_held_out_programs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys: list[str] = []

    def capture(key: str, make: object, cache_dir: object = None) -> tuple[None, bool]:
        keys.append(key)
        return None, True

    monkeypatch.setattr(render, "cached_splits", capture)
    sf2 = soundfont_fingerprint(default_soundfont())
    for task in ("chord", "drum", "onset", "instrument", "singing", "pitch"):
        render.make_dataset(task, 20, seed=1, size="tiny", cache_dir=tmp_path)
        fields = {
            "task": task,
            "size": "tiny",
            "counts": split_counts(20, (0.7, 0.15, 0.15)),
            "seed": 1,
            "soundfont": sf2,
        }
        # the other tasks' keys are what they were before pitch held timbres out
        assert (keys[-1] == cache_key(fields)) is (task != "pitch")
    assert render.render_fields("chord") == {}
    assert render.render_fields("pitch")["heldout_programs"] == list(
        render_pitch.PITCH_HELDOUT_PROGRAMS
    )


def test_chord_patches_sound_the_labelled_triad() -> None:
    data = render_chords.chords(75, seed=1)
    labels = data.targets.numpy()
    per_semitone = CHORD_BINS_PER_OCTAVE // 12
    matched = quality = total = 0
    for patch, label in zip(data.inputs[:, 0].numpy(), labels, strict=True):
        if label == 24:
            continue
        energy = np.expm1(patch).mean(axis=1)  # per CQT bin, bin 0 = C1
        chroma = np.zeros(12)
        np.add.at(chroma, (np.arange(energy.size) // per_semitone) % 12, energy)
        root, third = label % 12, 3 if label >= 12 else 4
        triad = {root, (root + third) % 12, (root + 7) % 12}
        # harmonics add other pitch classes (the 5th partial is a major third), hence top 4
        matched += triad <= set(np.argsort(chroma)[-4:].tolist())
        quality += chroma[(root + third) % 12] > chroma[(root + 7 - third) % 12]
        total += 1
    assert matched / total > 0.75 and quality / total > 0.85  # major vs minor is audible


def test_drum_labels_land_on_the_midi_onset_frames() -> None:
    data = render_drums.drums(2, seed=5, size="tiny")
    fps = data.meta["fps"]
    mel = data.inputs[:, 0, :, 5].numpy()  # the centre frame of every window
    flux = np.r_[0.0, np.maximum(np.diff(mel, axis=0), 0).sum(axis=1)]
    for c, parts in enumerate(data.meta["onsets"]):
        rows = np.flatnonzero(data.meta["clip"] == c)
        for d, times in enumerate(parts):
            frames = np.flatnonzero(data.targets[rows, d].numpy())
            assert np.array_equal(frames, np.unique(np.round(times * fps).astype(int)))
    onset_rows = np.flatnonzero(data.targets.numpy().any(axis=1))
    near = np.unique(np.clip(np.r_[onset_rows, onset_rows + 1], 0, len(flux) - 1))
    quiet = np.setdiff1d(np.arange(len(flux)), np.r_[near, near - 2, near + 2])
    assert flux[near].mean() > 2 * flux[quiet].mean()  # the sound starts where the label is


def test_onsets_hold_every_note_start_of_drums_and_background() -> None:
    drums = render_drums.drums(2, seed=6, size="tiny")
    onsets = render_drums.onsets(2, seed=6, size="tiny")
    assert torch.equal(drums.inputs, onsets.inputs)
    for c in range(2):
        kit = np.concatenate(drums.meta["onsets"][c])
        (merged,) = onsets.meta["onsets"][c]
        assert merged.size >= np.unique(np.round(kit / 0.05)).size // 2
        assert all(np.min(np.abs(merged - t)) < 0.05 for t in kit)


def test_cache_is_hit_then_invalidated_by_another_soundfont(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    pitch = render.GENERATORS["pitch"]

    def counted(n: int, **kwargs: object) -> object:
        calls.append(n)
        return pitch(n, **kwargs)

    monkeypatch.setitem(render.GENERATORS, "pitch", counted)
    first = render.make_dataset("pitch", 12, seed=0, cache_dir=tmp_path)
    assert len(calls) == 3  # three splits rendered
    again = render.make_dataset("pitch", 12, seed=0, cache_dir=tmp_path)
    assert len(calls) == 3  # read back from disk
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        assert np.array_equal(a.meta["f0_hz"], b.meta["f0_hz"])
    edited = tmp_path / "edited.sf2"
    shutil.copyfile(default_soundfont(), edited)
    with edited.open("ab") as f:
        f.write(b"\0" * 8)  # other bytes: another cache entry
    render.make_dataset("pitch", 12, seed=0, soundfont=edited, cache_dir=tmp_path)
    assert len(calls) == 6
    render.make_dataset("pitch", 12, seed=1, cache_dir=tmp_path)
    assert len(calls) == 9


def test_cached_window_data_keeps_its_onsets(tmp_path: Path) -> None:
    first = render.make_dataset("drum", 3, seed=0, size="tiny", cache_dir=tmp_path)
    again = render.make_dataset("drum", 3, seed=0, size="tiny", cache_dir=tmp_path)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.meta["clip"], b.meta["clip"])
        assert len(a.meta["onsets"]) == len(b.meta["onsets"])
        for x, y in zip(a.meta["onsets"], b.meta["onsets"], strict=True):
            assert all(np.array_equal(u, v) for u, v in zip(x, y, strict=True))
        assert a.meta["fps"] == b.meta["fps"]


def test_a_missing_soundfont_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.sf2"):
        Renderer("nowhere.sf2", 16000)

"""Task data rendered from a General MIDI SoundFont: real instrument samples, exact labels.

Every generator takes ``(n, seed, size, soundfont)``, draws all its choices from
``np.random.default_rng(seed)`` (same seed, same arrays) and returns a
:class:`~examples.mir.features.MIRData` shaped like the synthetic data of :mod:`synth`, so the
models, metrics and runner take either. Labels come from the MIDI notes that were played.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cache import cache_key, cached_splits
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
    Splits,
    chord_features,
    drum_features,
    drum_windows,
    merge_onsets,
    normalize_frames,
    pitch_target,
)
from .models import INSTRUMENTS, TASKS, TECHNIQUES
from .soundfont import DRUM_CHANNEL, Note, Renderer, default_soundfont, soundfont_fingerprint

__all__ = [
    "DRUM_KEYS",
    "GENERATORS",
    "INSTRUMENT_PROGRAMS",
    "PITCH_HELDOUT_PROGRAMS",
    "PITCH_HELDOUT_SHARE",
    "PITCH_PROGRAMS",
    "PITCH_TRAIN_PROGRAMS",
    "chords",
    "drums",
    "instrument",
    "make_dataset",
    "onsets",
    "pitch",
    "render_fields",
    "singing",
    "split_counts",
]

SoundFont = str | Path | None

#: GM program and playable MIDI range of each URMP instrument (same order as INSTRUMENTS).
INSTRUMENT_PROGRAMS: Mapping[str, tuple[int, int, int]] = {
    "violin": (40, 55, 96),
    "viola": (41, 48, 88),
    "cello": (42, 36, 76),
    "double_bass": (43, 28, 60),
    "flute": (73, 60, 96),
    "oboe": (68, 58, 91),
    "clarinet": (71, 50, 89),
    "saxophone": (65, 49, 81),
    "bassoon": (70, 34, 75),
    "trumpet": (56, 54, 84),
    "horn": (60, 41, 77),
    "trombone": (57, 40, 72),
    "tuba": (58, 28, 58),
}
assert tuple(INSTRUMENT_PROGRAMS) == INSTRUMENTS

#: Playable MIDI range of each GM family of eight programs (0-111: the melodic ones),
#: clipped later to CREPE's range (MIDI 24-95).
_FAMILY_RANGES: tuple[tuple[int, int], ...] = (
    (21, 108), (48, 96), (36, 96), (40, 84), (28, 60), (36, 84), (36, 84), (40, 82),
    (46, 84), (60, 96), (48, 88), (36, 84), (36, 84), (48, 84),
)  # fmt: skip
PITCH_PROGRAMS: tuple[int, ...] = tuple(range(8 * len(_FAMILY_RANGES)))

#: Held-out timbres: pitch's training and validation splits never hold these programs, its test
#: split holds them beside the others. One per GM family, program ``8 * f + f % 8`` of family
#: ``f`` (the diagonal): every family keeps seven programs in training, so what is new at test
#: time is the instrument, not the kind of instrument, and each family gives up a different
#: slot, so no slot (first, variant, synth version...) dominates. In the default SoundFont:
#: piano 1, glockenspiel, organ 3, clean guitar, slap bass 1, pizzicato strings, synth voice,
#: synth brass 2, soprano sax, flute, calliope lead, space voice pad, brightness FX, bagpipe.
PITCH_HELDOUT_PROGRAMS: tuple[int, ...] = tuple(8 * f + f % 8 for f in range(len(_FAMILY_RANGES)))
#: The 98 melodic programs that pitch's training and validation splits are drawn from.
PITCH_TRAIN_PROGRAMS: tuple[int, ...] = tuple(
    p for p in PITCH_PROGRAMS if p not in PITCH_HELDOUT_PROGRAMS
)
#: Share of pitch's test frames played by held-out programs (the rest by training programs).
PITCH_HELDOUT_SHARE = 0.25
_PITCH_RENDER = 2  # bumped when pitch's splits change, so its old cache files are not reused
_PITCH_VELOCITIES = (40, 70, 100, 127)
_PITCH_KEYS = (24, 95)
_FRAMES_PER_NOTE = 4

#: GM drum keys: the three targets (kick, snare, hi-hat) and distractors (toms, cymbals ...).
DRUM_KEYS: Mapping[str, tuple[int, ...]] = {
    "kick": (35, 36),
    "snare": (38, 40),
    "hihat": (42, 44, 46),
    "other": (41, 43, 45, 47, 48, 50, 49, 51, 57, 54, 56, 39),
}
_BACKGROUND_PROGRAMS = (0, 4, 24, 25, 32, 33, 48, 52, 61, 80, 88)
_CHORD_PROGRAMS = (0, 1, 2, 4, 16, 17, 19, 24, 25, 26, 48, 49, 61, 88, 89)
_CHORD_MARGIN = 3  # frames rendered on each side of a chord patch, so neighbours bleed in
_VOICE_PROGRAMS = (52, 53, 54, 85)


def _size_check(task: str, size: str) -> tuple[int, ...]:
    """The input shape of ``task`` at ``size`` (raises for an unknown size)."""
    return TASKS[task].size(size).input_shape


def _midi_hz(key: np.ndarray | float) -> np.ndarray:
    """MIDI note number to Hz."""
    return 440.0 * 2.0 ** ((np.asarray(key, dtype=np.float64) - 69.0) / 12.0)


def _rms(x: np.ndarray) -> np.ndarray:
    """Root mean square along the last axis."""
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1))


def _level(rng: np.random.Generator, audio: np.ndarray, snr_db: float) -> np.ndarray:
    """Audio scaled to a random level with white noise at ``snr_db`` below its RMS."""
    rms = float(_rms(audio)) + 1e-9
    noisy = audio / rms + rng.standard_normal(audio.shape) * 10 ** (-snr_db / 20)
    return (0.1 * 10 ** (rng.uniform(-12, 0) / 20) * noisy).astype(np.float32)


# ============================================================================= pitch (CREPE)


def pitch(
    n: int,
    seed: int = 0,
    size: str = "quick",
    soundfont: SoundFont = None,
    programs: Sequence[int] | None = None,
    heldout_share: float = 0.0,
) -> MIRData:
    """1024-sample frames at 16 kHz of single GM notes, labelled on CREPE's 360 bins.

    NSynth's recipe on a SoundFont: one note of a random program of ``programs`` (default:
    every melodic one, 0-111; those the SoundFont lacks are skipped) at a random key of its
    family's range and a velocity of 40/70/100/127, held 1 s; up to four frames are cut at
    random from its first second, skipping the attack's first 10 ms and any frame 40 dB below
    the note's loudest (the silent tail). With ``heldout_share``, a note's program comes from
    :data:`PITCH_HELDOUT_PROGRAMS` instead whenever their frames are fewer than that share of
    the frames so far, so a test split holds about that share of held-out timbres.
    ``meta``: ``f0_hz``, ``program``.
    """
    _size_check("pitch", size)
    if not 0.0 <= heldout_share <= 1.0:
        raise ValueError(f"heldout_share must lie in [0, 1], got {heldout_share!r}")
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, CREPE_SR)
    pool = [p for p in (PITCH_PROGRAMS if programs is None else programs) if synth.has_program(p)]
    heldout = [p for p in PITCH_HELDOUT_PROGRAMS if synth.has_program(p)]
    if not pool or (heldout_share > 0 and not heldout):
        raise ValueError(f"{synth.path.name} has none of the programs to draw notes from")
    length = CREPE_SR + CREPE_FRAME
    hop = CREPE_FRAME // 4
    starts = np.arange(CREPE_SR // 100, length - CREPE_FRAME + 1, hop)
    frames, f0, prog = [], [], []
    n_heldout = 0
    while len(frames) < n:
        new = n_heldout < heldout_share * (len(frames) + 1)
        program = int(rng.choice(heldout if new else pool))
        lo, hi = _FAMILY_RANGES[program // 8]
        key = int(rng.integers(max(lo, _PITCH_KEYS[0]), min(hi, _PITCH_KEYS[1]) + 1))
        velocity = int(rng.choice(_PITCH_VELOCITIES))
        audio = synth.render([Note(0.0, 1.0, 0, key, velocity)], length, {0: program})
        cut = audio[starts[:, None] + np.arange(CREPE_FRAME)[None, :]]
        loud = _rms(cut)
        keep = np.flatnonzero(loud > max(loud.max() * 0.01, 1e-5))
        take = rng.permutation(keep)[:_FRAMES_PER_NOTE]
        for j in take[: n - len(frames)]:
            frames.append(cut[j] + 1e-4 * loud.max() * rng.standard_normal(CREPE_FRAME))
            f0.append(float(_midi_hz(key)))
            prog.append(program)
            n_heldout += int(new)
    x = normalize_frames(np.stack(frames)).astype(np.float32)
    f0_hz = np.asarray(f0)
    meta = {"f0_hz": f0_hz, "program": np.asarray(prog), "sample_rate": CREPE_SR}
    return MIRData(torch.from_numpy(x[:, None, :]), pitch_target(f0_hz), meta)


# ===================================================================== instrument and voice


def _phrase(
    rng: np.random.Generator, lo: int, hi: int, seconds: float, channel: int = 0
) -> list[Note]:
    """A random monophonic phrase: steps within a fifth, 0.15-0.6 s notes, some rests."""
    notes, t = [], rng.uniform(0.0, 0.15)
    key = int(rng.integers(lo, hi + 1))
    while t < seconds:
        length = rng.uniform(0.15, 0.6)
        velocity = int(rng.integers(50, 121))
        notes.append(Note(t, length * rng.uniform(0.7, 1.0), channel, key, velocity))
        t += length + (rng.uniform(0.05, 0.2) if rng.random() < 0.15 else 0.0)
        key = int(np.clip(key + rng.integers(-7, 8), lo, hi))
    return notes


def instrument(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """Phrases of the 13 URMP instruments as GM programs, balanced classes.

    Each clip (the size's length and rate: 1.5 s at 22.05 kHz for ``quick``) is a random
    phrase in the instrument's range, at a random level with a 20-45 dB noise floor.
    """
    shape = _size_check("instrument", size)
    sr = TASKS["instrument"].size(size).sample_rate
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, sr)
    labels = rng.permutation(np.arange(n) % len(INSTRUMENTS))
    seconds = shape[-1] / sr
    out = np.empty((n, shape[-1]), dtype=np.float32)
    for i, label in enumerate(labels):
        program, lo, hi = INSTRUMENT_PROGRAMS[INSTRUMENTS[label]]
        audio = synth.render(_phrase(rng, lo, hi, seconds), shape[-1], {0: program})
        out[i] = _level(rng, audio, rng.uniform(20, 45))
    meta = {"labels": INSTRUMENTS, "sample_rate": sr}
    return MIRData(torch.from_numpy(out[:, None, :]), torch.from_numpy(labels), meta)


def _technique(
    rng: np.random.Generator, name: str, n_samples: int, sr: int
) -> tuple[list[Note], np.ndarray, np.ndarray, float]:
    """Notes, pitch bend (semitones), amplitude curve and breath-noise share of a technique."""
    t = np.arange(n_samples) / sr
    seconds = n_samples / sr
    lo, hi = (36, 50) if name == "vocal_fry" else (48, 76)
    notes = _phrase(rng, lo, hi, seconds)
    if name in ("spoken", "inhaled"):
        notes = [Note(x.start, x.duration * 0.6, 0, x.key, x.velocity) for x in notes]
    if name == "belt":
        notes = [Note(x.start, x.duration, 0, min(x.key + 5, 84), 127) for x in notes]
    if name == "breathy":
        notes = [Note(x.start, x.duration, 0, x.key, max(30, x.velocity // 2)) for x in notes]
    bend = np.zeros(n_samples)
    amp = np.ones(n_samples)
    noise = 0.0
    phase = rng.uniform(0, 2 * np.pi)
    if name == "vibrato":
        bend = rng.uniform(0.4, 1.0) * np.sin(2 * np.pi * rng.uniform(5, 7) * t + phase)
    elif name == "trill":
        square = np.sign(np.sin(2 * np.pi * rng.uniform(5, 8) * t + phase))
        bend = rng.choice((1.0, 2.0)) * (square > 0)
    elif name == "trillo":
        amp = 1 - rng.uniform(0.6, 0.95) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(5, 8) * t))
    elif name == "lip_trill":
        amp = 1 - rng.uniform(0.6, 0.95) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(18, 30) * t))
        bend = rng.uniform(-2, 2) * np.sin(np.pi * t / seconds + phase)
        noise = 0.1
    elif name == "spoken":
        bend = -rng.uniform(1, 4) * ((t * rng.uniform(2, 4)) % 1.0)
        amp = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + phase) ** 2
        noise = 0.15
    elif name == "inhaled":
        bend = rng.uniform(1, 4) * ((t * rng.uniform(1, 2)) % 1.0)
        noise = rng.uniform(0.5, 0.8)
    elif name == "breathy":
        noise = rng.uniform(0.3, 0.6)
    elif name == "vocal_fry":
        pulses = np.sin(
            2
            * np.pi
            * np.cumsum(rng.uniform(30, 70) * (1 + 0.3 * rng.standard_normal(n_samples)))
            / sr
        )
        amp = np.clip(pulses, 0, None) ** 4
    return notes, np.clip(bend, -11.9, 11.9), amp, noise


def singing(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """The 10 VocalSet techniques sung by GM voice programs (choir, oohs, synth and solo vox).

    A technique is made with MIDI and light signal processing: pitch bend (vibrato, trill,
    glides of spoken and inhaled phrases), amplitude curves (trillo, lip trill, vocal fry
    pulses), velocity and register (belt, breathy) and breath noise (breathy, inhaled).
    """
    shape = _size_check("singing", size)
    sr = TASKS["singing"].size(size).sample_rate
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, sr)
    voices = [p for p in _VOICE_PROGRAMS if synth.has_program(p)]
    labels = rng.permutation(np.arange(n) % len(TECHNIQUES))
    out = np.empty((n, shape[-1]), dtype=np.float32)
    for i, label in enumerate(labels):
        notes, bend, amp, noise = _technique(rng, TECHNIQUES[label], shape[-1], sr)
        program = int(rng.choice(voices))
        voice = synth.render(notes, shape[-1], {0: program}, bend=bend, bend_range=12.0)
        voice = voice * amp / (float(_rms(voice * amp)) + 1e-9)
        breath = np.diff(rng.standard_normal(shape[-1] + 1))  # bright, hiss-like noise
        envelope = np.convolve(np.abs(voice), np.ones(512) / 512, "same")
        breath = breath * envelope / (float(_rms(breath * envelope)) + 1e-9)
        mix = np.sqrt(1 - noise) * voice + np.sqrt(noise) * breath
        out[i] = _level(rng, mix, rng.uniform(25, 45))
    meta = {"labels": TECHNIQUES, "sample_rate": sr}
    return MIRData(torch.from_numpy(out[:, None, :]), torch.from_numpy(labels), meta)


# ================================================================================== chords


def _voicing(rng: np.random.Generator, label: int) -> list[int]:
    """MIDI keys of chord class ``label`` (0-11 major, 12-23 minor roots; 24: N) in a voicing.

    A triad in a random inversion and octave, sometimes with a doubled root and a bass note;
    ``N`` is silence or one lone note.
    """
    if label == 24:
        return [int(rng.integers(48, 80))] if rng.random() < 0.4 else []
    root, third = label % 12, (3 if label >= 12 else 4)
    tones = [0, third, 7]
    inversion = int(rng.integers(0, 3))
    tones = tones[inversion:] + [x + 12 for x in tones[:inversion]]
    base = 12 * int(rng.integers(3, 6)) + root
    keys = [base + x for x in tones]
    if rng.random() < 0.5:
        keys.append(base + 12)
    if rng.random() < 0.5:
        keys.append(base - 12)
    return keys


def chords(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """CQT patches (105 x 15) of chords played by GM piano, organ, guitar, strings, pads...

    Segments of 21 frames are rendered back to back at 11025 Hz (random program, voicing,
    strum and velocity each), one CQT covers them all, and each segment's 15 central frames
    form a patch; ``N`` segments hold silence or a lone note. Classes are balanced.
    """
    _size_check("chord", size)
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, CHORD_SR)
    programs = [p for p in _CHORD_PROGRAMS if synth.has_program(p)]
    labels = rng.permutation(np.arange(n) % 25)
    seg_frames = CHORD_FRAMES + 2 * _CHORD_MARGIN
    seg = seg_frames * CHORD_HOP
    seconds = seg / CHORD_SR
    audio = np.zeros(n * seg, dtype=np.float32)
    for i, label in enumerate(labels):
        keys = _voicing(rng, int(label))
        strum = rng.uniform(0, 0.03)
        start = rng.uniform(0, 0.1)
        velocity = int(rng.integers(50, 121))
        notes = [
            Note(start + j * strum, seconds, 0, k, velocity) for j, k in enumerate(sorted(keys))
        ]
        part = synth.render(notes, seg, {0: int(rng.choice(programs))})
        audio[i * seg : (i + 1) * seg] = part * 10 ** (rng.uniform(-12, 0) / 20)
    audio = audio + 1e-4 * rng.standard_normal(audio.size).astype(np.float32)
    cqt = chord_features(audio, CHORD_SR)
    first = np.arange(n) * seg_frames + _CHORD_MARGIN
    idx = first[:, None] + np.arange(CHORD_FRAMES)[None, :]
    patches = np.ascontiguousarray(cqt[:, idx].transpose(1, 0, 2))[:, None]
    meta = {"sample_rate": CHORD_SR}
    return MIRData(torch.from_numpy(patches.astype(np.float32)), torch.from_numpy(labels), meta)


# ==================================================================== drums and onsets


def _drum_notes(rng: np.random.Generator, seconds: float) -> tuple[list[Note], dict[str, list]]:
    """A random GM drum pattern (16th grid, 80-170 BPM) and the onset times of each drum part."""
    step = 60.0 / rng.uniform(80, 170) / 4
    grid = rng.uniform(0, 4 * step) + step * np.arange(int(seconds / step) + 1)
    pos = np.arange(grid.size) % 16
    kick = (rng.random(16) < [0.9, 0, 0.2, 0.1, 0.2, 0, 0.3, 0.1] * 2)[pos]
    snare = np.isin(pos, (4, 12)) | (rng.random(grid.size) < 0.05)
    hat = (pos % int(rng.choice((1, 2, 4))) == 0) & (rng.random(grid.size) < 0.9)
    other = rng.random(grid.size) < rng.uniform(0.0, 0.12)
    notes: list[Note] = []
    times: dict[str, list] = {"kick": [], "snare": [], "hihat": [], "other": []}
    kit = {part: int(rng.choice(DRUM_KEYS[part])) for part in ("kick", "snare", "hihat")}
    for part, hits in (("kick", kick), ("snare", snare), ("hihat", hat), ("other", other)):
        for t in grid[hits] + rng.normal(0, 0.005, int(hits.sum())):
            if 0.01 <= t < seconds - 0.05:
                key = int(rng.choice(DRUM_KEYS[part])) if part == "other" else kit[part]
                accent = 1.0 if part != "hihat" or rng.random() < 0.5 else 0.5
                notes.append(Note(t, 0.1, DRUM_CHANNEL, key, int(rng.integers(60, 128) * accent)))
                times[part].append(float(t))
    return notes, times


def _drum_clips(
    n: int, seed: int, size: str, soundfont: SoundFont
) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """Mel features (n, 64, frames) of drum clips over a pitched background, and onset times.

    The background (bass, piano, guitar, strings... on two channels) plays random phrases; its
    note times are returned as ``"background"``.
    """
    _size_check("drum", size)
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, DRUM_SR)
    seconds = 2.0 if size == "tiny" else 4.0
    length = int(seconds * DRUM_SR)
    background = [p for p in _BACKGROUND_PROGRAMS if synth.has_program(p)]
    audio = np.empty((n, length), dtype=np.float32)
    onsets: list[dict[str, np.ndarray]] = []
    for i in range(n):
        notes, times = _drum_notes(rng, seconds)
        programs: dict[int, int | None] = {DRUM_CHANNEL: None}
        extra: list[Note] = []
        for channel in range(int(rng.integers(0, 3))):
            programs[channel] = int(rng.choice(background))
            gain = rng.uniform(0.3, 0.8)
            extra += [
                Note(x.start, x.duration, channel, x.key, max(1, int(x.velocity * gain)))
                for x in _phrase(rng, 36 + 12 * channel, 72 + 12 * channel, seconds, channel)
            ]
        times["background"] = [x.start for x in extra]
        audio[i] = _level(rng, synth.render(notes + extra, length, programs), rng.uniform(25, 50))
        onsets.append({k: np.sort(np.asarray(v, dtype=np.float64)) for k, v in times.items()})
    return drum_features(audio, DRUM_SR), onsets


def drums(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """Windows of rendered GM drum clips with kick / snare / hi-hat onset targets per frame.

    ``n`` counts clips (4 s; 2 s for ``tiny``); toms, cymbals and percussion play as
    distractors and pitched instruments as background, none of them a target.
    """
    mels, onsets = _drum_clips(n, seed, size, soundfont)
    parts = [[o["kick"], o["snare"], o["hihat"]] for o in onsets]
    data = drum_windows(list(mels), parts, DRUM_CONTEXT, DRUM_SR / DRUM_HOP)
    data.meta["labels"] = TASKS["drum"].labels
    return data


def onsets(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """The clips of :func:`drums` with every note onset (drums and background) as one target.

    Onsets closer than 50 ms (the evaluation window) count as one, the earliest.
    """
    mels, parts = _drum_clips(n, seed, size, soundfont)
    merged = [[merge_onsets(np.concatenate(list(o.values())), tolerance=0.05)] for o in parts]
    data = drum_windows(list(mels), merged, DRUM_CONTEXT, DRUM_SR / DRUM_HOP)
    data.meta["labels"] = ("onset",)
    return data


GENERATORS: Mapping[str, Callable[..., MIRData]] = {
    "instrument": instrument,
    "singing": singing,
    "pitch": pitch,
    "chord": chords,
    "drum": drums,
    "onset": onsets,
}


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Train / val / test counts of ``n`` examples in the given shares (each at least 1)."""
    if len(fractions) != 3 or min(fractions) <= 0:
        raise ValueError("fractions must be three positive numbers")
    total = sum(fractions)
    n_train = max(1, round(n * fractions[0] / total))
    n_val = max(1, round(n * fractions[1] / total))
    return n_train, n_val, max(1, n - n_train - n_val)


def render_fields(task: str) -> dict[str, Any]:
    """What changes ``task``'s rendered splits beyond its task, size, counts, seed and SoundFont.

    Pitch's held-out timbres and its render version; nothing for the other tasks, whose cache
    keys (and run settings) stay as they were.
    """
    if task != "pitch":
        return {}
    return {
        "pitch_render": _PITCH_RENDER,
        "heldout_programs": list(PITCH_HELDOUT_PROGRAMS),
        "heldout_share": PITCH_HELDOUT_SHARE,
    }


def _split_options(task: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Extra generator arguments of the train, val and test splits: pitch's program sets."""
    if task != "pitch":
        return {}, {}, {}
    seen = {"programs": PITCH_TRAIN_PROGRAMS}
    return seen, seen, {**seen, "heldout_share": PITCH_HELDOUT_SHARE}


def make_dataset(
    task: str,
    n: int,
    seed: int = 0,
    size: str = "quick",
    soundfont: SoundFont = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    cache_dir: str | Path | None = None,
) -> Splits:
    """Rendered train / val / test splits of ``n`` examples (clips for drums), cached on disk.

    Each split comes from its own child seed of ``seed``. The first call renders and writes
    ``cache_dir`` (default :func:`examples.mir.cache.default_cache_dir`); later calls with the
    same task, size, counts, seed and SoundFont bytes read the file back. Pitch's training and
    validation notes avoid :data:`PITCH_HELDOUT_PROGRAMS`; its test split holds
    :data:`PITCH_HELDOUT_SHARE` of frames played by them.
    """
    if task not in GENERATORS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(GENERATORS)}")
    counts = split_counts(n, fractions)
    path = Path(soundfont) if soundfont is not None else default_soundfont()
    fields = {
        "task": task,
        "size": size,
        "counts": counts,
        "seed": seed,
        "soundfont": soundfont_fingerprint(path),
        **render_fields(task),
    }

    def _make() -> Splits:
        children = np.random.SeedSequence(seed).spawn(3)
        gen = GENERATORS[task]
        return Splits(
            *(
                gen(count, seed=int(child.generate_state(1)[0]), size=size, soundfont=path, **opts)
                for count, child, opts in zip(counts, children, _split_options(task), strict=True)
            )
        )

    return cached_splits(cache_key(fields), _make, cache_dir)[0]

"""Rendered drum and onset data: GM drum patterns over pitched background phrases."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .audio import clip_seconds, random_level, sixteenth
from .features import DRUM_SR, MIRData, all_onsets, drum_features, drum_windows
from .models import TASKS
from .render_tones import phrase
from .soundfont import DRUM_CHANNEL, Note, Renderer, SoundFont

__all__ = ["DRUM_KEYS", "drums", "onsets"]

#: GM drum keys: the three targets (kick, snare, hi-hat) and distractors (toms, cymbals ...).
DRUM_KEYS: Mapping[str, tuple[int, ...]] = {
    "kick": (35, 36),
    "snare": (38, 40),
    "hihat": (42, 44, 46),
    "other": (41, 43, 45, 47, 48, 50, 49, 51, 57, 54, 56, 39),
}
_BACKGROUND_PROGRAMS = (0, 4, 24, 25, 32, 33, 48, 52, 61, 80, 88)


def _drum_notes(rng: np.random.Generator, seconds: float) -> tuple[list[Note], dict[str, list]]:
    """A random GM drum pattern (16th grid, 80-170 BPM) and the onset times of each drum part."""
    step = sixteenth(rng)
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
    TASKS["drum"].size(size)  # raises for an unknown size
    rng = np.random.default_rng(seed)
    synth = Renderer(soundfont, DRUM_SR)
    seconds = clip_seconds(size)
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
                for x in phrase(rng, 36 + 12 * channel, 72 + 12 * channel, seconds, channel)
            ]
        times["background"] = [x.start for x in extra]
        audio[i] = random_level(
            rng, synth.render(notes + extra, length, programs), rng.uniform(25, 50)
        )
        onsets.append({k: np.sort(np.asarray(v, dtype=np.float64)) for k, v in times.items()})
    return drum_features(audio, DRUM_SR), onsets


def drums(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """Windows of rendered GM drum clips with kick / snare / hi-hat onset targets per frame.

    ``n`` counts clips (4 s; 2 s for ``tiny``); toms, cymbals and percussion play as
    distractors and pitched instruments as background, none of them a target.
    """
    mels, onsets = _drum_clips(n, seed, size, soundfont)
    parts = [[o["kick"], o["snare"], o["hihat"]] for o in onsets]
    return drum_windows(list(mels), parts, labels=TASKS["drum"].labels)


def onsets(n: int, seed: int = 0, size: str = "quick", soundfont: SoundFont = None) -> MIRData:
    """The clips of :func:`drums` with every note onset (drums and background) as one target.

    Onsets closer than 50 ms (the evaluation window) count as one, the earliest.
    """
    mels, parts = _drum_clips(n, seed, size, soundfont)
    merged = all_onsets([list(o.values()) for o in parts])
    return drum_windows(list(mels), merged, labels=("onset",))

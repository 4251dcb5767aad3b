"""Rendered pitch data: CREPE frames of single notes of the GM programs, held-out timbres."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .audio import midi_to_hz, rms
from .features import CREPE_FRAME, CREPE_SR, MIRData, normalize_frames, pitch_target
from .models import TASKS
from .soundfont import Note, Renderer, SoundFont

__all__ = [
    "PITCH_HELDOUT_PROGRAMS",
    "PITCH_HELDOUT_SHARE",
    "PITCH_PROGRAMS",
    "PITCH_RENDER",
    "PITCH_TRAIN_PROGRAMS",
    "pitch",
]

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
PITCH_RENDER = 2  # bumped when pitch's splits change, so its old cache files are not reused
_PITCH_VELOCITIES = (40, 70, 100, 127)
_PITCH_KEYS = (24, 95)
_FRAMES_PER_NOTE = 4


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
    TASKS["pitch"].size(size)
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
    frames: list[np.ndarray] = []
    f0: list[float] = []
    prog: list[int] = []
    n_heldout = 0
    while len(frames) < n:
        new = n_heldout < heldout_share * (len(frames) + 1)
        program = int(rng.choice(heldout if new else pool))
        lo, hi = _FAMILY_RANGES[program // 8]
        key = int(rng.integers(max(lo, _PITCH_KEYS[0]), min(hi, _PITCH_KEYS[1]) + 1))
        velocity = int(rng.choice(_PITCH_VELOCITIES))
        audio = synth.render([Note(0.0, 1.0, 0, key, velocity)], length, {0: program})
        cut = audio[starts[:, None] + np.arange(CREPE_FRAME)[None, :]]
        loud = rms(cut)
        keep = np.flatnonzero(loud > max(loud.max() * 0.01, 1e-5))
        take = rng.permutation(keep)[:_FRAMES_PER_NOTE]
        for j in take[: n - len(frames)]:
            frames.append(cut[j] + 1e-4 * loud.max() * rng.standard_normal(CREPE_FRAME))
            f0.append(float(midi_to_hz(key)))
            prog.append(program)
            n_heldout += int(new)
    x = normalize_frames(np.stack(frames)).astype(np.float32)
    f0_hz = np.asarray(f0)
    meta = {"f0_hz": f0_hz, "program": np.asarray(prog), "sample_rate": CREPE_SR}
    return MIRData(torch.from_numpy(x[:, None, :]), pitch_target(f0_hz), meta)

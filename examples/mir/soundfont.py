"""Render note lists to mono audio with a General MIDI SoundFont (tinysoundfont, offline).

The default SoundFont is ``TimGM6mb.sf2``, the 6 MB General MIDI bank that the ``pretty_midi``
package ships; any ``.sf2`` file can be passed instead. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DRUM_CHANNEL",
    "Note",
    "Renderer",
    "SoundFont",
    "default_soundfont",
    "soundfont_fingerprint",
]

#: A SoundFont file, or None for :func:`default_soundfont`.
SoundFont = str | Path | None

#: GM percussion lives on MIDI channel 10 (index 9), bank 128 in a SoundFont.
DRUM_CHANNEL = 9
_DRUM_BANK = 128
_CHUNK = 256  # samples rendered between two pitch-bend updates


@dataclass(frozen=True)
class Note:
    """One note: start and length in seconds, MIDI channel, key and velocity (1-127)."""

    start: float
    duration: float
    channel: int
    key: int
    velocity: int


def default_soundfont() -> Path:
    """Path of the General MIDI SoundFont shipped in the ``pretty_midi`` package folder."""
    spec = importlib.util.find_spec("pretty_midi")  # located, not imported: no mido needed
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no SoundFont given and pretty_midi (which ships TimGM6mb.sf2) is not installed; "
            "pip install pretty_midi, or pass a .sf2 path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
    if not path.is_file():
        raise FileNotFoundError(f"the default SoundFont {path} is missing")
    return path


def soundfont_fingerprint(path: str | Path) -> str:
    """SHA-256 of the SoundFont's bytes: a cache key that changes whenever the file does."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Renderer:
    """A tinysoundfont synthesizer at one sample rate, reset between renders.

    ``programs`` maps a channel to a GM program (``None`` for the drum kit on
    :data:`DRUM_CHANNEL`); a program the SoundFont lacks raises ``ValueError``.
    """

    def __init__(self, soundfont: str | Path | None, sample_rate: int) -> None:
        import tinysoundfont

        self.path = Path(soundfont) if soundfont is not None else default_soundfont()
        if not self.path.is_file():
            raise FileNotFoundError(f"SoundFont not found: {self.path}")
        self.sample_rate = sample_rate
        self._synth = tinysoundfont.Synth(samplerate=sample_rate)
        self._sfid = self._synth.sfload(str(self.path))

    def has_program(self, program: int) -> bool:
        """Whether the SoundFont holds melodic GM ``program`` (0-127) in bank 0."""
        return self._synth.sfpreset_name(self._sfid, 0, program) is not None

    def render(
        self,
        notes: Sequence[Note],
        n_samples: int,
        programs: dict[int, int | None],
        bend: np.ndarray | None = None,
        bend_range: float = 2.0,
    ) -> np.ndarray:
        """Mono float32 audio of ``notes`` (``n_samples`` long) on the given channel programs.

        ``bend`` (semitones per sample, applied to every melodic channel, updated every 256
        samples) adds vibrato, trills and glides within ``+-bend_range`` semitones.
        """
        synth = self._synth
        synth.sounds_off()
        for channel, program in programs.items():
            try:
                if program is None:
                    synth.program_select(channel, self._sfid, _DRUM_BANK, 0, True)
                else:
                    synth.program_select(channel, self._sfid, 0, program)
            except RuntimeError as error:
                raise ValueError(f"{self.path.name} has no program {program}") from error
            synth.pitchbend_range(channel, bend_range)
            synth.pitchbend(channel, 8192)
        events = _events(notes, self.sample_rate, n_samples)
        out = np.zeros(n_samples, dtype=np.float32)
        pos = 0
        cuts = sorted({0, n_samples, *(e[0] for e in events)} | _bend_cuts(bend, n_samples))
        i = 0
        for stop in cuts[1:]:
            while i < len(events) and events[i][0] <= pos:
                _, on, ch, key, vel = events[i]
                (synth.noteon(ch, key, vel) if on else synth.noteoff(ch, key))
                i += 1
            if bend is not None:
                value = int(np.clip(8192 + bend[pos] / bend_range * 8192, 0, 16383))
                for channel, program in programs.items():
                    if program is not None:
                        synth.pitchbend(channel, value)
            if stop > pos:
                block = np.frombuffer(synth.generate(stop - pos), dtype=np.float32)
                out[pos:stop] = block.reshape(-1, 2).mean(axis=1)
            pos = stop
        synth.sounds_off()
        return out


def _events(
    notes: Sequence[Note], sr: int, n_samples: int
) -> list[tuple[int, bool, int, int, int]]:
    """Note-on and note-off events as (sample, on, channel, key, velocity), in time order."""
    events = []
    for n in notes:
        start = int(round(n.start * sr))
        if start >= n_samples:
            continue
        stop = min(n_samples, max(start + 1, int(round((n.start + n.duration) * sr))))
        events.append((start, True, n.channel, n.key, n.velocity))
        events.append((stop, False, n.channel, n.key, 0))
    # at one sample: note-offs before note-ons, so a repeated key sounds again
    return sorted(events, key=lambda e: (e[0], e[1]))


def _bend_cuts(bend: np.ndarray | None, n_samples: int) -> set[int]:
    """Sample positions where the pitch bend is updated (none without a bend curve)."""
    if bend is None:
        return set()
    if bend.shape != (n_samples,):
        raise ValueError(f"bend must hold one value per sample ({n_samples})")
    return set(range(0, n_samples, _CHUNK))

"""The task table: each task's model family, sizes, input, loss and metric (``TASKS``).

:data:`TASKS` maps a task name and a size (``"paper"``, ``"quick"``, ``"tiny"``) to a builder
configuration of :mod:`examples.mir.networks` (:mod:`examples.mir.ddsp` for ``ddsp``) and the
matching input; :func:`build_model` and
:func:`example_input` make a model and an input batch of any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from .ddsp import DDSP_FPS, DDSP_HOP, DDSP_SR, ddsp_decoder
from .ddsp_features import frame_classes
from .networks import chord_cnn, crepe, drum_transcriber, onset_detector, waveform_classifier

__all__ = [
    "CHORD_LABELS",
    "DRUM_NAMES",
    "INSTRUMENTS",
    "MIR_TASKS",
    "SIZES",
    "TECHNIQUES",
    "TASKS",
    "SizeSpec",
    "TaskSpec",
    "build_model",
    "count_parameters",
    "example_input",
]

SIZES: tuple[str, ...] = ("paper", "quick", "tiny")
DRUM_NAMES: tuple[str, ...] = ("kick", "snare", "hihat")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class SizeSpec:
    """One size of a task: builder arguments, per-example input shape and audio sample rate."""

    model_kwargs: Mapping[str, Any]
    input_shape: tuple[int, ...]
    sample_rate: int


@dataclass(frozen=True)
class TaskSpec:
    """A task of the paper: its model builder, output size, loss and available sizes."""

    name: str
    description: str
    builder: Callable[..., nn.Module]
    n_outputs: int  # classes or heads; ddsp: audio samples out per input frame
    # "cross_entropy" (class index targets), "bce" (multi-hot / soft targets) or "spectral"
    # (audio targets, examples.mir.ddsp.spectral_loss)
    loss: str = "cross_entropy"
    metric: str = "classification_error"  # name of the error in :mod:`examples.mir.metrics`
    sizes: Mapping[str, SizeSpec] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    # targets the data-driven criteria read, made from a batch of inputs (None: inputs alone);
    # ddsp: a class per frame, for the information criterion ranked per position
    criterion_targets: Callable[[torch.Tensor], torch.Tensor] | None = None

    def size(self, size: str) -> SizeSpec:
        """The :class:`SizeSpec` for ``size``, with a clear error for unknown sizes."""
        if size not in self.sizes:
            raise ValueError(f"unknown size {size!r} for task {self.name!r}; choose from {SIZES}")
        return self.sizes[size]


INSTRUMENTS: tuple[str, ...] = (
    "violin",
    "viola",
    "cello",
    "double_bass",
    "flute",
    "oboe",
    "clarinet",
    "saxophone",
    "bassoon",
    "trumpet",
    "horn",
    "trombone",
    "tuba",
)
TECHNIQUES: tuple[str, ...] = (
    "belt",
    "breathy",
    "inhaled",
    "lip_trill",
    "spoken",
    "straight",
    "trill",
    "trillo",
    "vibrato",
    "vocal_fry",
)
PITCH_ROOTS: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
CHORD_LABELS: tuple[str, ...] = (
    tuple(f"{r}:maj" for r in PITCH_ROOTS) + tuple(f"{r}:min" for r in PITCH_ROOTS) + ("N",)
)


def _classifier_sizes(n_classes: int, paper_sr: int, paper_len: int) -> dict[str, SizeSpec]:
    """Sizes of a waveform task: paper input, a 1.5 s / 22.05 kHz quick one, a 1 s / 8 kHz tiny."""

    def spec(width: float, sr: int, n: int, dropout: float) -> SizeSpec:
        kwargs = {"n_classes": n_classes, "n_samples": n, "width": width, "dropout": dropout}
        return SizeSpec(MappingProxyType(kwargs), (1, n), sr)

    return {
        "paper": spec(1.0, paper_sr, paper_len, 0.25),
        "quick": spec(0.25, 22050, 33075, 0.1),
        "tiny": spec(1 / 16, 8000, 8192, 0.1),
    }


def _fixed_sizes(
    paper: Mapping[str, Any],
    quick: Mapping[str, Any],
    tiny: Mapping[str, Any],
    shape: tuple[int, ...],
    sr: int,
) -> dict[str, SizeSpec]:
    """Sizes that share one input shape and differ only in builder arguments; narrow layers
    lose too much to heavy dropout, so the quick and tiny sizes use a dropout of 0.1."""
    small = {"dropout": 0.1}
    kwargs = {"paper": dict(paper), "quick": {**quick, **small}, "tiny": {**tiny, **small}}
    return {k: SizeSpec(MappingProxyType(v), shape, sr) for k, v in kwargs.items()}


def _drum_sizes() -> dict[str, SizeSpec]:
    """Sizes of the drum and onset models: 64-mel x 11-frame windows at 22.05 kHz."""
    return _fixed_sizes({"width": 1.0}, {"width": 1 / 16}, {"width": 1 / 64}, (1, 64, 11), 22050)


def _ddsp_sizes() -> dict[str, SizeSpec]:
    """Sizes of the DDSP decoder: paper (GRU 512, MLPs 512, 60 harmonics, 4 s phrases), quick
    (128, 128, 30 harmonics, 2 s) and tiny (16, 16, 8 harmonics, 1 s), at 250 frames a second."""

    def spec(width: int, harmonics: int, bands: int, layers: int, seconds: int) -> SizeSpec:
        kwargs = {
            "hidden": width,
            "gru": width,
            "harmonics": harmonics,
            "bands": bands,
            "mlp_layers": layers,
        }
        return SizeSpec(MappingProxyType(kwargs), (2, seconds * DDSP_FPS), DDSP_SR)

    return {
        "paper": spec(512, 60, 65, 3, 4),
        "quick": spec(128, 30, 65, 3, 2),
        "tiny": spec(16, 8, 17, 1, 1),
    }


def _table(*specs: TaskSpec) -> Mapping[str, TaskSpec]:
    """A read-only name -> spec mapping."""
    return MappingProxyType({spec.name: spec for spec in specs})


TASKS: Mapping[str, TaskSpec] = _table(
    TaskSpec(
        name="instrument",
        description="13 orchestral instruments from 1.5 s of 22.05 kHz audio",
        builder=waveform_classifier,
        n_outputs=13,
        sizes=_classifier_sizes(13, 22050, 33075),
        labels=INSTRUMENTS,
    ),
    TaskSpec(
        name="singing",
        description="10 singing techniques from 3 s of 44.1 kHz audio",
        builder=waveform_classifier,
        n_outputs=10,
        sizes=_classifier_sizes(10, 44100, 132300),
        labels=TECHNIQUES,
    ),
    TaskSpec(
        name="pitch",
        description="CREPE, 360 pitch bins from 1024-sample frames at 16 kHz",
        builder=crepe,
        n_outputs=360,
        loss="bce",
        metric="pitch_error",
        sizes=_fixed_sizes(
            {"capacity": "medium"}, {"capacity": 1}, {"capacity": "micro"}, (1, 1024), 16000
        ),
    ),
    TaskSpec(
        name="chord",
        description="25 major/minor/no-chord classes from 105-bin x 15-frame CQT patches",
        builder=chord_cnn,
        n_outputs=25,
        sizes=_fixed_sizes({"width": 1.0}, {"width": 0.5}, {"width": 0.125}, (1, 105, 15), 11025),
        labels=CHORD_LABELS,
    ),
    TaskSpec(
        name="drum",
        description="kick / snare / hi-hat onsets at the centre of 64-mel x 11-frame windows",
        builder=drum_transcriber,
        n_outputs=3,
        loss="bce",
        metric="onset_error",
        sizes=_drum_sizes(),
        labels=DRUM_NAMES,
    ),
    TaskSpec(
        name="onset",
        description="any-drum onsets at the centre of 64-mel x 11-frame windows",
        builder=onset_detector,
        n_outputs=1,
        loss="bce",
        metric="onset_error",
        sizes=_drum_sizes(),
        labels=("onset",),
    ),
    TaskSpec(
        name="ddsp",
        description="DDSP decoder: f0 and loudness at 250 frames/s to 16 kHz audio",
        builder=ddsp_decoder,
        n_outputs=DDSP_HOP,
        loss="spectral",
        metric="spectral_error",
        sizes=_ddsp_sizes(),
        criterion_targets=frame_classes,
    ),
)

#: The paper's six MIR tasks (``--task all``, the results tables); ``ddsp``, generative and
#: without an error in [0, 1], is run on its own (docs/generative.md).
MIR_TASKS: tuple[str, ...] = ("instrument", "singing", "pitch", "chord", "drum", "onset")


def _task(task: str) -> TaskSpec:
    """Look a task up with an error that lists the valid names."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    return TASKS[task]


def build_model(task: str, size: str = "paper", **overrides: Any) -> nn.Module:
    """Build the model of ``task`` at ``size`` ("paper", "quick" or "tiny").

    ``overrides`` replace builder arguments, e.g. ``build_model("pitch", capacity="full")``.
    """
    spec = _task(task)
    kwargs = {**spec.size(size).model_kwargs, **overrides}
    return spec.builder(**kwargs)


def example_input(task: str, size: str = "paper", batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A seeded random input batch of the right shape, e.g. for tracing or FLOP counting."""
    shape = _task(task).size(size).input_shape
    gen = torch.Generator().manual_seed(seed)
    if task == "ddsp":  # f0 of 110-880 Hz and loudness of -80 to -10 dB, per frame
        u = torch.rand(batch, *shape, generator=gen)
        return torch.stack([110 * 2 ** (3 * u[:, 0]), -80 + 70 * u[:, 1]], dim=1)
    return torch.randn(batch, *shape, generator=gen)

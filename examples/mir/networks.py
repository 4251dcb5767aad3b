"""The five MIR model families of the paper (section 4.1), built from plain PyTorch layers.

Every model is made only of ``Conv1d``/``Conv2d``/``BatchNorm``/``ReLU``/``Dropout``/``MaxPool``/
``Linear``/``Flatten`` so that a structured-pruning engine can trace and trim it, and every model
ends with its output layer (the drum model ends with one output ``Linear`` per drum head). Each
builder takes a ``width`` (or, for CREPE, ``capacity``) knob; :data:`examples.mir.models.TASKS`
maps a task and a size to a builder configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import nn

__all__ = [
    "CREPE_BASE_FILTERS",
    "CREPE_CAPACITIES",
    "ChordCNN",
    "Crepe",
    "DrumTranscriber",
    "WaveformClassifier",
    "chord_cnn",
    "crepe",
    "drum_transcriber",
    "onset_detector",
    "waveform_classifier",
]

#: CREPE's per-layer filter counts before multiplication by the capacity multiplier.
CREPE_BASE_FILTERS: tuple[int, ...] = (32, 4, 4, 4, 8, 16)
#: CREPE's named capacities and their multipliers; ``"micro"`` (x1) is ours, for smoke tests.
CREPE_CAPACITIES: Mapping[str, int] = MappingProxyType(
    {"full": 32, "large": 24, "medium": 16, "small": 8, "tiny": 4, "micro": 1}
)


def _scale(n: int, width: float) -> int:
    """Scale a channel count by ``width`` and keep at least one unit."""
    return max(1, round(n * width))


def _flat_size(features: nn.Module, shape: tuple[int, ...]) -> int:
    """Number of features ``features`` produces for one input of ``shape`` (0 if too short)."""
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            return features(torch.zeros(shape)).numel()
    except RuntimeError:  # a pooling or conv window longer than what is left of the input
        return 0
    finally:
        features.train(was_training)


# --------------------------------------------------------------------------------------------
# Waveform classifier (instrument and singing-technique classification, section 4.1.1)
# --------------------------------------------------------------------------------------------


class WaveformClassifier(nn.Module):
    """Four dilated 1-D conv blocks on raw audio, then four fully connected layers (logits).

    Each conv block is Conv1d -> BatchNorm1d -> ReLU -> MaxPool1d -> Dropout. The first block
    uses a long kernel with stride 8; later blocks use dilations 2, 4, 8 with length-preserving
    padding. Max-pooling (4, 4, 4, 8) keeps the flattened size small (about 8 frames for 1.5 s
    at 22.05 kHz, 32 frames for 3 s at 44.1 kHz). The softmax lives in the loss.
    """

    def __init__(
        self,
        n_classes: int,
        n_samples: int,
        channels: Sequence[int] = (64, 128, 192, 96),
        kernels: Sequence[int] = (64, 11, 11, 11),
        dilations: Sequence[int] = (1, 2, 4, 8),
        strides: Sequence[int] = (8, 1, 1, 1),
        pools: Sequence[int] = (4, 4, 4, 8),
        hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if not len(channels) == len(kernels) == len(dilations) == len(strides) == len(pools):
            raise ValueError("channels, kernels, dilations, strides and pools must align")
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, k, d, s, p in zip(channels, kernels, dilations, strides, pools, strict=True):
            layers += [
                nn.Conv1d(c_in, c_out, k, stride=s, dilation=d, padding=d * (k - 1) // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(p),
                nn.Dropout(dropout),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        flat = _flat_size(self.features, (1, 1, n_samples))
        if flat == 0:
            raise ValueError(f"n_samples={n_samples} is too short for this conv stack")
        dims = [flat, *hidden]
        head: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            head += [nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout)]
        head.append(nn.Linear(dims[-1], n_classes))
        self.classifier = nn.Sequential(*head)
        self.n_samples = n_samples
        self.flat_features = flat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map waveforms ``(B, 1, n_samples)`` to class logits ``(B, n_classes)``."""
        return self.classifier(self.features(x))


def waveform_classifier(
    n_classes: int, n_samples: int, width: float = 1.0, dropout: float = 0.25
) -> WaveformClassifier:
    """Build the waveform classifier; ``width`` scales every conv and hidden layer."""
    return WaveformClassifier(
        n_classes,
        n_samples,
        channels=[_scale(c, width) for c in (64, 128, 192, 96)],
        hidden=[_scale(h, width) for h in (256, 128, 64)],
        dropout=dropout,
    )


# --------------------------------------------------------------------------------------------
# CREPE (pitch estimation, section 4.1.2)
# --------------------------------------------------------------------------------------------


class Crepe(nn.Module):
    """CREPE: six conv blocks on 1024-sample frames at 16 kHz, then a Linear to 360 pitch bins.

    Blocks follow the reference layout: Conv1d -> ReLU -> BatchNorm1d -> MaxPool1d(2) ->
    Dropout(0.25). The first conv has kernel 512 and stride 4 (padding 254, which gives the
    256 outputs of "same" padding); the others have kernel 64 and padding 32, whose one extra
    output sample is absorbed by the following max-pool, so lengths go 256, 128, 64, 32, 16, 8
    -> 4 after the last pool. The output is logits; the sigmoid is in the BCE loss.
    """

    def __init__(self, filters: Sequence[int], dropout: float = 0.25, n_bins: int = 360) -> None:
        super().__init__()
        if len(filters) != 6:
            raise ValueError("CREPE has exactly six conv layers")
        kernels = (512, 64, 64, 64, 64, 64)
        strides = (4, 1, 1, 1, 1, 1)
        paddings = (254, 32, 32, 32, 32, 32)
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, k, s, p in zip(filters, kernels, strides, paddings, strict=True):
            layers += [
                nn.Conv1d(c_in, c_out, k, stride=s, padding=p),
                nn.ReLU(),
                nn.BatchNorm1d(c_out),
                nn.MaxPool1d(2),
                nn.Dropout(dropout),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(filters[-1] * 4, n_bins))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map normalised frames ``(B, 1, 1024)`` to pitch-bin logits ``(B, 360)``."""
        return self.classifier(self.features(x))


def crepe(capacity: str | int = "medium", dropout: float = 0.25) -> Crepe:
    """Build CREPE at a named capacity (full/large/medium/small/tiny/micro) or an int multiplier."""
    if isinstance(capacity, str):
        if capacity not in CREPE_CAPACITIES:
            raise ValueError(
                f"unknown CREPE capacity {capacity!r}; choose from {sorted(CREPE_CAPACITIES)}"
            )
        mult = CREPE_CAPACITIES[capacity]
    else:
        mult = int(capacity)
        if mult < 1:
            raise ValueError("capacity multiplier must be >= 1")
    return Crepe([f * mult for f in CREPE_BASE_FILTERS], dropout=dropout)


# --------------------------------------------------------------------------------------------
# Chord CNN (chord extraction, section 4.1.3)
# --------------------------------------------------------------------------------------------


class ChordCNN(nn.Module):
    """Small 2-D CNN on a CQT patch of 105 bins x 15 frames, 25 chord classes (logits).

    Three conv blocks (Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d -> Dropout) pool mostly along
    frequency ((3, 1), (3, 1), (2, 3)), leaving a 5 x 5 map, then Linear -> BatchNorm1d -> ReLU
    -> Dropout -> Linear to the classes. About 394 K parameters at width 1, close to the 416 K
    of the reference model in the paper's Table 1.
    """

    def __init__(
        self,
        n_classes: int = 25,
        n_bins: int = 105,
        n_frames: int = 15,
        channels: Sequence[int] = (32, 64, 64),
        hidden: int = 200,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        kernels = ((5, 5), (5, 3), (3, 3))
        pools = ((3, 1), (3, 1), (2, 3))
        if len(channels) != len(kernels):
            raise ValueError("ChordCNN has three conv layers")
        layers: list[nn.Module] = []
        c_in = 1
        for c_out, k, p in zip(channels, kernels, pools, strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, k, padding=(k[0] // 2, k[1] // 2)),
                nn.BatchNorm2d(c_out),
                nn.ReLU(),
                nn.MaxPool2d(p),
                nn.Dropout(dropout),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        flat = _flat_size(self.features, (1, 1, n_bins, n_frames))
        if flat == 0:
            raise ValueError(f"a {n_bins} x {n_frames} input is too small for this conv stack")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map CQT patches ``(B, 1, 105, 15)`` to chord logits ``(B, 25)``."""
        return self.classifier(self.features(x))


def chord_cnn(width: float = 1.0, n_classes: int = 25, dropout: float = 0.3) -> ChordCNN:
    """Build the chord CNN; ``width`` scales the conv channels and the hidden layer."""
    return ChordCNN(
        n_classes=n_classes,
        channels=[_scale(c, width) for c in (32, 64, 64)],
        hidden=_scale(200, width),
        dropout=dropout,
    )


# --------------------------------------------------------------------------------------------
# Drum transcription and onset detection (sections 4.1.4 and 4.1.5)
# --------------------------------------------------------------------------------------------


class DrumTranscriber(nn.Module):
    """Mel-spectrogram CNN with one 3-layer output head per target (drums or onsets).

    Input is a context window ``(B, 1, 64, T)`` of log-mel frames (T = 11 by default, about
    255 ms at 22.05 kHz / hop 512) and the model predicts the centre frame. Trunk: four blocks
    Conv2d(k=5, pad=2, stride 1) -> BatchNorm2d -> ReLU -> MaxPool2d((2, 1)) (frequency only,
    64 -> 4 bins), then two Linear -> BatchNorm1d -> ReLU -> Dropout layers. Each head is
    Linear -> ReLU -> Linear -> ReLU -> Linear(1); head logits are concatenated to ``(B, heads)``.
    """

    def __init__(
        self,
        n_heads: int = 3,
        n_mels: int = 64,
        context: int = 11,
        channels: int = 256,
        hidden: int = 256,
        head_hidden: Sequence[int] = (128, 64),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        if n_mels % 16:
            raise ValueError("n_mels must be divisible by 16 (four frequency poolings by 2)")
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(4):
            layers += [
                nn.Conv2d(c_in, channels, 5, padding=2),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.MaxPool2d((2, 1)),
            ]
            c_in = channels
        self.features = nn.Sequential(*layers)
        flat = channels * (n_mels // 16) * context
        self.neck = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        h1, h2 = head_hidden
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(hidden, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 1)
            )
            for _ in range(n_heads)
        )
        self.context = context
        self.n_mels = n_mels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map mel windows ``(B, 1, 64, T)`` to centre-frame onset logits ``(B, n_heads)``."""
        h = self.neck(self.features(x))
        return torch.cat([head(h) for head in self.heads], dim=1)


def drum_transcriber(
    width: float = 1.0, n_heads: int = 3, context: int = 11, dropout: float = 0.3
) -> DrumTranscriber:
    """Build the drum model (kick, snare, hi-hat heads); ``width`` scales every layer."""
    return DrumTranscriber(
        n_heads=n_heads,
        context=context,
        channels=_scale(256, width),
        hidden=_scale(256, width),
        head_hidden=(_scale(128, width), _scale(64, width)),
        dropout=dropout,
    )


def onset_detector(width: float = 1.0, context: int = 11, dropout: float = 0.3) -> DrumTranscriber:
    """Build the onset model: the drum trunk with a single detection head, output ``(B, 1)``."""
    return drum_transcriber(width=width, n_heads=1, context=context, dropout=dropout)

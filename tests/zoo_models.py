"""Small versions of real-world audio architectures, for the coverage zoo."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations
from zoo_separators import MaskSeparator, UNet1d
from zoo_transformers import ConformerBlock, EncoderClassifier, SpectrogramViT, SpeechEncoder


class CRNN(nn.Module):
    """Conv2d front end on a spectrogram, frequency folded into channels, biGRU, classifier."""

    def __init__(self, n_mels: int = 16, n_classes: int = 6) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 12, 3, padding=1)
        self.b1 = nn.BatchNorm2d(12)
        self.c2 = nn.Conv2d(12, 16, 3, padding=1)
        self.b2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d((2, 1))
        self.gru = nn.GRU(16 * (n_mels // 4), 20, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(40, n_classes)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.b1(self.c1(spec))))
        h = self.pool(torch.relu(self.b2(self.c2(h))))
        b, c, f, t = h.shape
        y, _ = self.gru(h.reshape(b, c * f, t).transpose(1, 2))
        return self.fc(y.mean(1))


class FoldedCRNN(nn.Module):
    """The usual CRNN layout: (batch, channels, freq, time) convs, time moved first and
    channels x freq flattened channel-major into a GRU (``permute`` then ``flatten``, or
    ``reshape`` then ``transpose``), or into a Linear before the GRU (``"linear"``)."""

    def __init__(self, fold: str = "permute", n_mels: int = 16) -> None:
        super().__init__()
        self.fold = fold
        self.c1 = nn.Conv2d(1, 12, 3, padding=1)
        self.b1 = nn.BatchNorm2d(12)
        self.c2 = nn.Conv2d(12, 16, 3, padding=1)
        self.b2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d((2, 1))
        width = 16 * (n_mels // 4)
        self.proj = nn.Linear(width, 24) if fold == "linear" else None
        self.gru = nn.GRU(24 if fold == "linear" else width, 20, batch_first=True)
        self.fc = nn.Linear(20, 6)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.b1(self.c1(spec))))
        h = self.pool(torch.relu(self.b2(self.c2(h))))
        b, c, f, t = h.shape
        if self.fold == "reshape":
            h = h.reshape(b, c * f, t).transpose(1, 2)
        else:
            h = h.permute(0, 3, 1, 2).flatten(2)
        if self.proj is not None:
            h = torch.relu(self.proj(h))
        y, _ = self.gru(h)
        return self.fc(y)


class WaveNet(nn.Module):
    """Dilated causal convs, gated tanh*sigmoid over chunked halves, residual and skip sums."""

    def __init__(self, res: int = 12, gate: int = 16, skip: int = 14, layers: int = 6) -> None:
        super().__init__()
        self.inp = nn.Conv1d(1, res, 1)
        self.dil = nn.ModuleList(
            nn.Conv1d(res, 2 * gate, 2, dilation=2 ** (i % 3)) for i in range(layers)
        )
        self.res = nn.ModuleList(nn.Conv1d(gate, res, 1) for _ in range(layers))
        self.skip = nn.ModuleList(nn.Conv1d(gate, skip, 1) for _ in range(layers))
        self.post = nn.Conv1d(skip, skip, 1)
        self.out = nn.Conv1d(skip, 8, 1)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = self.inp(wav)
        total = 0
        for dil, res, skp in zip(self.dil, self.res, self.skip, strict=True):
            d = dil.dilation[0]
            f, g = dil(F.pad(h, (d, 0))).chunk(2, dim=1)
            z = torch.tanh(f) * torch.sigmoid(g)
            h = h + res(z)
            total = total + skp(z)
        return self.out(torch.relu(self.post(torch.relu(total))))


class DDSPDecoder(nn.Module):
    """MLPs on pitch and loudness, a GRU, and several synthesis-parameter heads (dict output)."""

    def __init__(self, hidden: int = 24, harmonics: int = 10, bands: int = 8) -> None:
        super().__init__()

        def mlp(n_in: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Linear(n_in, hidden),
                nn.LayerNorm(hidden),
                nn.LeakyReLU(),
                nn.Linear(hidden, hidden),
                nn.LayerNorm(hidden),
                nn.LeakyReLU(),
            )

        self.f0_mlp = mlp(1)
        self.loud_mlp = mlp(1)
        self.gru = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.out_mlp = mlp(hidden + 2)
        self.amp = nn.Linear(hidden, 1)
        self.harm = nn.Linear(hidden, harmonics)
        self.noise = nn.Linear(hidden, bands)

    def forward(self, f0: torch.Tensor, loudness: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.cat([self.f0_mlp(f0), self.loud_mlp(loudness)], dim=-1)
        y, _ = self.gru(h)
        y = self.out_mlp(torch.cat([y, f0, loudness], dim=-1))
        return {
            "amplitude": torch.sigmoid(self.amp(y)),
            "harmonics": torch.softmax(self.harm(y), dim=-1),
            "noise": torch.sigmoid(self.noise(y)),
        }


class _TCNBlock(nn.Module):
    """Two weight-normed dilated causal convs with a residual connection."""

    def __init__(self, n_in: int, n_out: int, dilation: int, old_style: bool) -> None:
        super().__init__()
        self.pad = dilation * 2
        c1 = nn.Conv1d(n_in, n_out, 3, dilation=dilation)
        c2 = nn.Conv1d(n_out, n_out, 3, dilation=dilation)
        if old_style:
            with torch.no_grad():  # keeps the cached weight a leaf, so the model deep-copies
                self.c1 = nn.utils.weight_norm(c1)
                self.c2 = nn.utils.weight_norm(c2)
        else:
            self.c1 = parametrizations.weight_norm(c1)
            self.c2 = parametrizations.weight_norm(c2)
        self.down = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(F.pad(x, (self.pad, 0))))
        h = torch.relu(self.c2(F.pad(h, (self.pad, 0))))
        return torch.relu(h + (x if self.down is None else self.down(x)))


class TCN(nn.Module):
    """Temporal convolutional network mixing both weight-norm APIs."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _TCNBlock(4, 16, 1, old_style=False),
            _TCNBlock(16, 16, 2, old_style=True),
            _TCNBlock(16, 20, 4, old_style=False),
        )
        self.head = nn.Linear(20, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x)[:, :, -1])


class SampleCNN(nn.Module):
    """Raw-waveform CNN: a stride-3 stem, then Conv1d + BN + ReLU + MaxPool(3) blocks."""

    def __init__(self, widths: tuple[int, ...] = (16, 16, 24, 24, 32), n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(1, widths[0], 3, stride=3), nn.BatchNorm1d(widths[0]))
        blocks = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            blocks += [nn.Conv1d(a, b, 3, padding=1), nn.BatchNorm1d(b), nn.ReLU(), nn.MaxPool1d(3)]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], n_classes)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(wav)))
        return self.fc(h.amax(-1))


class ConvAutoencoder(nn.Module):
    """Conv1d encoder with BN, ConvTranspose1d decoder, reconstruction output."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv1d(2, 16, 4, stride=2, padding=1),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 24, 4, stride=2, padding=1),
            nn.BatchNorm1d(24),
            nn.ReLU(),
            nn.Conv1d(24, 8, 3, padding=1),
        )
        self.dec = nn.Sequential(
            nn.ConvTranspose1d(8, 24, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose1d(24, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(16, 2, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))


class LSTMTagger(nn.Module):
    """Token embedding into a 2-layer bidirectional LSTM, one label per frame."""

    def __init__(self, vocab: int = 30, n_tags: int = 7) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.lstm = nn.LSTM(16, 18, num_layers=2, bidirectional=True, batch_first=True)
        self.tag = nn.Linear(36, n_tags)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.emb(tokens))
        return self.tag(y)


class WidthAttribute(nn.Module):
    """Stores a width as a plain attribute and reshapes with it in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 12, 3, padding=1)
        self.proj = nn.Conv1d(12, 16, 1)
        self.in_features = 16
        self.fc1 = nn.Linear(16, 24)
        self.fc2 = nn.Linear(24, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(torch.relu(self.conv(x)))).amax(-1)
        h = x.new_zeros(0) if h.numel() == 0 else h.reshape(-1, self.in_features)
        return self.fc2(torch.relu(self.fc1(h)))


class HandAttention(nn.Module):
    """Self-attention written by hand, splitting heads with a hard-coded head count."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, 4, d // 4).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // 4) ** 0.5, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    """Frame embedding, nn.MultiheadAttention, a hand-written attention and a feed-forward."""

    def __init__(self, n_in: int = 10, dim: int = 16, ff: int = 40) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, dim)
        self.mha = nn.MultiheadAttention(dim, 4, batch_first=True)
        self.ln1 = nn.LayerNorm(dim)
        self.hand = HandAttention(dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ff)
        self.ff2 = nn.Linear(ff, dim)
        self.ln3 = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = self.ln1(h + self.mha(h, h, h, need_weights=False)[0])
        h = self.ln2(h + self.hand(h))
        h = self.ln3(h + self.ff2(torch.relu(self.ff1(h))))
        return self.head(h)


class MultiInputTuple(nn.Module):
    """A spectrogram branch and a feature branch, fused; returns (logits, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = nn.Conv1d(8, 16, 3, padding=1)
        self.spec_bn = nn.BatchNorm1d(16)
        self.feat = nn.Linear(5, 16)
        self.fuse = nn.Linear(16, 20)
        self.emb = nn.Linear(20, 6)
        self.cls = nn.Linear(20, 4)

    def forward(self, spec: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.relu(self.spec_bn(self.spec(spec))).mean(-1)
        h = torch.relu(self.fuse(s + torch.relu(self.feat(feats))))
        return self.cls(h), self.emb(h)


@dataclass
class TaggerOutput:
    """Output of :class:`DataclassOutput`: clip logits and frame activations."""

    clip: torch.Tensor
    frames: torch.Tensor


class DataclassOutput(nn.Module):
    """A frame-wise conv tagger returning a dataclass of clip and frame outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(6, 16, 3, padding=1)
        self.b1 = nn.BatchNorm1d(16)
        self.c2 = nn.Conv1d(16, 24, 3, padding=1)
        self.frame = nn.Conv1d(24, 5, 1)
        self.clip = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> TaggerOutput:
        h = torch.relu(self.c2(torch.relu(self.b1(self.c1(x)))))
        return TaggerOutput(clip=self.clip(h.mean(-1)), frames=self.frame(h))


class ConvLSTMLinear(nn.Module):
    """Conv front end, an LSTM in the middle, then two linear layers per frame."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(8, 16, 3, padding=1)
        self.b1 = nn.BatchNorm1d(16)
        self.c2 = nn.Conv1d(16, 20, 3, padding=1)
        self.lstm = nn.LSTM(20, 24, batch_first=True)
        self.fc = nn.Linear(24, 24)
        self.out = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c2(torch.relu(self.b1(self.c1(x))))).transpose(1, 2)
        y, _ = self.lstm(h)
        return self.out(torch.relu(self.fc(y)))


def clone(model: nn.Module) -> nn.Module:
    """Deep copy that also works after a forward pass through old-style weight norm."""
    for m in model.modules():
        for hook in m._forward_pre_hooks.values():
            name = getattr(hook, "name", None)
            if name is not None and isinstance(getattr(m, name, None), torch.Tensor):
                setattr(m, name, getattr(m, name).detach())
    return copy.deepcopy(model)


@dataclass(frozen=True)
class ZooCase:
    """A zoo model with example inputs, its output layers, and whether equivalence holds."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], object]
    outputs: tuple[str, ...]  # output layers, named by hand (what torch-pruning must ignore)
    equivalent: bool = True  # False where a norm mixes channels (LayerNorm, softmax over heads)
    note: str = ""


def _randn(*shape: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(*shape, generator=torch.Generator().manual_seed(1))


def _tokens(vocab: int, *shape: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(1))


def _two(a: tuple[int, ...], b: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(1)
        return torch.randn(*a, generator=gen), torch.randn(*b, generator=gen)

    return make


def _wav_and_mask() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return {
        "wav": torch.randn(2, 1, 400, generator=gen),
        "mask": torch.rand(2, 39, generator=gen) < 0.3,
    }


ZOO = [
    ZooCase("crnn", CRNN, _randn(2, 1, 16, 10), ("fc",)),
    ZooCase("wavenet", WaveNet, _randn(2, 1, 32), ("out",)),
    ZooCase("crnn_permute_flatten", FoldedCRNN, _randn(2, 1, 16, 10), ("fc",)),
    ZooCase("crnn_reshape_transpose", lambda: FoldedCRNN("reshape"), _randn(2, 1, 16, 10), ("fc",)),
    ZooCase("crnn_flatten_linear", lambda: FoldedCRNN("linear"), _randn(2, 1, 16, 10), ("fc",)),
    ZooCase(
        "ddsp_decoder",
        DDSPDecoder,
        _two((2, 6, 1), (2, 6, 1)),
        ("amp", "harm", "noise"),
        equivalent=False,
        note="LayerNorm normalises across the hidden units",
    ),
    ZooCase("tcn_weight_norm", TCN, _randn(2, 4, 20), ("head",)),
    ZooCase("samplecnn", SampleCNN, _randn(2, 1, 243), ("fc",)),
    ZooCase("conv_autoencoder", ConvAutoencoder, _randn(2, 2, 16), ("dec.4",)),
    ZooCase("lstm_tagger", LSTMTagger, _tokens(30, 2, 9), ("tag",)),
    ZooCase("width_attribute", WidthAttribute, _randn(2, 3, 10), ("fc2",)),
    ZooCase(
        "transformer_block",
        TransformerBlock,
        _randn(2, 6, 10),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding",
    ),
    ZooCase("multi_input_tuple", MultiInputTuple, _two((2, 8, 7), (2, 5)), ("cls", "emb")),
    ZooCase("dataclass_output", DataclassOutput, _randn(2, 6, 9), ("frame", "clip")),
    ZooCase("conv_lstm_linear", ConvLSTMLinear, _randn(2, 8, 7), ("out",)),
    ZooCase(
        "encoder_fast_path",
        EncoderClassifier,
        _randn(2, 10, 16),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding; eval runs the fused fast path",
    ),
    ZooCase(
        "encoder_math_path",
        lambda: EncoderClassifier(batch_first=False),
        _randn(2, 10, 16),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding",
    ),
    ZooCase(
        "spectrogram_vit",
        SpectrogramViT,
        _randn(2, 1, 16, 16),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding",
    ),
    ZooCase(
        "speech_encoder",
        SpeechEncoder,
        _wav_and_mask,
        ("ctc",),
        equivalent=False,
        note="LayerNorm normalises across conv features and the embedding",
    ),
    ZooCase(
        "conformer",
        ConformerBlock,
        _randn(2, 10, 12),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding",
    ),
    ZooCase(
        "conformer_position_buffer",
        lambda: ConformerBlock(positions=True),
        _randn(2, 10, 12),
        ("head",),
        equivalent=False,
        note="LayerNorm normalises across the embedding",
    ),
    ZooCase("unet_1d", UNet1d, _randn(2, 1, 32), ("out",)),
    ZooCase("mask_separator", MaskSeparator, _randn(2, 12, 9), ("fc2",)),
]
TRANSFORMERS = frozenset(
    {
        "encoder_fast_path",
        "encoder_math_path",
        "spectrogram_vit",
        "speech_encoder",
        "conformer",
        "conformer_position_buffer",
    }
)

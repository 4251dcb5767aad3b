"""Small models, one per supported layer pattern, shared by the engine tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class MHAOnly(nn.Module):
    """Embedding, nn.MultiheadAttention with a residual add, classifier: no norm mixes units."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 24)
        self.mha = nn.MultiheadAttention(24, 3, batch_first=True)
        self.head = nn.Linear(24, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(h + self.mha(h, h, h, need_weights=False)[0])


class ConvFlatten(nn.Module):
    """Dilated and strided Conv1d with BN, flattened into Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(1, 12, 5, stride=2, padding=2)
        self.b1 = nn.BatchNorm1d(12)
        self.c2 = nn.Conv1d(12, 16, 3, dilation=2, padding=2)
        self.b2 = nn.BatchNorm1d(16)
        self.fc1 = nn.Linear(16 * 16, 24)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b1(self.c1(x)))
        h = torch.relu(self.b2(self.c2(h)))
        return self.fc2(torch.relu(self.fc1(h.flatten(1))))


class ResidualConv2d(nn.Module):
    """Conv2d with a residual add, a depthwise conv and a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 10, 3, padding=1)
        self.bn = nn.BatchNorm2d(10)
        self.dw = nn.Conv2d(10, 10, 3, padding=1, groups=10)
        self.pw = nn.Conv2d(10, 10, 1)
        self.mid = nn.Conv2d(10, 14, 3, stride=2, padding=1)
        self.head = nn.Linear(14, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.stem(x)))
        h = h + self.pw(torch.relu(self.dw(h)))
        h = torch.relu(self.mid(h))
        return self.head(h.mean(dim=(2, 3)))


class GroupedConv(nn.Module):
    """A grouped convolution: its channels are protected, the rest trims."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(3, 8, 3, padding=1)
        self.g = nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.b = nn.Conv1d(8, 12, 3, padding=1)
        self.out = nn.Conv1d(12, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.b(torch.relu(self.g(torch.relu(self.a(x)))))))


class TransposedAE(nn.Module):
    """Conv1d encoder and ConvTranspose1d decoder with InstanceNorm and PReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = nn.Conv1d(1, 8, 4, stride=2, padding=1)
        self.n1 = nn.InstanceNorm1d(8, affine=True)
        self.act = nn.PReLU(8)
        self.e2 = nn.Conv1d(8, 12, 4, stride=2, padding=1)
        self.d1 = nn.ConvTranspose1d(12, 10, 4, stride=2, padding=1)
        self.d2 = nn.ConvTranspose1d(10, 1, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.n1(self.e1(x)))
        h = torch.relu(self.e2(h))
        return self.d2(torch.relu(self.d1(h)))


class ConcatGated(nn.Module):
    """Two branches concatenated, then a gated activation over chunked halves."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(2, 6, 3, padding=1)
        self.b = nn.Conv1d(2, 4, 5, padding=2)
        self.gate = nn.Conv1d(10, 16, 3, padding=1)
        self.split_src = nn.Conv1d(8, 12, 1)
        self.out = nn.Conv1d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
        f, g = self.gate(h).chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(g)
        p, q, r = torch.split(self.split_src(z), [4, 4, 4], dim=1)
        return self.out(torch.cat([p + q, r], dim=1))


class NormMix(nn.Module):
    """LayerNorm and GroupNorm (norms across channels: not equivalence-preserving)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(1, 8)
        self.fc = nn.Linear(8, 16)
        self.ln = nn.LayerNorm(16)
        self.out = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.gn(self.c(x))).mean(-1)
        return self.out(torch.relu(self.ln(self.fc(h))))


class EmbedGRU(nn.Module):
    """Embedding into a 2-layer bidirectional GRU, classifier on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 10)
        self.gru = nn.GRU(10, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y, _ = self.gru(self.emb(tokens))
        return self.fc(y[:, -1])


class ConvLSTM(nn.Module):
    """Conv front end, a 2-layer bidirectional LSTM in the middle, a frame classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 12, 3, padding=1)
        self.bn = nn.BatchNorm1d(12)
        self.lstm = nn.LSTM(12, 10, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(20, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x))).transpose(1, 2)
        y, _ = self.lstm(h)
        return self.out(torch.relu(self.fc(y)))


class HiddenStateRNN(nn.Module):
    """A plain RNN (and a GRU) read through their final hidden states."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(6, 9, batch_first=True)
        self.gru = nn.GRU(9, 7, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(7, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(x)
        _, h = self.gru(y)
        return self.fc(h[-1])


class MultiIO(nn.Module):
    """Two inputs and a dict output."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 12)
        self.b = nn.Linear(4, 12)
        self.mid = nn.Linear(12, 10)
        self.cls = nn.Linear(10, 3)
        self.reg = nn.Linear(10, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.mid(torch.relu(self.a(x) + self.b(z))))
        return {"cls": self.cls(h), "reg": self.reg(h)}


class CroppedSkipUNet(nn.Module):
    """A 1-D U-Net step: the encoder output cropped along time to the decoder's length, then
    added (encoder registered after the decoder) and concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.dec = nn.Conv1d(2, 8, 5)
        self.enc = nn.Conv1d(2, 8, 1)
        self.mix = nn.Conv1d(16, 6, 3, padding=1)
        self.out = nn.Conv1d(6, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.dec(x))
        skip = torch.relu(self.enc(x))[..., 2:-2]
        return self.out(torch.relu(self.mix(torch.cat([y + skip, skip[..., ::1]], 1))))


def sinusoids(length: int, width: int) -> torch.Tensor:
    """The fixed sinusoidal position table of a transformer: (length, width)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    angle = pos / 10000 ** (torch.arange(0, width, 2, dtype=torch.float32) / width)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)


class PositionBuffer(nn.Module):
    """Frames embedded, a position table stored as a buffer added to (or scaling) every token,
    then attention and a feed-forward block on the residual stream (no LayerNorm: exact)."""

    def __init__(self, batched: bool = True, persistent: bool = True, scale: bool = False) -> None:
        super().__init__()
        self.batched, self.scale = batched, scale
        self.embed = nn.Linear(10, 16)
        table = sinusoids(32, 16)
        self.register_buffer("pos", table[None] if batched else table, persistent=persistent)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.ff1 = nn.Linear(16, 24)
        self.ff2 = nn.Linear(24, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        pos = self.pos[:, : h.shape[1]] if self.batched else self.pos[: h.shape[1]]
        h = h * (1.0 + pos) if self.scale else h + pos
        h = h + self.attn(h, h, h, need_weights=False)[0]
        h = h + self.ff2(torch.relu(self.ff1(h)))
        return self.head(h)


class FlatLSTMSkip(nn.Module):
    """A spectrogram-mask separator's core: frames flattened to (T*N, F) around the Linear
    layers, a bidirectional LSTM between them, its input concatenated with its output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.lstm = nn.LSTM(16, 8, bidirectional=True)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        h = torch.tanh(self.fc1(x.reshape(-1, 8))).reshape(steps, batch, -1)
        y = torch.cat([h, self.lstm(h)[0]], -1)
        return self.fc2(y.reshape(-1, y.shape[-1]))


@dataclass(frozen=True)
class Case:
    """A pattern model with example inputs; ``equivalent`` is False for cross-channel norms."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[], object]
    equivalent: bool = True


def _x(*shape: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(*shape, generator=torch.Generator().manual_seed(1))


CASES = [
    Case("conv_flatten", ConvFlatten, _x(3, 1, 32)),
    Case("residual_conv2d", ResidualConv2d, _x(2, 2, 8, 8)),
    Case("grouped_conv", GroupedConv, _x(2, 3, 10)),
    Case("transposed_ae", TransposedAE, _x(2, 1, 16)),
    Case("concat_gated", ConcatGated, _x(2, 2, 12)),
    Case("norm_mix", NormMix, _x(3, 3, 10), equivalent=False),
    Case(
        "embed_gru",
        EmbedGRU,
        lambda: torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(1)),
    ),
    Case("conv_lstm", ConvLSTM, _x(2, 4, 9)),
    Case("hidden_state_rnn", HiddenStateRNN, _x(2, 5, 6)),
    Case("multi_io", MultiIO, lambda: (torch.randn(3, 6), torch.randn(3, 4))),
    Case("cropped_skip_unet", CroppedSkipUNet, _x(2, 2, 24)),
    Case("position_buffer_add", PositionBuffer, _x(2, 7, 10)),
    Case(
        "position_buffer_scale",
        lambda: PositionBuffer(batched=False, persistent=False, scale=True),
        _x(2, 7, 10),
    ),
    Case("flat_lstm_skip", FlatLSTMSkip, _x(5, 2, 8)),
]

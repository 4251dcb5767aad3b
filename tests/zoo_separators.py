"""Source-separation designs for the coverage zoo: a 1-D U-Net and a spectrogram-mask separator."""

from __future__ import annotations

import torch
from torch import nn


class UNet1d(nn.Module):
    """Waveform U-Net (Wave-U-Net-style): conv encoder, a GRU bottleneck, a transposed-conv
    decoder, and the encoder output cropped along time to the decoder's length, then added
    and concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = nn.Conv1d(1, 8, 5)
        self.e2 = nn.Conv1d(8, 16, 4, stride=2)
        self.gru = nn.GRU(16, 12, batch_first=True)
        self.d2 = nn.ConvTranspose1d(12, 8, 2, stride=2)
        self.d1 = nn.Conv1d(16, 8, 3, padding=1)
        self.out = nn.Conv1d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = torch.relu(self.e1(x))
        h = torch.relu(self.e2(s1))
        h = self.gru(h.transpose(1, 2))[0].transpose(1, 2)
        u = torch.relu(self.d2(h))
        off = (s1.shape[-1] - u.shape[-1]) // 2
        skip = s1[..., off : off + u.shape[-1]]
        return self.out(torch.relu(self.d1(torch.cat([u + skip, skip], 1))))


class MaskSeparator(nn.Module):
    """Spectrogram-mask separator (Open-Unmix-style core): frames flattened to (T*N, F) around
    the Linear layers, a bidirectional LSTM whose input is concatenated with its output, and
    a sigmoid mask multiplied with the input magnitudes."""

    def __init__(self, n_freq: int = 12, hidden: int = 16, rnn: int = 8) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_freq, hidden)
        self.lstm = nn.LSTM(hidden, rnn, bidirectional=True)
        self.fc2 = nn.Linear(hidden + 2 * rnn, n_freq)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        frames = spec.permute(2, 0, 1)  # (batch, freq, time) -> (time, batch, freq)
        steps, batch, freq = frames.shape
        h = torch.tanh(self.fc1(frames.reshape(-1, freq))).reshape(steps, batch, -1)
        y = torch.cat([h, self.lstm(h)[0]], -1)
        mask = torch.sigmoid(self.fc2(y.reshape(steps * batch, -1))).reshape(steps, batch, freq)
        return (mask * frames).permute(1, 2, 0)

"""A DDSP decoder (f0 and loudness to audio), its differentiable synthesizer and spectral loss.

The decoder follows DDSP's (Engel et al., 2020) in plain PyTorch: f0 and loudness go through
small MLPs (Linear-LayerNorm-ReLU) into a GRU, then an MLP, whose three output heads drive an
additive synthesizer (a global amplitude and a distribution over harmonics of f0) and a
filtered-noise synthesizer (band magnitudes). The heads are marked ``lt.unprunable``: the
synthesizer reads each of their units by position, so none can be removed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt

__all__ = [
    "DDSP_FFT_SIZES",
    "DDSP_FPS",
    "DDSP_HOP",
    "DDSP_SR",
    "DDSPDecoder",
    "ddsp_decoder",
    "example_losses",
    "filtered_noise",
    "harmonic_synth",
    "scale_exp_sigmoid",
    "spectral_loss",
    "training_loss",
]

DDSP_SR = 16000
DDSP_HOP = 64  # samples per frame: 250 frames a second at 16 kHz
DDSP_FPS = DDSP_SR // DDSP_HOP
#: FFT sizes of the multi-scale spectral loss, each at 75 % overlap (hop = size / 4).
DDSP_FFT_SIZES: tuple[int, ...] = (2048, 1024, 512, 256, 128, 64)
_LOUD_FLOOR_DB = -120.0  # loudness of silence (see examples.mir.ddsp_features)
_NOISE_SEED = 0


def scale_exp_sigmoid(
    x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0
) -> torch.Tensor:
    """DDSP's positive output nonlinearity: ``max * sigmoid(x) ** log(exponent) + 1e-7``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + 1e-7


def _upsample(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """(B, C, T) frame values to (B, C, T * hop) samples, linear between frame centres."""
    return F.interpolate(frames, scale_factor=hop, mode="linear", align_corners=False)


def harmonic_synth(
    f0_hz: torch.Tensor,
    amplitude: torch.Tensor,
    distribution: torch.Tensor,
    sample_rate: int = DDSP_SR,
    hop: int = DDSP_HOP,
) -> torch.Tensor:
    """Additive synthesis: harmonics ``k * f0`` (k = 1..N) of a common phase, (B, T * hop).

    ``f0_hz`` (B, T), ``amplitude`` (B, T) and ``distribution`` (B, T, N) are per frame. The
    distribution is zeroed at harmonics at or above Nyquist (and everywhere f0 <= 0), then
    normalised to sum 1, so ``amplitude`` is the frame's total harmonic amplitude. The phase is
    the running sum of f0 upsampled to audio rate, kept in float64 and wrapped to one period.
    """
    n = distribution.shape[-1]
    k = torch.arange(1, n + 1, device=f0_hz.device, dtype=distribution.dtype)
    audible = (f0_hz[..., None] * k < sample_rate / 2) & (f0_hz[..., None] > 0)
    dist = distribution * audible
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
    amps = _upsample((amplitude[..., None] * dist).transpose(1, 2), hop)  # (B, N, S)
    f0 = _upsample(f0_hz[:, None, :].to(torch.float64), hop)[:, 0]
    cycles = torch.cumsum(f0 / sample_rate, dim=-1) % 1.0  # (B, S), fundamental periods
    phase = (2 * math.pi * cycles).to(amps.dtype)
    return (amps * torch.sin(phase[:, None, :] * k[:, None])).sum(1)


def filtered_noise(magnitudes: torch.Tensor, hop: int = DDSP_HOP) -> torch.Tensor:
    """White noise filtered per frame by a linear-phase FIR from band ``magnitudes`` (B, T, M).

    Each frame's magnitudes, spread evenly from 0 Hz to Nyquist, become a zero-phase impulse
    response (``irfft``), centred, Hann-windowed and cut to ``2 (M - 1)`` taps; it filters
    ``hop`` samples of uniform noise in [-1, 1] (a fixed seed, so a model's output is
    deterministic) and the frames are overlap-added; the FIR tails that pass the end are cut.
    """
    b, t, m = magnitudes.shape
    taps = 2 * (m - 1)
    ir = torch.fft.irfft(magnitudes.to(torch.float32), n=taps)
    ir = torch.roll(ir, taps // 2, dims=-1) * torch.hann_window(taps, device=ir.device)
    gen = torch.Generator(device=magnitudes.device).manual_seed(_NOISE_SEED)
    noise = torch.rand((1, t, hop), generator=gen, device=magnitudes.device) * 2 - 1
    size = hop + taps  # at least the linear convolution's length: no wrap-around
    out = torch.fft.irfft(torch.fft.rfft(noise, size) * torch.fft.rfft(ir, size), size)
    out = out[..., : hop + taps - 1]  # (B, T, L): each frame's filtered block
    length = (t - 1) * hop + out.shape[-1]
    audio = F.fold(
        out.transpose(1, 2), output_size=(1, length), kernel_size=(1, out.shape[-1]), stride=hop
    )
    # shift by half the FIR (its delay) so the noise lines up with the frames
    return audio.reshape(b, length)[:, taps // 2 : taps // 2 + t * hop].to(magnitudes.dtype)


def _mlp(n_in: int, width: int, layers: int) -> nn.Sequential:
    """``layers`` blocks of Linear-LayerNorm-ReLU."""
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(n_in if i == 0 else width, width), nn.LayerNorm(width), nn.ReLU()]
    return nn.Sequential(*blocks)


class DDSPDecoder(nn.Module):
    """f0 (Hz) and loudness (dB) per frame, ``(B, 2, T)``, to audio ``(B, T * hop)``."""

    def __init__(
        self,
        hidden: int = 512,
        gru: int = 512,
        harmonics: int = 60,
        bands: int = 65,
        mlp_layers: int = 3,
        sample_rate: int = DDSP_SR,
        hop: int = DDSP_HOP,
    ) -> None:
        super().__init__()
        self.sample_rate, self.hop = sample_rate, hop
        self.f0_mlp = _mlp(1, hidden, mlp_layers)
        self.loud_mlp = _mlp(1, hidden, mlp_layers)
        self.gru = nn.GRU(2 * hidden, gru, batch_first=True)
        self.out_mlp = _mlp(gru + 2, hidden, mlp_layers)
        self.amplitude = lt.unprunable(nn.Linear(hidden, 1))
        self.distribution = lt.unprunable(nn.Linear(hidden, harmonics))
        self.noise = lt.unprunable(nn.Linear(hidden, bands))

    def controls(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The synthesizer's controls per frame: amplitude (B, T), harmonic distribution
        (B, T, N) and noise band magnitudes (B, T, M)."""
        f0 = x[:, 0, :, None]
        # the networks see f0 as MIDI / 127 (0 where f0 is 0) and loudness in [0, 1]
        pitch = torch.where(f0 > 0, 12 * torch.log2(f0.clamp_min(1e-3) / 440) + 69, 0) / 127
        loud = (x[:, 1, :, None] - _LOUD_FLOOR_DB) / -_LOUD_FLOOR_DB
        h = torch.cat([self.f0_mlp(pitch), self.loud_mlp(loud)], dim=-1)
        y, _ = self.gru(h)
        y = self.out_mlp(torch.cat([y, pitch, loud], dim=-1))
        amplitude = scale_exp_sigmoid(self.amplitude(y))[..., 0]
        distribution = scale_exp_sigmoid(self.distribution(y))
        return amplitude, distribution, scale_exp_sigmoid(self.noise(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        amplitude, distribution, noise = self.controls(x)
        harmonic = harmonic_synth(x[:, 0], amplitude, distribution, self.sample_rate, self.hop)
        return harmonic + filtered_noise(noise, self.hop)


def ddsp_decoder(
    hidden: int = 512, gru: int = 512, harmonics: int = 60, bands: int = 65, mlp_layers: int = 3
) -> DDSPDecoder:
    """The decoder at a size of :data:`examples.mir.models.TASKS` (``"ddsp"``)."""
    return DDSPDecoder(hidden, gru, harmonics, bands, mlp_layers)


def spectral_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    fft_sizes: Sequence[int] = DDSP_FFT_SIZES,
    reduce: bool = True,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Multi-scale spectral loss of audio (B, S): per FFT size (Hann window, hop = size / 4),
    the mean L1 distance of linear magnitudes plus that of log magnitudes, summed over sizes.

    With ``reduce=False``, one loss per example (B,); their mean is the reduced loss, since
    every example has the same length.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    both = torch.cat([pred, target]).to(torch.float32)
    total = both.new_zeros(pred.shape[0])
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=both.device)
        spec = torch.stft(both, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        p, t = spec.chunk(2)
        lin = (p - t).abs().mean(dim=(1, 2))
        log = (torch.log(p + eps) - torch.log(t + eps)).abs().mean(dim=(1, 2))
        total = total + lin + log
    return total.mean() if reduce else total


def example_losses(outputs: torch.Tensor, targets: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """:func:`spectral_loss` of each example (N,), computed ``batch`` examples at a time."""
    with torch.no_grad():
        parts = [
            spectral_loss(p, t, reduce=False)
            for p, t in zip(outputs.split(batch), targets.split(batch), strict=True)
        ]
    return torch.cat(parts) if parts else outputs.new_zeros(0)


def training_loss(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    teacher_outputs: torch.Tensor | None = None,
    kd_weight: float = 0.7,
) -> torch.Tensor:
    """The ddsp task's loss: :func:`spectral_loss` to the targets; with a teacher's audio,
    ``kd_weight`` of it taken to the teacher's audio instead (distillation)."""
    loss = spectral_loss(outputs, targets)
    if teacher_outputs is None:
        return loss
    return (1 - kd_weight) * loss + kd_weight * spectral_loss(outputs, teacher_outputs)

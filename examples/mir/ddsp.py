"""A DDSP decoder (f0 and loudness to audio), its differentiable synthesizer and spectral loss.

The decoder follows DDSP's (Engel et al., 2020) in plain PyTorch: f0 and loudness go through
small MLPs (Linear-LayerNorm-ReLU) into a GRU, then an MLP, whose three output heads drive an
additive synthesizer (a global amplitude and a distribution over harmonics of f0) and a
filtered-noise synthesizer (band magnitudes). The heads are marked ``lt.unprunable``: the
synthesizer reads each of their units by position, so none can be removed.
:class:`DDSPStream` synthesises chunk by chunk what ``forward`` makes of a whole phrase.
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
    "DDSPStream",
    "ddsp_decoder",
    "example_losses",
    "filtered_noise",
    "harmonic_synth",
    "scale_exp_sigmoid",
    "spectral_loss",
    "stream_synthesis",
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


def _harmonic_frames(
    f0_hz: torch.Tensor, amplitude: torch.Tensor, distribution: torch.Tensor, sample_rate: int
) -> torch.Tensor:
    """Each harmonic's amplitude per frame (B, N, T): the distribution zeroed at harmonics at or
    above Nyquist (and everywhere f0 <= 0), normalised to sum 1, times ``amplitude``."""
    n = distribution.shape[-1]
    k = torch.arange(1, n + 1, device=f0_hz.device, dtype=distribution.dtype)
    audible = (f0_hz[..., None] * k < sample_rate / 2) & (f0_hz[..., None] > 0)
    dist = distribution * audible
    dist = dist / dist.sum(-1, keepdim=True).clamp_min(1e-7)
    return (amplitude[..., None] * dist).transpose(1, 2)


def _oscillators(amps: torch.Tensor, cycles: torch.Tensor) -> torch.Tensor:
    """Sum of harmonics ``k`` = 1..N of amplitudes ``amps`` (B, N, S) at the phase ``cycles``
    (B, S, float64, in fundamental periods): (B, S)."""
    k = torch.arange(1, amps.shape[1] + 1, device=amps.device, dtype=amps.dtype)
    phase = (2 * math.pi * cycles).to(amps.dtype)
    return (amps * torch.sin(phase[:, None, :] * k[:, None])).sum(1)


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
    amps = _upsample(_harmonic_frames(f0_hz, amplitude, distribution, sample_rate), hop)
    f0 = _upsample(f0_hz[:, None, :].to(torch.float64), hop)[:, 0]
    cycles = torch.cumsum(f0 / sample_rate, dim=-1) % 1.0  # (B, S), fundamental periods
    return _oscillators(amps, cycles)


def _noise_taps(bands: int) -> int:
    """Length of the noise FIR made from ``bands`` magnitudes."""
    return 2 * (bands - 1)


def _uniform_noise(gen: torch.Generator, frames: int, hop: int) -> torch.Tensor:
    """The next ``frames`` blocks of ``hop`` uniform samples in [-1, 1] drawn from ``gen``."""
    return torch.rand((1, frames, hop), generator=gen, device=gen.device) * 2 - 1


def _noise_filters(magnitudes: torch.Tensor) -> torch.Tensor:
    """Each frame's linear-phase FIR (B, T, taps) from its band ``magnitudes`` (B, T, M)."""
    taps = _noise_taps(magnitudes.shape[-1])
    ir = torch.fft.irfft(magnitudes.to(torch.float32), n=taps)
    return torch.roll(ir, taps // 2, dims=-1) * torch.hann_window(taps, device=ir.device)


def _noise_blocks(ir: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Each frame's ``noise`` (1, T, hop) filtered by its FIR ``ir`` (B, T, taps):
    (B, T, hop + taps - 1), the full linear convolution."""
    hop, taps = noise.shape[-1], ir.shape[-1]
    size = hop + taps  # at least the linear convolution's length: no wrap-around
    out = torch.fft.irfft(torch.fft.rfft(noise, size) * torch.fft.rfft(ir, size), size)
    return out[..., : hop + taps - 1]


def _overlap_add(blocks: torch.Tensor, hop: int) -> torch.Tensor:
    """Blocks (B, T, L) placed ``hop`` apart and summed: (B, (T - 1) * hop + L)."""
    b, t, size = blocks.shape
    length = (t - 1) * hop + size
    audio = F.fold(
        blocks.transpose(1, 2), output_size=(1, length), kernel_size=(1, size), stride=hop
    )
    return audio.reshape(b, length)


def filtered_noise(magnitudes: torch.Tensor, hop: int = DDSP_HOP) -> torch.Tensor:
    """White noise filtered per frame by a linear-phase FIR from band ``magnitudes`` (B, T, M).

    Each frame's magnitudes, spread evenly from 0 Hz to Nyquist, become a zero-phase impulse
    response (``irfft``), centred, Hann-windowed and cut to ``2 (M - 1)`` taps; it filters
    ``hop`` samples of uniform noise in [-1, 1] (a fixed seed, so a model's output is
    deterministic) and the frames are overlap-added; the FIR tails that pass the end are cut.
    """
    t, taps = magnitudes.shape[1], _noise_taps(magnitudes.shape[-1])
    gen = torch.Generator(device=magnitudes.device).manual_seed(_NOISE_SEED)
    ir = _noise_filters(magnitudes)  # before the noise: exporters meet the FFT first
    audio = _overlap_add(_noise_blocks(ir, _uniform_noise(gen, t, hop)), hop)
    # shift by half the FIR (its delay) so the noise lines up with the frames
    return audio[:, taps // 2 : taps // 2 + t * hop].to(magnitudes.dtype)


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
        amplitude, distribution, noise, _ = self.step_controls(x)
        return amplitude, distribution, noise

    def step_controls(
        self, x: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`controls` of frames that follow those which left the GRU in state ``hidden``
        (None: the start), and the GRU's state after them, for chunk-by-chunk synthesis."""
        f0 = x[:, 0, :, None]
        # the networks see f0 as MIDI / 127 (0 where f0 is 0) and loudness in [0, 1]
        pitch = torch.where(f0 > 0, 12 * torch.log2(f0.clamp_min(1e-3) / 440) + 69, 0) / 127
        loud = (x[:, 1, :, None] - _LOUD_FLOOR_DB) / -_LOUD_FLOOR_DB
        h = torch.cat([self.f0_mlp(pitch), self.loud_mlp(loud)], dim=-1)
        y, hidden = self.gru(h, hidden)
        y = self.out_mlp(torch.cat([y, pitch, loud], dim=-1))
        amplitude = scale_exp_sigmoid(self.amplitude(y))[..., 0]
        distribution = scale_exp_sigmoid(self.distribution(y))
        return amplitude, distribution, scale_exp_sigmoid(self.noise(y)), hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        amplitude, distribution, noise = self.controls(x)
        harmonic = harmonic_synth(x[:, 0], amplitude, distribution, self.sample_rate, self.hop)
        return harmonic + filtered_noise(noise, self.hop)


class DDSPStream:
    """A :class:`DDSPDecoder`'s synthesis chunk by chunk: the audio ``forward`` makes of the
    whole input, returned ``delay`` samples after the frames that make it arrive.

    Between calls it carries the GRU's state, the oscillators' phase, the noise generator and
    the last frame's controls. A sample is returned once every frame that shapes it is in: the
    linear upsampling reads the next frame (half a hop ahead) and a frame's centred noise FIR
    starts ``taps / 2`` samples before the frame. :meth:`flush` returns the rest at the end.
    """

    def __init__(self, model: DDSPDecoder) -> None:
        self.model = model
        self.hop = model.hop
        self.taps = _noise_taps(model.noise.out_features)
        #: samples by which the output trails its frames
        self.delay = max(self.hop // 2, self.taps // 2)
        self._hidden: torch.Tensor | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # f0, harmonic amps
        self._cycles = torch.zeros(1, dtype=torch.float64)  # phase, in fundamental periods
        self._gen = torch.Generator().manual_seed(_NOISE_SEED)
        self._frames = 0  # frames received
        self._emitted = 0  # samples returned
        self._harmonic = torch.zeros(1, 0)  # harmonic samples from the first not returned on
        self._noise = torch.zeros(1, 0)  # noise overlap-add from the first not returned on

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """Take the next frames ``x`` (B, 2, n); return the audio now complete (B, samples)."""
        model, hop = self.model, self.hop
        amplitude, distribution, bands, self._hidden = model.step_controls(x, self._hidden)
        f0 = x[:, 0].to(torch.float64)[:, None]
        amps = _harmonic_frames(x[:, 0], amplitude, distribution, model.sample_rate)
        n = x.shape[-1]
        if self._last is None:  # the start: forward clamps before the first frame's centre
            self._cycles = self._cycles.expand(x.shape[0]).clone()
            frames, span = (f0, amps), slice(0, n * hop - hop // 2)
        else:  # from the previous frame's centre to the last new frame's
            frames = (torch.cat([self._last[0], f0], -1), torch.cat([self._last[1], amps], -1))
            span = slice(hop // 2, hop // 2 + n * hop)
        f0_up, amps_up = (_upsample(values, hop)[..., span] for values in frames)
        self._last = (f0[..., -1:], amps[..., -1:])
        self._add_harmonic(f0_up, amps_up)
        noise = _noise_blocks(_noise_filters(bands), _uniform_noise(self._gen, n, hop))
        self._add_noise(_overlap_add(noise, hop), self._frames * hop - self.taps // 2)
        self._frames += n
        return self._take(self._frames * hop - self.delay)

    def flush(self) -> torch.Tensor:
        """The audio after the last frame's centre, where ``forward`` holds its values and cuts
        the noise FIR's tails: the end of the output."""
        if self._last is None:
            return torch.zeros(1, 0)
        f0_last, amps_last = self._last
        half = self.hop - self.hop // 2
        self._add_harmonic(f0_last.expand(-1, -1, half), amps_last.expand(-1, -1, half))
        return self._take(self._frames * self.hop)

    def _add_harmonic(self, f0: torch.Tensor, amps: torch.Tensor) -> None:
        """Synthesise the next samples of the oscillators from upsampled f0 and amplitudes."""
        cycles = self._cycles[:, None] + torch.cumsum(f0[:, 0] / self.model.sample_rate, -1)
        self._cycles = cycles[:, -1] % 1.0
        audio = _oscillators(amps, cycles % 1.0)
        self._harmonic = torch.cat([self._harmonic.expand(len(audio), -1), audio], -1)

    def _add_noise(self, audio: torch.Tensor, start: int) -> None:
        """Overlap-add noise ``audio`` beginning at output sample ``start`` (before 0: cut)."""
        offset = start - self._emitted
        if offset < 0:
            audio, offset = audio[:, -offset:], 0
        pending = self._noise.expand(len(audio), -1)
        size = max(pending.shape[-1], offset + audio.shape[-1])
        self._noise = F.pad(pending, (0, size - pending.shape[-1])).clone()
        self._noise[:, offset : offset + audio.shape[-1]] += audio

    def _take(self, end: int) -> torch.Tensor:
        """Return the samples up to ``end`` (none before the first ``delay``) and drop them from
        the pending buffers."""
        count = max(end - self._emitted, 0)
        out = self._harmonic[:, :count] + self._noise[:, :count]
        self._harmonic, self._noise = self._harmonic[:, count:], self._noise[:, count:]
        self._emitted += count
        return out


def stream_synthesis(model: DDSPDecoder, x: torch.Tensor, chunk: int) -> torch.Tensor:
    """The audio of ``x`` (B, 2, T) synthesised ``chunk`` frames at a time by a
    :class:`DDSPStream`, concatenated: what ``model(x)`` returns, up to rounding."""
    stream = DDSPStream(model)
    parts = [stream.step(part) for part in x.split(chunk, dim=-1)]
    return torch.cat([*parts, stream.flush()], dim=-1)


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

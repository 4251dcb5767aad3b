"""The generative ddsp example: synthesizer, spectral loss, f0 check, exact trimming, data and
an end-to-end tiny lottery with resume."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import masked_copy, randomize_norms
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt
from examples.mir import synth
from examples.mir.ddsp import (
    DDSP_HOP,
    DDSP_SR,
    DDSPDecoder,
    filtered_noise,
    harmonic_synth,
    spectral_loss,
)
from examples.mir.ddsp_features import a_weighting_db, f0_accuracy, frame_loudness
from examples.mir.models import MIR_TASKS, TASKS, build_model, example_input
from examples.mir.profiles import PROFILES
from examples.mir.run import parse_args, run_task


def _peak_hz(audio: np.ndarray, lo: float = 0.0, hi: float = DDSP_SR / 2) -> float:
    """Frequency of the strongest spectral peak in [lo, hi] (zero-padded FFT + parabola)."""
    size = 1 << 20
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size), size))
    freqs = np.fft.rfftfreq(size, 1.0 / DDSP_SR)
    band = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    i = band[np.argmax(spec[band])]
    a, b, c = np.log(spec[i - 1 : i + 2])
    return float(freqs[i] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0]))


def _cents(a: float, b: float) -> float:
    return float(abs(1200 * np.log2(a / b)))


def test_harmonic_synth_makes_a_sinusoid_at_f0() -> None:
    frames = 250
    f0 = torch.full((1, frames), 261.63)
    dist = torch.zeros(1, frames, 6)
    dist[..., 0] = 1.0
    audio = harmonic_synth(f0, torch.full((1, frames), 0.5), dist)[0].numpy()
    assert audio.shape == (frames * DDSP_HOP,)
    assert _cents(_peak_hz(audio), 261.63) < 2.0
    assert np.abs(audio).max() == pytest.approx(0.5, rel=1e-3)  # amplitude is the total
    # the third harmonic alone: a sinusoid at 3 f0
    dist = torch.zeros(1, frames, 6)
    dist[..., 2] = 1.0
    third = harmonic_synth(f0, torch.ones(1, frames), dist)[0].numpy()
    assert _cents(_peak_hz(third), 3 * 261.63) < 2.0


def test_harmonics_above_nyquist_are_zeroed() -> None:
    frames = 125
    f0 = torch.full((1, frames), 3000.0)  # harmonics 3 and up (9 kHz...) are above 8 kHz
    audio = harmonic_synth(f0, torch.ones(1, frames), torch.ones(1, frames, 8))[0].numpy()
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    freqs = np.fft.rfftfreq(audio.size, 1.0 / DDSP_SR)
    near = (np.abs(freqs - 3000) < 50) | (np.abs(freqs - 6000) < 50)
    assert spec[~near].max() < 1e-3 * spec.max()  # no aliased 9 kHz at 7 kHz, etc.
    assert _cents(_peak_hz(audio, 5000, 7000), 6000.0) < 2.0


def test_filtered_noise_follows_its_band_magnitudes() -> None:
    frames, bands = 500, 33
    low = torch.zeros(1, frames, bands)
    low[..., :8] = 1.0  # pass 0-2 kHz only
    audio = filtered_noise(low)[0].numpy()
    assert audio.shape == (frames * DDSP_HOP,)
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1.0 / DDSP_SR)
    assert power[freqs < 1500].mean() > 100 * power[freqs > 3000].mean()
    assert torch.equal(filtered_noise(low), filtered_noise(low))  # a fixed noise seed


def test_spectral_loss_is_zero_for_identical_audio_and_grows_with_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / DDSP_SR
    clean = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.sin(2 * torch.pi * 880 * t))[
        None
    ].repeat(2, 1)
    assert spectral_loss(clean, clean).item() == 0.0
    noise = torch.randn(clean.shape, generator=gen)
    losses = []
    for snr in (40, 20, 10, 0):
        scale = clean.pow(2).mean().sqrt() * 10 ** (-snr / 20)
        losses.append(spectral_loss(clean + scale * noise, clean).item())
    assert all(a < b for a, b in zip(losses, losses[1:], strict=False)), losses
    per = spectral_loss(clean + noise, clean, reduce=False)
    assert per.shape == (2,) and per.mean().item() == pytest.approx(
        spectral_loss(clean + noise, clean).item(), rel=1e-5
    )


def test_loudness_and_f0_check() -> None:
    assert a_weighting_db(np.array([1000.0]))[0] == pytest.approx(0.0, abs=0.01)
    assert a_weighting_db(np.array([100.0]))[0] == pytest.approx(-19.1, abs=0.1)
    t = np.arange(DDSP_SR) / DDSP_SR
    loud = frame_loudness(np.sin(2 * np.pi * 1000 * t))
    assert loud.shape == (DDSP_SR // DDSP_HOP,)
    assert loud[50:200] == pytest.approx(-3.01, abs=0.05)
    assert frame_loudness(np.zeros(DDSP_SR)).max() == -120.0
    # a tone with a strong octave: the check finds f0, and flags audio an octave off
    f0 = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / DDSP_SR
    tone = np.sin(phase) + 0.8 * np.sin(2 * phase)
    frames = f0[np.arange(250) * DDSP_HOP + DDSP_HOP // 2][None]
    voiced = np.ones_like(frames, dtype=bool)
    cents, within = f0_accuracy(tone[None], frames, voiced)
    assert cents < 10 and within > 0.95
    _, octave = f0_accuracy(np.sin(2 * phase)[None], frames, voiced)
    assert octave < 0.05


class _SurvivorNorm(nn.Module):
    """LayerNorm over the kept units only (zeros elsewhere): what a trimmed LayerNorm computes,
    written on the untrimmed width."""

    def __init__(self, norm: nn.LayerNorm, keep: np.ndarray) -> None:
        super().__init__()
        self.norm, self.keep = norm, torch.as_tensor(keep, dtype=torch.long)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.norm.weight[self.keep], self.norm.bias[self.keep]
        kept = F.layer_norm(x[..., self.keep], (self.keep.numel(),), w, b, self.norm.eps)
        return torch.zeros_like(x).index_copy(-1, self.keep, kept)


def test_decoder_trims_exactly_with_its_heads_whole() -> None:
    torch.manual_seed(0)
    model = randomize_norms(DDSPDecoder(hidden=24, gru=24, harmonics=10, bands=17, mlp_layers=2))
    model.eval()
    original = copy.deepcopy(model)
    x = example_input("ddsp", "tiny", batch=2)
    plan, result = lt.trim(model, x, amount=0.3)
    assert result.params_after < 0.8 * result.params_before
    why = " ".join(result.protected.values())
    assert all(f"'{head}' is unprunable" in why for head in ("amplitude", "distribution", "noise"))
    assert model.amplitude.out_features == 1 and model.distribution.out_features == 10
    assert model.noise.out_features == 17
    assert model.gru.hidden_size < 24 and model.f0_mlp[0].out_features < 24
    masked = masked_copy(original, plan)
    for name, module in list(masked.named_modules()):
        keep = plan.keep.get(f"{name}.weight", [None])[0]
        if isinstance(module, nn.LayerNorm) and keep is not None:
            parent, _, child = name.rpartition(".")
            setattr(masked.get_submodule(parent), child, _SurvivorNorm(module, keep))
    with torch.no_grad():
        trimmed_out, masked_out = model(x), masked(x)
        for a, b in zip(model.controls(x), masked.controls(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(trimmed_out, masked_out, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(trimmed_out, original(x), atol=1e-3)  # the step did something


def test_ddsp_in_the_task_table_and_out_of_all() -> None:
    assert "ddsp" in TASKS and "ddsp" not in MIR_TASKS and set(MIR_TASKS) < set(TASKS)
    sizes = [
        sum(p.numel() for p in build_model("ddsp", s).parameters()) for s in TASKS["ddsp"].sizes
    ]
    assert sizes[0] > sizes[1] > sizes[2]
    paper = build_model("ddsp", "paper")
    assert paper.gru.hidden_size == 512 and paper.distribution.out_features == 60
    assert parse_args(["--task", "ddsp"]).task == "ddsp"
    x = example_input("ddsp", "tiny", batch=3)
    assert build_model("ddsp", "tiny")(x).shape == (3, x.shape[-1] * DDSP_HOP)


def test_synthetic_data_is_seeded_and_shaped() -> None:
    a = synth.make_dataset("ddsp", 8, seed=3, size="tiny")
    b = synth.make_dataset("ddsp", 8, seed=3, size="tiny")
    frames = TASKS["ddsp"].size("tiny").input_shape[-1]
    assert a.train.inputs.shape[1:] == (2, frames)
    assert a.train.targets.shape[1:] == (frames * DDSP_HOP,)
    assert torch.equal(a.train.targets, b.train.targets)
    assert torch.equal(a.test.inputs, b.test.inputs)
    assert (a.train.inputs[:, 0] > 0).all()  # f0 held through rests, never 0
    voiced = a.train.meta["voiced"]
    assert voiced.shape == (a.train.n, frames) and 0.3 < voiced.mean() < 1.0
    cents, within = f0_accuracy(
        a.train.targets.double().numpy(), a.train.inputs[:, 0].double().numpy(), voiced
    )
    assert within > 0.9, (cents, within)


def test_rendered_phrases_match_their_f0() -> None:
    pytest.importorskip("tinysoundfont")
    from examples.mir.render import render_fields
    from examples.mir.render_ddsp import DDSP_PROGRAMS, ddsp_phrases

    data = ddsp_phrases(4, seed=2, size="tiny")
    again = ddsp_phrases(4, seed=2, size="tiny")
    assert torch.equal(data.targets, again.targets) and torch.equal(data.inputs, again.inputs)
    assert set(data.meta["program"]) <= set(DDSP_PROGRAMS)
    assert data.targets.abs().amax(dim=1).numpy() == pytest.approx(0.5, rel=1e-5)
    f0, voiced = data.inputs[:, 0].double().numpy(), data.meta["voiced"]
    assert voiced.any(axis=1).all()
    _, within = f0_accuracy(data.targets.double().numpy(), f0, voiced)
    assert within > 0.8
    assert render_fields("ddsp")["programs"] == list(DDSP_PROGRAMS)


def test_tiny_ddsp_lottery_runs_and_resumes(tmp_path: Path) -> None:
    tiny = PROFILES["tiny"]
    results, lottery, run = run_task("ddsp", tiny, tmp_path, progress=False, log=None)
    config = tiny.config("ddsp")
    assert len(results) == len(config.runs()) * (config.levels + 1) * config.replicates
    assert set(results.method) == set(tiny.methods)
    # the decoder is also ranked by its units' information on each frame's pitch and loudness
    assert {"magnitude", "information"} <= set(results.criterion)
    for column in ("error", "val_error", "error_low", "error_high"):
        assert np.isfinite(results[column]).all() and (results[column] > 0).all(), column
    assert ((results.error_low <= results.error) & (results.error <= results.error_high)).all()
    assert {"f0_cents", "f0_within_50"} <= set(results.columns)
    trimmed = results[(results.method == "trim") & (results.level > 0)]
    assert (trimmed.params < results[results.level == 0].params.max()).all()
    # a second run reads every level back and trains nothing
    again, _, rerun = run_task("ddsp", tiny, tmp_path, progress=False, log=None)
    assert rerun.train_calls == 0 and len(again) == len(results)
    assert lt.pick_models(again).model.isin(["reference"]).any()


def test_information_ranks_the_decoder_per_frame_on_pitch_and_loudness(tmp_path: Path) -> None:
    """ddsp's criterion batches carry a class per frame, and ``information`` ranked per
    position scores every prunable group of the decoder from them."""
    from examples.mir.ddsp_features import frame_classes
    from examples.mir.run import build_lottery
    from lotterytrim.engine.graph import TrimGraph

    lottery, run = build_lottery("ddsp", PROFILES["tiny"], tmp_path, progress=False, log=None)
    batches = run.criterion_data()
    assert batches and all(isinstance(b, tuple) for b in batches)
    x, classes = batches[0]
    assert classes.shape == (x.shape[0], x.shape[-1]) and not classes.is_floating_point()
    # pitch band (below MIDI 60, then half an octave each) x 3 + loudness band; the bands'
    # edges are these frames' terciles (-60 and -30 dB), each edge in the band below it
    f0 = torch.tensor([[200.0, 262.0, 300.0, 1200.0]])  # MIDI 55.3, 60.0, 62.3, 86.4
    loud = torch.tensor([[-90.0, -60.0, -30.0, -10.0]])
    assert frame_classes(torch.stack([f0, loud], 1)).tolist() == [[0, 3, 4, 17]]
    torch.manual_seed(0)
    model = run.build_model()
    graph = TrimGraph(model, run.example_inputs)
    scores = lt.criteria.Information(positions=True).score(graph, data=batches)
    prunable = {g.id for g in graph.prunable_groups}
    assert prunable and set(scores) == prunable
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert any(s.max() > 0 for s in scores.values())

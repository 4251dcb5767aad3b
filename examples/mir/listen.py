"""Listen to a finished ddsp run: WAVs, spectrograms and a cost table of three of its decoders.

    python -m examples.mir.listen --run runs/ddsp-<hash> --audio docs/audio \\
        --figure docs/figures/ddsp_spectrograms.png --table results/generative/ddsp-models.csv

From one replicate of the run it picks the reference, the *optimal* trimmed decoder (the
fewest parameters with a validation loss within 1.1x of the reference's, over every method,
chosen by ``lt.pick_models``; the reference itself when none qualifies) and the *smallest*
trimmed decoder; rebuilds each from its level file on the CPU; synthesises one held-out test
phrase with each and writes it as 16-bit WAVs beside the rendered target, one figure of their
spectrograms, and a table of their costs: MACs per second of audio, parameter memory, losses,
the f0 check of the resynthesis, the real-time factor of chunked batch-1 synthesis on one
thread, and whether each fits the embedded devices of :mod:`examples.mir.devices`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from matplotlib.figure import Figure

import lotterytrim as lt
from lotterytrim.measure.report import median_seconds

from .ddsp import DDSP_FPS, DDSP_HOP, DDSP_SR, DDSPDecoder, spectral_loss, stream_synthesis
from .ddsp_features import f0_accuracy
from .devices import DEVICES, FLOAT32_BYTES, bound
from .profiles import PROFILES, Profile
from .run import build_lottery
from .training import TaskRun

__all__ = ["MODELS", "WITHIN", "choose_models", "main", "match_profile", "parse_args"]

MODELS: tuple[str, ...] = ("reference", "optimal", "smallest")
"""The three decoders of the listening outputs, in table and figure order."""

WITHIN = 1.1
"""The optimal decoder's validation loss is at most this factor times the reference's."""

_STFT = (1024, 128)  # FFT size and hop of the figure's spectrograms
_DYNAMIC_DB = 80.0  # range shown below the loudest spectrogram bin


def match_profile(record: dict[str, Any], name: str | None, soundfont: str | None) -> Profile:
    """The profile (``name``, or the first that fits) whose size and data settings are those
    recorded in a run's ``settings.json``: it rebuilds the run's splits exactly."""
    wanted = record["settings"]
    for candidate in [name] if name is not None else list(PROFILES):
        profile = PROFILES[candidate]
        if profile.size != wanted.get("size"):
            continue
        if profile.settings("ddsp", None, soundfont)["data"] == wanted.get("data"):
            return profile
    which = f"--profile {name} does not make" if name is not None else "no profile makes"
    raise SystemExit(
        f"{which} this run's data (size {wanted.get('size')!r}, data {wanted.get('data')}); "
        "pass the profile (and --soundfont) the run was made with"
    )


def choose_models(results: pd.DataFrame, replicate: int) -> pd.DataFrame:
    """Rows of the reference, optimal and smallest decoders of ``replicate``, chosen on
    validation loss; ``note`` says when a model falls back to the reference."""
    rows = results[results["replicate"] == replicate]
    if rows.empty:
        raise SystemExit(f"the run has no rows of replicate {replicate}")
    # smallest: any loss qualifies, so the fewest parameters of all trimmed levels
    picked = lt.pick_models(rows, optimal=WITHIN, smallest=math.inf).set_index("model")
    chosen = []
    for model in MODELS:
        present = model in picked.index
        row = picked.loc[model if present else "reference"].copy()
        row["model"] = model
        row["note"] = ""
        if not present and model == "optimal":
            row["note"] = f"no trimmed level within {WITHIN}x of the reference: the reference"
        elif not present:
            row["note"] = "no trimmed level: the reference"
        chosen.append(row)
    return pd.DataFrame(chosen).reset_index(drop=True)


class _Controls(torch.nn.Module):
    """A decoder's control network alone (no synthesizer), for counting its MACs."""

    def __init__(self, model: DDSPDecoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.controls(x)


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn()`` on one thread, timed as ``lt.report`` times latency."""
    return median_seconds(fn, threads=1, runs=repeats, warmup=2)[0]


def _measure(
    model: DDSPDecoder,
    row: pd.Series,
    x: torch.Tensor,
    target: torch.Tensor,
    voiced: np.ndarray,
    example: torch.Tensor,
    chunk: int,
    repeats: int,
) -> tuple[dict[str, Any], torch.Tensor]:
    """One table row of a rebuilt decoder and its audio of the phrase ``x`` (1, 2, T)."""
    with torch.inference_mode():
        audio = model(x)
    seconds = audio.shape[-1] / DDSP_SR
    cents, within = f0_accuracy(audio.double().numpy(), x[:, 0].double().numpy(), voiced)
    param_bytes = FLOAT32_BYTES * sum(p.numel() for p in model.parameters())
    example_seconds = example.shape[-1] * DDSP_HOP / DDSP_SR
    macs_per_second = float(row["macs"]) / example_seconds
    controls = lt.report(_Controls(model), example, latency=False).macs / example_seconds
    measured = {
        "model": row["model"],
        "method": row["method"],
        "criterion": row["criterion"],
        "level": int(row["level"]),
        "params": int(row["params"]),
        "kept": float(row.get("kept", 1.0)),
        "macs_per_s": macs_per_second,
        "control_macs_per_s": controls,
        "param_bytes": param_bytes,
        "val_loss": float(row["val_error"]),
        "test_loss": float(row["error"]),
        "phrase_loss": float(spectral_loss(audio, target)),
        "phrase_f0_cents": cents,
        "phrase_f0_within_50": within,
        "rtf_stream": _seconds(lambda: stream_synthesis(model, x, chunk), repeats) / seconds,
        "rtf_phrase": _seconds(lambda: model(x), repeats) / seconds,
    }
    for device in DEVICES:
        measured[f"fits_{device.key}"] = bound(device, param_bytes, macs_per_second)
    measured["path"] = row["path"]
    measured["note"] = row["note"]
    return measured, audio[0]


def _write_wav(path: Path, audio: np.ndarray) -> int:
    """Write mono 16-bit PCM at the ddsp rate; returns how many samples were clipped to
    [-1, 1] (a decoder's output is not bounded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clipped = int(np.sum(np.abs(audio) > 1.0))
    sf.write(str(path), np.clip(audio, -1.0, 1.0), DDSP_SR, subtype="PCM_16")
    return clipped


def _spectrogram_db(audio: np.ndarray) -> np.ndarray:
    """Log magnitude (dB) of ``audio``: (bins, frames), Hann window."""
    n_fft, hop = _STFT
    spec = torch.stft(
        torch.as_tensor(audio, dtype=torch.float32),
        n_fft,
        hop,
        window=torch.hann_window(n_fft),
        return_complex=True,
    ).abs()
    return (20 * torch.log10(spec + 1e-7)).numpy()


def _draw(path: Path, panels: Sequence[tuple[str, np.ndarray]]) -> None:
    """One column of spectrograms, one panel per (title, audio), on a shared dB scale."""
    specs = [_spectrogram_db(audio) for _, audio in panels]
    top = max(float(s.max()) for s in specs)
    figure = Figure(figsize=(9, 2.4 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    image = None
    for ax, (title, audio), spec in zip(axes, panels, specs, strict=True):
        extent = (0.0, len(audio) / DDSP_SR, 0.0, DDSP_SR / 2000)
        image = ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            extent=extent,
            vmin=top - _DYNAMIC_DB,
            vmax=top,
            cmap="magma",
        )
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    if image is not None:
        figure.colorbar(image, ax=list(axes), label="dB")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def _title(row: dict[str, Any]) -> str:
    """A panel title: which decoder, its method and level, share kept and phrase loss."""
    what = "" if row["level"] == 0 else f"{row['method']}/{row['criterion']} "
    return (
        f"{row['model']}: {what}level {row['level']}, {row['kept']:.1%} of weights kept, "
        f"phrase spectral loss {row['phrase_loss']:.3g}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.mir.listen", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", type=Path, required=True, help="a finished ddsp run directory")
    parser.add_argument("--replicate", type=int, default=0, help="replicate (default 0)")
    parser.add_argument("--phrase", type=int, default=0, help="test phrase index (default 0)")
    parser.add_argument("--seconds", type=float, default=3.0, help="longest WAV (default 3)")
    parser.add_argument("--audio", type=Path, default=Path("docs/audio"), help="WAV folder")
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/ddsp_spectrograms.png"))
    parser.add_argument("--table", type=Path, default=Path("results/generative/ddsp-models.csv"))
    parser.add_argument(
        "--profile", choices=list(PROFILES), default=None, help="default: the one that fits"
    )
    parser.add_argument("--soundfont", default=None, help="the .sf2 the run rendered with")
    parser.add_argument(
        "--chunk", type=float, default=0.25, help="streaming chunk in seconds (default 0.25)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (default 10)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.chunk <= 0 or args.repeats < 1:
        parser.error("--seconds and --chunk must be > 0, --repeats >= 1")
    return args


def _load_run(args: argparse.Namespace) -> TaskRun:
    """The task bundle (splits, model builder, example input) of the run's data."""
    settings = args.run / "settings.json"
    if not settings.is_file():
        raise SystemExit(f"{settings} is missing: --run must be a ddsp run directory")
    record = json.loads(settings.read_text(encoding="utf-8"))
    if record["config"]["task"] != "ddsp":
        raise SystemExit(f"{args.run} is a run of {record['config']['task']!r}, not ddsp")
    profile = match_profile(record, args.profile, args.soundfont)
    lottery, task_run = build_lottery(
        "ddsp", profile, args.run.parent, progress=False, log=None, soundfont=args.soundfont
    )
    if lottery.directory.resolve() != args.run.resolve():
        print(
            f"note: profile {profile.name} as it stands names {lottery.directory.name}, not "
            f"{args.run.name} (a run with other methods or training settings); its data "
            "settings match, so the splits are the run's"
        )
    return task_run


def main(argv: Sequence[str] | None = None) -> int:
    """Pick, rebuild and listen to three decoders of a ddsp run; write WAVs, figure, table."""
    args = parse_args(argv)
    task_run = _load_run(args)
    test = task_run.splits.test
    if not 0 <= args.phrase < test.n:
        raise SystemExit(f"--phrase must be in [0, {test.n}): the run has {test.n} test phrases")
    chosen = choose_models(lt.load_results(args.run), args.replicate)
    x = test.inputs[args.phrase : args.phrase + 1]
    target = test.targets[args.phrase : args.phrase + 1]
    voiced = np.asarray(test.meta["voiced"], dtype=bool)[args.phrase : args.phrase + 1]
    chunk = max(1, round(args.chunk * DDSP_FPS))
    length = min(target.shape[-1], int(args.seconds * DDSP_SR))
    original = target[0].numpy()[:length]
    table, panels = [], [(f"target: test phrase {args.phrase}, the original", original)]
    clipped = {"ddsp-target.wav": _write_wav(args.audio / "ddsp-target.wav", original)}
    for _, row in chosen.iterrows():
        model = lt.load(args.run / str(row["path"]), task_run.build_model).eval()
        if not isinstance(model, DDSPDecoder):
            raise SystemExit(f"{row['path']} does not hold a DDSP decoder")
        measured, audio = _measure(
            model, row, x, target, voiced, task_run.example_inputs, chunk, args.repeats
        )
        table.append(measured)
        panels.append((_title(measured), audio.numpy()[:length]))
        name = f"ddsp-{row['model']}.wav"
        clipped[name] = _write_wav(args.audio / name, panels[-1][1])
        print(
            f"{row['model']}: {row['method']}/{row['criterion']} level {int(row['level'])}, "
            f"{int(row['params']):,} parameters ({float(row['kept']):.1%} kept), "
            f"{row['path']} {row['note']}"
        )
    _draw(args.figure, panels)
    frame = pd.DataFrame(table)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.table, index=False, float_format="%.6g")
    cents, within = f0_accuracy(target.double().numpy(), x[:, 0].double().numpy(), voiced)
    print(f"\n{frame.drop(columns=['path', 'note']).to_markdown(index=False, floatfmt='.4g')}\n")
    print(
        f"phrase {args.phrase} of {test.n} test phrases, replicate {args.replicate}; "
        "macs_per_s: the run's MACs per second of audio (network and the synthesizer's "
        "elementwise operations; its FFTs, sines, phase sum and overlap-add not counted), "
        "control_macs_per_s: the control network's alone; "
        f"rtf_*: one thread, batch 1, median of {args.repeats}; stream in "
        f"chunks of {chunk} frames ({chunk / DDSP_FPS:.3f} s); the f0 estimator on the target "
        f"itself: {cents:.3g} cents, {within:.1%} within 50"
    )
    for device in DEVICES:
        print(
            f"fits_{device.key}: {device.name}; weights: {device.weight_memory}; "
            f"MACs: {device.mac_assumption}"
        )
    for name, count in clipped.items():
        if count:
            print(f"{name}: {count} samples beyond [-1, 1] clipped")
    print(f"WAVs: {args.audio}; figure: {args.figure}; table: {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

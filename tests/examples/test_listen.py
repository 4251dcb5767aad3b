"""Listening to a ddsp run: the models picked, the WAVs, figure and table written, the device
bounds, and chunked synthesis that carries the decoder's state equal to whole-phrase synthesis."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import lotterytrim as lt
from examples.mir.ddsp import DDSP_HOP, DDSP_SR, DDSPDecoder, DDSPStream, stream_synthesis
from examples.mir.devices import DEVICES, FLOAT32_BYTES, bound
from examples.mir.listen import MODELS, WITHIN, main
from examples.mir.models import example_input
from examples.mir.profiles import PROFILES
from examples.mir.run import build_lottery, run_task

_PHRASE = 1
_SECONDS = 0.5
# A chunked output may differ from the whole-phrase one only by float32 rounding: the phase is
# summed in float64 from another starting point, so its float32 value can differ by one ulp
# (4.8e-7 rad below 2 pi); harmonic k multiplies that by k, and the amplitudes of N harmonics
# sum to at most 2 (the heads' scale), so the harmonic part moves by at most 2 * N * 4.8e-7
# (6e-5 at N = 60); the noise differs only by the order of its overlap-add sums (~1e-7).
_STREAM_ATOL = 1e-4


@dataclass
class _Listened:
    run: Path
    out: Path
    results: pd.DataFrame
    table: pd.DataFrame


@pytest.fixture(scope="module")
def listened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Listened]:
    """A tiny ddsp lottery (1 replicate, 2 levels) and the listening outputs made from it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("runs")
        results, lottery, _ = run_task("ddsp", PROFILES["tiny"], root, progress=False, log=None)
        out = tmp_path_factory.mktemp("listen")
        argv = ["--run", str(lottery.directory), "--phrase", str(_PHRASE)]
        argv += ["--seconds", str(_SECONDS), "--audio", str(out / "audio")]
        argv += ["--figure", str(out / "spec.png"), "--table", str(out / "models.csv")]
        assert main([*argv, "--repeats", "1"]) == 0
        yield _Listened(lottery.directory, out, results, pd.read_csv(out / "models.csv"))
    finally:
        torch.set_num_threads(threads)


def test_four_wavs_of_the_test_phrase(listened: _Listened) -> None:
    _, task_run = build_lottery("ddsp", PROFILES["tiny"], listened.run.parent, log=None)
    target = task_run.splits.test.targets[_PHRASE].numpy()
    length = int(_SECONDS * DDSP_SR)
    audio = {}
    for name in ("target", *MODELS):
        info = sf.info(str(listened.out / "audio" / f"ddsp-{name}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (DDSP_SR, 1, "PCM_16")
        audio[name], _ = sf.read(str(listened.out / "audio" / f"ddsp-{name}.wav"))
        assert audio[name].shape == (length,)
    # the target is the run's test phrase, the reference's WAV its decoder's audio of it
    assert np.abs(audio["target"] - target[:length]).max() <= 1 / 2**15
    reference = lt.load(listened.run / "replicate-0" / "reference.lt", task_run.build_model)
    with torch.no_grad():
        made = reference.eval()(task_run.splits.test.inputs[_PHRASE : _PHRASE + 1])[0].numpy()
    assert np.abs(audio["reference"] - np.clip(made[:length], -1, 1)).max() <= 1 / 2**15


def test_figure_is_written(listened: _Listened) -> None:
    figure = listened.out / "spec.png"
    assert figure.is_file() and figure.read_bytes()[:4] == b"\x89PNG"


def test_table_picks_reference_optimal_and_smallest_on_validation(listened: _Listened) -> None:
    table, results = listened.table, listened.results
    assert list(table.model) == list(MODELS)
    ref, optimal, smallest = (table.iloc[i] for i in range(3))
    assert ref.level == 0 and ref.params > smallest.params
    assert ref.params >= optimal.params >= smallest.params
    # the smallest trimmed level of the run, whatever its loss (sizes within pick_models' 1%
    # count as equal, and the lower validation loss wins among them)
    trimmed = results[results.level > 0]
    assert trimmed.params.min() <= smallest.params <= trimmed.params.min() * 1.01
    same_size = trimmed[trimmed.params <= trimmed.params.min() * 1.01]
    assert smallest.val_loss == pytest.approx(same_size.val_error.min())
    # optimal: within WITHIN x the reference's validation loss, the fewest parameters so
    ref_val = results[results.level == 0].val_error.iloc[0]
    assert ref.val_loss == pytest.approx(ref_val)
    within = trimmed[trimmed.val_error <= WITHIN * ref_val]
    if within.empty:
        assert optimal.method == "reference" and optimal.level == 0
    else:
        assert optimal.val_loss <= WITHIN * ref_val
        assert optimal.params <= within.params.min() * 1.01  # pick_models' same-size margin


def test_table_costs_follow_the_rows(listened: _Listened) -> None:
    table, results = listened.table, listened.results
    seconds = example_input("ddsp", "tiny").shape[-1] * DDSP_HOP / DDSP_SR
    for _, row in table.iterrows():
        rows = results[results.path == row.path]
        assert row.macs_per_s == pytest.approx(rows.macs.iloc[0] / seconds, rel=1e-5)
        assert 0 < row.control_macs_per_s < row.macs_per_s  # the synthesizer's share is out
        assert row.test_loss == pytest.approx(rows.error.iloc[0], rel=1e-5)
        if row.method in ("reference", "trim", "finetune"):  # dense after trimming
            assert row.param_bytes == FLOAT32_BYTES * row.params
        for column in ("phrase_loss", "rtf_stream", "rtf_phrase"):
            assert np.isfinite(row[column]) and row[column] > 0, column
        assert 0 <= row.phrase_f0_within_50 <= 1
        for device in DEVICES:
            fits = bound(device, row.param_bytes, row.macs_per_s)
            assert row[f"fits_{device.key}"] == fits


def test_bounds_compare_memory_and_mac_rate() -> None:
    for device in DEVICES:
        limit_bytes, limit_macs = device.weight_memory_bytes, device.macs_per_second
        assert bound(device, limit_bytes, limit_macs).startswith("yes (memory 100%, MACs 100%")
        assert bound(device, limit_bytes + 1, 0).startswith("no")
        assert bound(device, 0, 2 * limit_macs).startswith("no")
    assert {d.key for d in DEVICES} == {"pi4", "nano33"} and all(d.sources for d in DEVICES)


def test_a_profile_that_does_not_make_the_data_is_refused(listened: _Listened) -> None:
    argv = ["--run", str(listened.run), "--profile", "quick"]
    argv += ["--audio", str(listened.out / "x"), "--table", str(listened.out / "x.csv")]
    with pytest.raises(SystemExit, match="--profile quick"):
        main(argv)


@pytest.mark.parametrize(("harmonics", "bands"), [(8, 17), (60, 65), (30, 129)])
def test_stream_equals_whole_phrase_synthesis(harmonics: int, bands: int) -> None:
    """Bands up to 129 take the noise FIR past one hop, so the delay grows past half a hop."""
    torch.manual_seed(0)
    model = DDSPDecoder(24, 20, harmonics, bands, 1).eval()
    x = example_input("ddsp", "paper", batch=2)  # 4 s, 1,000 frames
    chunks = [1, 7, 62, 250, 680]
    with torch.no_grad():
        whole = model(x)
        stream = DDSPStream(model)
        parts, done = [], 0
        for part in x.split(chunks, dim=-1):
            parts.append(stream.step(part))
            done += part.shape[-1]
            returned = sum(p.shape[-1] for p in parts)
            assert returned == max(done * DDSP_HOP - stream.delay, 0)
        chunked = torch.cat([*parts, stream.flush()], dim=-1)
        # without the carried state (a new stream per chunk) the audio is far off
        fresh = torch.cat([stream_synthesis(model, part, 250) for part in x.split(250, -1)], -1)
    assert stream.delay == max(DDSP_HOP // 2, bands - 1)
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() <= _STREAM_ATOL
    assert (fresh - whole).abs().max() > 100 * _STREAM_ATOL


def test_stream_of_a_trimmed_decoder(listened: _Listened) -> None:
    """A trimmed level (fewer GRU units and MLP widths) streams as it synthesises the phrase."""
    _, task_run = build_lottery("ddsp", PROFILES["tiny"], listened.run.parent, log=None)
    smallest = listened.results.sort_values("params").iloc[0]
    model = lt.load(listened.run / smallest.path, task_run.build_model).eval()
    x = task_run.splits.test.inputs[:2]
    with torch.no_grad():
        assert (stream_synthesis(model, x, 62) - model(x)).abs().max() <= _STREAM_ATOL

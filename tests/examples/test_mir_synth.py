"""Synthetic MIR data: model-ready shapes, determinism, balance, and musically sound content."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from examples.mir import synth
from examples.mir.features import (
    PITCH_CENTS,
    MIRData,
    center_windows,
    hz_to_cents,
    merge_onsets,
    transpose_chords,
)
from examples.mir.models import MIR_TASKS, TASKS, build_model

# number of examples per task in these tests (clips for the drum tasks)
N = {"instrument": 26, "singing": 20, "pitch": 64, "chord": 50, "drum": 3, "onset": 3}


@functools.cache
def _data(task: str, seed: int = 0) -> MIRData:
    return synth.GENERATORS[task](N[task], seed=seed, size="tiny")


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
def test_shapes_match_the_tiny_model(task: str) -> None:
    data = _data(task)
    x, y = data
    assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert x.shape[1:] == TASKS[task].size("tiny").input_shape
    assert y.shape[0] == x.shape[0]
    if TASKS[task].loss == "cross_entropy":
        assert y.dtype == torch.int64 and y.ndim == 1
    else:
        assert y.dtype == torch.float32 and y.shape[1] == TASKS[task].n_outputs
    model = build_model(task, "tiny").eval()
    with torch.no_grad():
        out = model(x[:8])
    assert out.shape == (min(8, len(x)), TASKS[task].n_outputs)


@pytest.mark.parametrize("task", ["instrument", "pitch", "chord", "onset"])
def test_same_seed_same_data_other_seed_other_data(task: str) -> None:
    a = _data(task)
    b = synth.GENERATORS[task](N[task], seed=0, size="tiny")
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    c = _data(task, seed=1)
    assert not torch.equal(a.inputs[: len(c.inputs)], c.inputs[: len(a.inputs)])


@pytest.mark.parametrize("task", ["instrument", "singing", "chord"])
def test_class_labels_are_balanced(task: str) -> None:
    y = _data(task).targets.numpy()
    counts = np.bincount(y, minlength=TASKS[task].n_outputs)
    assert counts.max() - counts.min() <= 1
    assert counts.min() >= N[task] // TASKS[task].n_outputs
    assert len(set(y[:5].tolist())) > 1  # shuffled, not sorted by class


def test_tonal_classes_are_distinct_but_overlapping() -> None:
    """A nearest-centroid classifier on average log spectra beats chance but is far from perfect."""
    for task, n_train in (("instrument", 104), ("singing", 80)):
        train = synth.GENERATORS[task](n_train, seed=5, size="tiny")
        test = _data(task)

        def feats(d: MIRData) -> np.ndarray:
            frames = d.inputs[:, 0].numpy().reshape(d.n, -1, 512)
            return np.log(np.abs(np.fft.rfft(frames, axis=2)).mean(axis=1) + 1e-6)

        f_tr, f_te = feats(train), feats(test)
        n_cls = TASKS[task].n_outputs
        centroids = np.stack([f_tr[train.targets.numpy() == c].mean(0) for c in range(n_cls)])
        pred = ((f_te[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        acc = float((pred == test.targets.numpy()).mean())
        assert 1.5 / n_cls < acc < 0.9, (task, acc)


def test_examples_within_a_class_differ() -> None:
    data = _data("instrument")
    y = data.targets
    first = torch.nonzero(y == y[0]).flatten()
    assert len(first) >= 2
    a, b = data.inputs[first[0]], data.inputs[first[1]]
    assert not torch.allclose(a, b)


def test_pitch_targets_peak_at_the_f0_bin() -> None:
    data = _data("pitch")
    f0 = data.meta["f0_hz"]
    cents = hz_to_cents(f0)
    assert (cents >= PITCH_CENTS[0]).all() and (cents <= PITCH_CENTS[-1]).all()
    peak = data.targets.argmax(dim=1).numpy()
    assert np.all(np.abs(PITCH_CENTS[peak] - cents) <= 10.0 + 1e-6)
    assert torch.all(data.targets.max(dim=1).values > 0.9)
    assert torch.all((data.targets >= 0) & (data.targets <= 1))
    # CREPE normalises every frame
    x = data.inputs[:, 0]
    torch.testing.assert_close(x.mean(dim=1), torch.zeros(len(x)), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(dim=1, unbiased=False), torch.ones(len(x)), atol=1e-3, rtol=0)
    # the f0s spread over several octaves
    assert np.log2(f0.max() / f0.min()) > 3


def test_pitch_frames_are_periodic_at_f0() -> None:
    """The autocorrelation of a frame peaks near one period of its labelled f0 (or a multiple)."""
    data = _data("pitch")
    hits = 0
    checked = 0
    for x, f0 in zip(data.inputs[:, 0].numpy(), data.meta["f0_hz"], strict=True):
        period = 16000.0 / f0
        if not 20 < period < 300:
            continue
        checked += 1
        ac = np.correlate(x, x, mode="full")[len(x) - 1 :]
        lag = int(round(period))
        ratio = ac[lag - 2 : lag + 3].max() / ac[0]
        hits += ratio > 0.3
    assert checked >= 10 and hits / checked > 0.6


def test_chord_patches_contain_the_chord_tones() -> None:
    data = _data("chord")
    x = data.inputs[:, 0].numpy().mean(axis=2)  # (n, 105) average over time
    chroma = np.zeros((len(x), 12))
    for b in range(x.shape[1]):
        chroma[:, (b // 2) % 12] += x[:, b]  # 2 bins per semitone from C1
    overlap = []
    for vec, lab in zip(chroma, data.targets.numpy(), strict=True):
        if lab == 24:
            continue
        root, third = lab % 12, 3 if lab >= 12 else 4
        tones = {root, (root + third) % 12, (root + 7) % 12}
        overlap.append(len(tones & set(np.argsort(vec)[-3:].tolist())) / 3)
    assert np.mean(overlap) > 0.6


def test_transpose_chords_moves_bins_and_relabels() -> None:
    x = torch.arange(105.0).repeat(3, 1, 15, 1).transpose(2, 3)  # (3, 1, 105, 15)
    y = torch.tensor([0, 21, 24])  # C:maj, A:min, N
    xt, yt = transpose_chords(x, y, 2)
    assert yt.tolist() == [2, 12 + 11, 24]
    assert torch.equal(xt[..., 4:, :], x[..., :-4, :])
    assert torch.all(xt[..., :4, :] == 0)
    xb, yb = transpose_chords(xt, yt, -2)
    assert yb.tolist() == y.tolist()
    assert torch.equal(xb[..., :-4, :], x[..., :-4, :])


@pytest.mark.parametrize("task", ["drum", "onset"])
def test_drum_targets_are_sparse_but_present_and_align_with_energy(task: str) -> None:
    data = _data(task)
    y = data.targets.numpy()
    rate = y.mean(axis=0)
    assert np.all(rate > 0.01) and np.all(rate < 0.3), rate
    # spectral flux into the centre frame is much larger at labelled onsets
    x = data.inputs[:, 0].numpy()
    c = x.shape[2] // 2
    flux = np.maximum(x[:, :, c] - x[:, :, c - 1], 0).sum(axis=1)
    for h in range(y.shape[1]):
        pos = y[:, h] > 0
        assert flux[pos].mean() > 2 * flux[~pos].mean()
    # every window knows its clip and frame; frames run 0..n-1 per clip
    meta = data.meta
    assert len(meta["onsets"]) == N[task]
    for clip in range(N[task]):
        frames = meta["frame"][meta["clip"] == clip]
        assert np.array_equal(frames, np.arange(len(frames)))
    # onset targets sit at the frames of the reference onset times
    fps = meta["fps"]
    rows = meta["clip"] == 0
    for h, ref in enumerate(meta["onsets"][0]):
        expected = np.unique(np.round(ref * fps).astype(int))
        assert np.array_equal(np.flatnonzero(y[rows, h]), expected)


def test_drum_and_onset_clips_share_audio_and_merge_hits() -> None:
    drum, onset = _data("drum"), _data("onset")
    assert torch.equal(drum.inputs, onset.inputs)
    for per_drum, merged in zip(drum.meta["onsets"], onset.meta["onsets"], strict=True):
        everything = np.sort(np.concatenate(per_drum))
        assert len(merged[0]) <= len(everything)
        assert np.all(np.diff(merged[0]) >= 0.05)
        # every hit is within 50 ms after a merged onset
        gaps = everything[:, None] - merged[0][None, :]
        assert np.all(((gaps >= 0) & (gaps < 0.05)).any(axis=1))
    # some hits overlap (several drums at once), so merging really removed events
    total = sum(len(np.concatenate(o)) for o in drum.meta["onsets"])
    assert sum(len(o[0]) for o in onset.meta["onsets"]) < total


def test_merge_onsets_and_center_windows() -> None:
    assert merge_onsets(np.array([0.3, 0.0, 0.01, 0.2, 0.26])).tolist() == [0.0, 0.2, 0.26, 0.3]
    feats = np.arange(12.0).reshape(2, 6)
    win = center_windows(feats, 3)
    assert win.shape == (6, 2, 3)
    assert win[0].tolist() == [[0, 0, 1], [0, 6, 7]]
    assert win[3].tolist() == [[2, 3, 4], [8, 9, 10]]
    with pytest.raises(ValueError, match="odd"):
        center_windows(feats, 4)


def test_make_dataset_splits() -> None:
    splits = synth.make_dataset("chord", 40, seed=3, size="tiny")
    train, val, test = splits
    assert (train.n, val.n, test.n) == (28, 6, 6)
    assert set(splits.as_dict()) == {"train", "val", "test"}
    again = synth.make_dataset("chord", 40, seed=3, size="tiny")
    assert torch.equal(again.test.inputs, test.inputs)
    flat_train = train.inputs.flatten(1)
    for row in test.inputs.flatten(1):
        assert not torch.isclose(flat_train, row).all(dim=1).any()
    loader = torch.utils.data.DataLoader(train.dataset(), batch_size=8)
    xb, yb = next(iter(loader))
    assert xb.shape == (8, 1, 105, 15) and yb.shape == (8,)
    with pytest.raises(ValueError, match="unknown task"):
        synth.make_dataset("tempo", 10)
    with pytest.raises(ValueError, match="unknown size"):
        synth.make_dataset("pitch", 10, size="huge")

"""Task errors: zero for perfect predictions, and the right value on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from examples.mir import metrics, synth
from examples.mir.features import MIRData, cents_to_hz, pitch_target
from examples.mir.models import TASKS


def test_classification_error_on_labels_and_logits() -> None:
    y = torch.tensor([0, 1, 1, 2])
    assert metrics.classification_error(y, y) == 0.0
    assert metrics.classification_error(torch.tensor([0, 1, 2, 2]), y) == pytest.approx(0.25)
    logits = torch.tensor([[5.0, 0, 0], [0, 3, 0], [0, 0, 1], [0, 0, 2]])
    assert metrics.classification_error(logits, y) == pytest.approx(0.25)
    assert metrics.classification_error(np.eye(3)[[0, 1, 1, 2]], y) == 0.0
    with pytest.raises(ValueError, match="predictions"):
        metrics.classification_error(torch.tensor([0, 1]), y)


def test_pitch_error_counts_frames_beyond_50_cents() -> None:
    ref = np.full(4, 440.0)
    assert metrics.pitch_error(ref, ref) == 0.0
    est = np.array([440.0, 440 * 2 ** (20 / 1200), 440 * 2 ** (-45 / 1200), 440 * 2 ** (60 / 1200)])
    assert metrics.pitch_error(est, ref) == pytest.approx(0.25)
    # an octave error is an error; an unvoiced estimate (0 Hz) is an error
    assert metrics.pitch_error(np.array([880.0, 0.0, 440, 440]), ref) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="voiced"):
        metrics.pitch_error(ref, np.zeros(4))


def test_raw_chroma_accuracy_forgives_octave_errors_only() -> None:
    ref = np.array([440.0, 440.0, 220.0, 330.0, 330.0])
    # right, an octave up, two octaves down, a fifth off, 40 cents off an octave below
    est = np.array([440.0, 880.0, 55.0, 495.0, 165 * 2 ** (40 / 1200)])
    assert metrics.raw_pitch_accuracy(est, ref) == pytest.approx(0.2)
    assert metrics.raw_chroma_accuracy(est, ref) == pytest.approx(0.8)
    assert metrics.pitch_error(est, ref) == pytest.approx(1 - 0.2)
    # an unvoiced estimate (0 Hz) is wrong for both, even where 0 cents would match the chroma
    ref = np.array([160.0, 160.0])  # 160 Hz is 4 octaves above mir_eval's 10 Hz: 4800 cents
    est = np.array([0.0, 320.0])
    assert metrics.raw_chroma_accuracy(est, ref) == pytest.approx(0.5)
    assert metrics.raw_pitch_accuracy(est, ref) == 0.0
    assert metrics.raw_chroma_accuracy(ref, ref, cent_tolerance=1.0) == 1.0
    with pytest.raises(ValueError, match="voiced"):
        metrics.raw_chroma_accuracy(ref, np.zeros(2))
    with pytest.raises(ValueError, match="estimates"):
        metrics.raw_chroma_accuracy(ref[:1], ref)


def test_decode_pitch_inverts_the_soft_targets() -> None:
    f0 = cents_to_hz(np.linspace(2200.0, 8800.0, 50))
    target = pitch_target(f0)
    est = metrics.decode_pitch(target, from_logits=False)
    assert np.max(np.abs(1200 * np.log2(est / f0))) < 2.0
    logits = torch.logit(target.clamp(1e-6, 1 - 1e-6))
    est_logits = metrics.decode_pitch(logits)
    assert np.max(np.abs(1200 * np.log2(est_logits / f0))) < 2.0
    with pytest.raises(ValueError, match="activations"):
        metrics.decode_pitch(torch.zeros(3, 100))


def test_peak_pick_threshold_local_max_and_plateaus() -> None:
    act = np.array([0.0, 0.6, 0.2, 0.7, 0.7, 0.0, 0.4, 0.9])
    assert metrics.peak_pick(act, 0.5).tolist() == [1, 4, 7]
    assert metrics.peak_pick(act, 0.8).tolist() == [7]
    assert metrics.peak_pick(act, 0.3, pre_max=2, post_max=2).tolist() == [4, 7]
    assert metrics.peak_pick(np.zeros(0)).tolist() == []


def _one_clip(refs: list[list[float]], n_frames: int, fps: float = 10.0) -> MIRData:
    meta = {
        "clip": np.zeros(n_frames, dtype=int),
        "frame": np.arange(n_frames),
        "onsets": [[np.asarray(r) for r in refs]],
        "fps": fps,
    }
    return MIRData(torch.zeros(n_frames, 1, 64, 11), torch.zeros(n_frames, len(refs)), meta)


def test_onset_error_hand_made_case() -> None:
    data = _one_clip([[0.5, 1.2]], 20)
    act = np.zeros((20, 1))
    act[[5, 15], 0] = 0.9  # 0.5 s hits, 1.5 s is 300 ms away from 1.2 s
    assert metrics.onset_error(act, data, from_logits=False) == pytest.approx(0.5)
    act[12, 0] = 0.8  # now 1.2 s is found too; 1.5 s stays a false positive
    # hits 2, references 2, estimates 3 -> F = 4 / 5
    assert metrics.onset_error(act, data, from_logits=False) == pytest.approx(0.2)
    # estimates within 50 ms are hits (frame 12 at fps 10 is 1.2 s; at fps 10.3 it is ~1.165 s)
    shifted = _one_clip([[0.5, 1.2]], 20, fps=10.3)
    assert metrics.onset_error(act, shifted, from_logits=False) == pytest.approx(0.2)


def test_onset_error_micro_averages_heads_and_handles_empties() -> None:
    data = _one_clip([[0.5], []], 10)
    act = np.zeros((10, 2))
    act[5, 0] = 1.0
    assert metrics.onset_error(act, data, from_logits=False) == 0.0
    act[2, 1] = 1.0  # a false positive on the empty head
    assert metrics.onset_error(act, data, from_logits=False) == pytest.approx(1 - 2 / 3)
    empty = _one_clip([[]], 10)
    assert metrics.onset_error(np.zeros((10, 1)), empty, from_logits=False) == 0.0
    with pytest.raises(ValueError, match="outputs"):
        metrics.onset_error(np.zeros((9, 1)), empty)


def test_best_threshold_finds_weak_peaks() -> None:
    data = _one_clip([[0.5, 1.2]], 20)
    act = np.full((20, 1), 0.1)
    act[[5, 12], 0] = 0.3
    assert metrics.onset_error(act, data, from_logits=False) == 1.0
    threshold, error = metrics.best_threshold(act, data, from_logits=False)
    assert 0.1 < threshold <= 0.3 and error == 0.0
    assert metrics.onset_error(act, data, from_logits=False, threshold=threshold) == 0.0


@pytest.mark.parametrize("task", sorted(synth.GENERATORS))
def test_perfect_predictions_score_zero_on_synthetic_data(task: str) -> None:
    n = 2 if task in ("drum", "onset") else 26
    data = synth.GENERATORS[task](n, seed=4, size="tiny")
    if data.targets.dtype == torch.int64:
        perfect = torch.eye(TASKS[task].n_outputs)[data.targets]
        assert metrics.task_error(task, perfect, data) == 0.0
        wrong = perfect.roll(1, dims=1)
        assert metrics.task_error(task, wrong, data) == 1.0
    else:
        assert metrics.task_error(task, data.targets, data, from_logits=False) == 0.0
        assert metrics.task_error(task, torch.zeros_like(data.targets), data, from_logits=False) > 0


def test_task_error_rejects_unknown_tasks() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        metrics.task_error("tempo", torch.zeros(1), MIRData(torch.zeros(1), torch.zeros(1)))

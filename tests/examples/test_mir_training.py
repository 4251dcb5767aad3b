"""TaskRun.evaluate's columns: pitch's raw pitch and chroma accuracy, on all test frames and on
those of held-out timbres; the other tasks' columns as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from examples.mir import render_pitch, synth
from examples.mir.features import MIRData, Splits, pitch_target
from examples.mir.train_settings import TrainSettings
from examples.mir.training import TaskRun, pitch_accuracies

_SETTINGS = TrainSettings(max_epochs=1, patience=1)


class _Lookup(nn.Module):
    """Returns the logits stored for each frame; a frame's first sample holds its index."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0, 0].long()]


def _frames(f0: np.ndarray, est: np.ndarray, program: list[int]) -> tuple[MIRData, torch.Tensor]:
    """Pitch data of reference ``f0`` and ``program`` per frame, and logits decoding to ``est``."""
    inputs = torch.zeros(len(f0), 1, 1024)
    inputs[:, 0, 0] = torch.arange(len(f0), dtype=torch.float32)
    meta = {"f0_hz": f0, "program": np.asarray(program), "sample_rate": 16000}
    logits = torch.logit(pitch_target(est).clamp(1e-6, 1 - 1e-6))
    return MIRData(inputs, pitch_target(f0), meta), logits


def test_pitch_evaluation_reports_accuracies_on_all_frames_and_held_out_timbres() -> None:
    held, seen = render_pitch.PITCH_HELDOUT_PROGRAMS[0], render_pitch.PITCH_TRAIN_PROGRAMS[0]
    f0 = np.array([440.0, 220.0, 330.0, 262.0, 440.0, 440.0, 220.0, 330.0])
    # seen frames: all right; held-out frames: right, an octave off, a fifth off, an octave off
    est = np.array([440.0, 220.0, 330.0, 262.0, 440.0, 880.0, 330.0, 165.0])
    program = [seen] * 4 + [held] * 4
    data, logits = _frames(f0, est, program)
    run = TaskRun("pitch", Splits(data, data, data), "quick", _SETTINGS, log=None)
    result = run.evaluate(_Lookup(logits))
    assert result["heldout_n"] == 4 and result["test_n"] == 8
    assert result["rpa"] == pytest.approx(5 / 8) and result["rca"] == pytest.approx(7 / 8)
    assert result["rpa_heldout"] == pytest.approx(1 / 4)
    assert result["rca_heldout"] == pytest.approx(3 / 4)
    assert result["error"] == pytest.approx(1 - result["rpa"])  # the task's error is unchanged


def test_pitch_accuracies_without_held_out_frames_are_nan() -> None:
    f0 = np.array([440.0, 220.0])
    data, logits = _frames(f0, f0, [render_pitch.PITCH_TRAIN_PROGRAMS[0]] * 2)
    result = pitch_accuracies(logits, data)
    assert result["rpa"] == 1.0 and result["heldout_n"] == 0
    assert math.isnan(result["rpa_heldout"]) and math.isnan(result["rca_heldout"])
    del data.meta["program"]  # NSynth frames and synthetic tones have no GM program
    assert pitch_accuracies(logits, data)["heldout_n"] == 0


def test_other_tasks_evaluate_to_the_columns_they_had() -> None:
    torch.manual_seed(0)
    splits = synth.make_dataset("chord", 30, seed=0, size="tiny")
    run = TaskRun("chord", splits, "tiny", _SETTINGS, log=None)
    result = run.evaluate(run.build_model())
    assert set(result) == {"error", "val_error", "error_low", "error_high", "test_n"}

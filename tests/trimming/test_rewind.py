"""Exact rewind (design invariant 2) for every method on every layer pattern."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import randomize_norms
from zoo_patterns import CASES, ConvFlatten

import lotterytrim as lt
from lotterytrim.calls import run_model
from lotterytrim.engine.masknames import model_tensors
from lotterytrim.trimming import masking
from lotterytrim.trimming.rewind import RewindPoint

IDS = [c.name for c in CASES]


def _build(case):
    torch.manual_seed(0)
    return randomize_norms(case.build()), case.inputs()


def _perturb(model, x):
    """Change every parameter and the norm statistics, as training would."""
    model.train()
    with torch.no_grad():
        run_model(model, x)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()


def _assert_equal(expected, model):
    got = model_tensors(model)
    assert set(got) == set(expected)
    for name, t in got.items():
        assert torch.equal(t, expected[name]), name


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("method", ["trim", "mask"])
def test_rewound_survivors_equal_rewind_point(case, method):
    model, x = _build(case)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method=method)
    point = trimmer.capture_rewind()
    captured = {k: v.clone() for k, v in point.tensors().items()}
    for _ in range(2):
        _perturb(model, x)
        trimmer.step()
    expected = trimmer.plan.apply_to_state_dict(captured)
    if method == "mask":  # masked entries are not survivors: they are held at exactly zero
        for name, mask in masking.current_masks(model).items():
            expected[name] = expected[name] * mask
    _assert_equal(expected, model)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_finetune_keeps_trained_survivors(case):
    model, x = _build(case)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method="finetune")
    _perturb(model, x)
    trained = {k: v.clone() for k, v in model_tensors(model).items()}
    trimmer.step()
    _assert_equal(trimmer.plan.apply_to_state_dict(trained), model)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reinit_is_seeded(case):
    runs = []
    for _ in range(2):
        model, x = _build(case)
        trimmer = lt.LotteryTrimmer(model, x, amount=0.3, method="reinit", seed=3)
        _perturb(model, x)
        trimmer.step()
        runs.append(model_tensors(model))
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


def test_buffers_and_batch_counter_are_rewound():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3)
    trimmer.capture_rewind()
    counter = model.b1.num_batches_tracked.clone()
    mean = model.b1.running_mean.clone()
    _perturb(model, x)
    assert not torch.equal(model.b1.running_mean, mean)
    trimmer.step()
    assert torch.equal(model.b1.num_batches_tracked, counter)
    keep = trimmer.plan.kept_indices("b1.running_mean", 0)
    assert torch.equal(model.b1.running_mean, mean[torch.as_tensor(keep)])


def test_rewind_point_on_disk(tmp_path):
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    reference = copy.deepcopy(model)
    path = tmp_path / "w_k.safetensors"
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3, rewind_to_disk=path)
    point = trimmer.capture_rewind()
    assert point.state is None and path.exists()
    _perturb(model, x)
    trimmer.step()
    expected = trimmer.plan.apply_to_state_dict(model_tensors(reference))
    _assert_equal(expected, model)


def test_restore_rejects_a_foreign_model():
    torch.manual_seed(0)
    model = ConvFlatten()
    point = RewindPoint.capture(model, lt.TrimPlan.identity(model))
    other = torch.nn.Linear(3, 2)
    with pytest.raises(KeyError, match="different tensors"):
        point.restore(other, lt.TrimPlan.identity(other))

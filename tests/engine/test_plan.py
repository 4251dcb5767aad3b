"""The trimming plan: JSON, composition across steps, application to states and models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from helpers import outputs
from zoo_patterns import CASES, ConvFlatten

import lotterytrim as lt
from lotterytrim.engine.plan import TrimPlan


def _two_steps(case=CASES[0]):
    torch.manual_seed(0)
    model, x = case.build(), case.inputs()
    original = copy.deepcopy(model)
    p1, _ = lt.trim(model, x, "magnitude", 0.3)
    mid_state = copy.deepcopy(model.state_dict())
    p2, _ = lt.trim(model, x, "magnitude", 0.3)
    return original, model, x, p1, p2, mid_state


def test_json_roundtrip_is_exact():
    _, _, _, p1, p2, _ = _two_steps()
    plan = p1.then(p2)
    again = TrimPlan.from_json(plan.to_json())
    assert again == plan
    for name, ks in plan.keep.items():
        for a, b in zip(ks, again.keep[name], strict=True):
            assert (a is None and b is None) or np.array_equal(a, b)


def test_composed_plan_applies_to_original_state():
    original, model, _, p1, p2, mid = _two_steps()
    total = p1.then(p2)
    sliced = total.apply_to_state_dict(original.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(sliced[k], v), k
    # and to the state of the earlier trimmed model
    from_mid = total.apply_to_state_dict(mid, source=p1)
    for k, v in model.state_dict().items():
        assert torch.equal(from_mid[k], v), k


def test_apply_to_fresh_model_reproduces_outputs():
    for case in CASES:
        original, model, x, p1, p2, _ = _two_steps(case)
        fresh = copy.deepcopy(original)
        p1.then(p2).apply_to_model(fresh)
        for a, b in zip(outputs(fresh, x), outputs(model, x), strict=True):
            assert torch.equal(a, b), case.name


def test_relative_to_rejects_non_extension():
    _, _, _, p1, p2, _ = _two_steps()
    total = p1.then(p2)
    assert total.relative_to(p1) == p2 or total.relative_to(p1).keep.keys() >= p2.keep.keys()
    with pytest.raises(ValueError, match="does not extend"):
        p1.relative_to(total)


def test_wrong_shapes_are_reported_with_the_tensor_name():
    _, _, _, p1, _, _ = _two_steps()
    other = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(KeyError, match="c1.weight"):
        p1.apply_to_model(other)
    model = ConvFlatten()
    lt.trim(model, torch.randn(2, 1, 32), "magnitude", 0.3)
    with pytest.raises(ValueError, match="not built as the plan's source"):
        p1.apply_to_model(model)


def test_malformed_json():
    with pytest.raises(ValueError, match="plan"):
        TrimPlan.from_dict({"format": 7})
    with pytest.raises(ValueError, match="malformed"):
        TrimPlan.from_dict({"format": 1, "shapes": {}})


def test_identity():
    model = ConvFlatten()
    plan = TrimPlan.identity(model)
    assert plan.is_identity()
    assert plan.current_shape("fc1.weight") == (24, 256)

"""Global unstructured magnitude masks: counts, order, persistence, compaction search."""

from __future__ import annotations

import torch
from zoo_patterns import ConvFlatten

from lotterytrim.engine.graph import TrimGraph
from lotterytrim.engine.masknames import plain_state
from lotterytrim.trimming import masking


def _model():
    torch.manual_seed(0)
    return ConvFlatten()


def test_masks_share_of_remaining_weights():
    model = _model()
    total = sum(w.numel() for w in masking.current_masks(model).values())
    masking.apply_masks(model, masking.global_magnitude_masks(model, 0.2))
    assert masking.masked_count(model) == round(0.2 * total)
    masking.apply_masks(model, masking.global_magnitude_masks(model, 0.5))
    remaining = total - round(0.2 * total)
    assert masking.masked_count(model) == round(0.2 * total) + round(0.5 * remaining)


def test_smallest_magnitudes_go_first_across_layers():
    model = _model()
    weights = {n: m.weight.detach().abs().clone() for n, (m, _) in masking.maskable(model).items()}
    masks = masking.global_magnitude_masks(model, 0.3)
    kept = torch.cat([weights[n][masks[n] == 1] for n in masks])
    gone = torch.cat([weights[n][masks[n] == 0] for n in masks])
    assert gone.max() <= kept.min()


def test_plain_state_and_strip():
    model = _model()
    masking.apply_masks(model, masking.global_magnitude_masks(model, 0.4))
    state = plain_state(model)
    assert "fc1.weight" in state and "fc1.weight_mask" not in state
    assert torch.equal(state["fc1.weight"], model.fc1.weight)
    masks = masking.strip_masks(model)
    assert set(masks) == set(masking.maskable(model))
    assert torch.equal(model.fc1.weight, state["fc1.weight"])
    assert not hasattr(model.fc1, "weight_mask")


def test_zero_fan_in_units_found():
    model = _model()
    masks = masking.current_masks(model)
    masks["c2.weight"][[1, 4]] = 0
    masking.apply_masks(model, masks)
    masks = masking.strip_masks(model)
    graph = TrimGraph(model, torch.randn(2, 1, 32))
    removal = masking.zero_fan_in_removal(graph, masks)
    found = {graph.groups[g].name: u.tolist() for g, u in removal.items()}
    assert list(found.values()) == [[1, 4]]


def test_min_units_respected():
    model = _model()
    masks = masking.current_masks(model)
    masks["fc1.weight"][:] = 0
    masking.apply_masks(model, masks)
    masks = masking.strip_masks(model)
    graph = TrimGraph(model, torch.randn(2, 1, 32))
    removal = masking.zero_fan_in_removal(graph, masks, min_units=2)
    assert [u.size for u in removal.values()] == [22]

"""Global unstructured magnitude masks: counts, order, persistence, compaction search."""

from __future__ import annotations

import torch
from torch import nn
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


def test_masks_train_without_the_product_and_keep_prune_conventions():
    from torch.nn.utils import prune

    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    mask = (torch.rand(4, 6) > 0.5).float()
    masking.apply_masks(nn.Sequential(layer), {"0.weight": mask})
    assert prune.is_pruned(layer) and isinstance(layer.weight_orig, nn.Parameter)
    assert torch.equal(layer.weight_mask, mask)
    with torch.no_grad():  # values written behind the mask (a rewind does this) ...
        layer.weight_orig.add_(1.0)
    x = torch.randn(3, 6)
    expected = x @ ((layer.weight_orig * mask).t()) + layer.bias
    out = layer(x)  # ... never reach the output
    assert torch.allclose(out, expected)
    out.sum().backward()
    assert torch.all(layer.weight_orig.grad[mask == 0] == 0)
    assert torch.any(layer.weight_orig.grad[mask == 1] != 0)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        layer(x).pow(2).sum().backward()
        opt.step()
    assert torch.all(layer.weight_orig[mask == 0] == 0)
    # the layer computes with the stored tensor itself, not a per-forward product
    layer(x)
    assert layer.weight.data_ptr() == layer.weight_orig.data_ptr()
    prune.remove(layer, "weight")
    assert isinstance(layer.weight, nn.Parameter) and torch.all(layer.weight[mask == 0] == 0)

"""``lt.recalibrate_norms``: BatchNorm statistics re-estimated after a step, nothing else moved."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lotterytrim as lt


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 8, 3),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Conv1d(8, 8, 3),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16, 3),
    )


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(16, 1, 20, generator=g) * 3 + 1 for _ in range(4)]


def test_statistics_become_the_average_over_the_batches() -> None:
    model, batches = _net(), _batches()
    model.eval()
    model[1].running_mean.fill_(7.0)
    weights = copy.deepcopy([p.detach() for p in model.parameters()])
    assert lt.recalibrate_norms(model, batches) == 4
    with torch.no_grad():
        first = torch.cat([model[0](x) for x in batches])
    assert torch.allclose(model[1].running_mean, first.mean(dim=(0, 2)), atol=1e-5)
    # the unbiased variance per batch, averaged (what a BatchNorm with momentum=None keeps)
    per_batch = torch.stack([model[0](x).var(dim=(0, 2)) for x in batches]).mean(0)
    assert torch.allclose(model[1].running_var, per_batch.detach(), atol=1e-4)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True))
    assert model[1].momentum == 0.1  # the layer's own setting is back
    assert not any(m.training for m in model.modules())  # modes as they came


def test_it_repairs_a_trimmed_network_whose_statistics_went_stale() -> None:
    model, batches = _net(), _batches()
    model.eval()
    lt.trim(model, batches[0], amount=0.4)
    shifted = torch.cat([x + 2.0 for x in batches])  # the stored statistics fit none of this
    with torch.no_grad():
        batch_stats = copy.deepcopy(model).train()
        batch_stats[3].eval()  # no dropout: a norm in train mode uses the batch's statistics
        expect = batch_stats(shifted)
        stale = (model(shifted) - expect).abs().mean()
        lt.recalibrate_norms(model, [shifted])
        fresh = (model(shifted) - expect).abs().mean()
    assert fresh < 0.01 * stale


def test_a_model_without_norms_reads_nothing() -> None:
    def never():  # type: ignore[no-untyped-def]
        raise AssertionError("the data was read")
        yield

    assert lt.recalibrate_norms(nn.Sequential(nn.Linear(4, 4)), never()) == 0


def test_max_batches_and_empty_data() -> None:
    model, batches = _net(), _batches()
    assert lt.recalibrate_norms(model, batches, max_batches=2) == 2
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match="no batches"):
        lt.recalibrate_norms(model, [])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # an empty pass changes nothing
    with pytest.raises(ValueError, match="max_batches"):
        lt.recalibrate_norms(model, batches, max_batches=0)


def test_a_batch_that_fails_leaves_the_statistics_as_they_were() -> None:
    model, batches = _net(), _batches()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(RuntimeError):
        lt.recalibrate_norms(model, [batches[0], torch.randn(2, 5, 20)])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model[1].momentum == 0.1


def test_batches_with_targets_are_read_like_the_criteria_read_them() -> None:
    model, batches = _net(), _batches()
    twin = copy.deepcopy(model)
    lt.recalibrate_norms(model, batches)
    lt.recalibrate_norms(twin, [(x, torch.zeros(len(x), dtype=torch.long)) for x in batches])
    assert torch.equal(model[1].running_mean, twin[1].running_mean)
    assert torch.equal(model[5].running_var, twin[5].running_var)

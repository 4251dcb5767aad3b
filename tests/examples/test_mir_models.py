"""The five MIR model families: shapes, sizes against the paper's Table 1, and layer hygiene."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from examples.mir.models import (
    MIR_TASKS,
    SIZES,
    TASKS,
    build_model,
    count_parameters,
    example_input,
)
from examples.mir.networks import (
    CREPE_BASE_FILTERS,
    Crepe,
    DrumTranscriber,
    crepe,
    waveform_classifier,
)

# Reference model sizes from the paper's Table 1 and the relative tolerance we hold them to.
PAPER_PARAMS = {
    "instrument": (797e3, 0.05),
    "singing": (1.4e6, 0.05),
    "pitch": (5.9e6, 0.05),
    "chord": (416e3, 0.10),
    "drum": (8.1e6, 0.05),
}
ALLOWED_LEAVES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.Dropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.Linear,
    nn.Flatten,
)


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


@functools.cache
def _param_count(task: str, size: str) -> int:
    return count_parameters(build_model(task, size))


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
def test_tiny_forward_shape_and_backward(task: str) -> None:
    torch.manual_seed(0)
    model = build_model(task, "tiny")
    x = example_input(task, "tiny", batch=3)
    y = model(x)
    assert isinstance(y, torch.Tensor)
    assert y.shape == (3, TASKS[task].n_outputs)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
@pytest.mark.parametrize("size", ["paper", "quick"])
def test_forward_shape(task: str, size: str) -> None:
    model = build_model(task, size).eval()
    with torch.no_grad():
        y = model(example_input(task, size, batch=1))
    assert y.shape == (1, TASKS[task].n_outputs)


@pytest.mark.parametrize("task", sorted(PAPER_PARAMS))
def test_paper_param_counts_match_table_1(task: str) -> None:
    expected, tol = PAPER_PARAMS[task]
    n = _param_count(task, "paper")
    assert abs(n - expected) / expected < tol, f"{task}: {n:,} vs {expected:,.0f}"


def test_onset_is_drum_model_with_a_single_head() -> None:
    drum, onset = build_model("drum"), build_model("onset")
    head = count_parameters(drum.heads[0])
    assert count_parameters(drum) - count_parameters(onset) == 2 * head
    assert len(onset.heads) == 1 and len(drum.heads) == 3


def test_sizes_shrink_in_order() -> None:
    for task in TASKS:
        counts = [_param_count(task, s) for s in SIZES]
        # pitch's quick CREPE has capacity 1, as narrow as its tiny one
        assert counts[0] > counts[1] >= counts[2], (task, counts)
        assert counts[2] < 100_000, (task, counts)


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
def test_only_plain_layers_and_output_layer_last(task: str) -> None:
    model = build_model(task, "tiny")
    leaves = _leaves(model)
    assert all(isinstance(m, ALLOWED_LEAVES) for m in leaves), {type(m) for m in leaves}
    if isinstance(model, DrumTranscriber):
        for head in model.heads:
            assert isinstance(head[-1], nn.Linear) and head[-1].out_features == 1
    else:
        assert isinstance(leaves[-1], nn.Linear)
        assert leaves[-1].out_features == TASKS[task].n_outputs


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
def test_fx_traceable_and_deterministic_in_eval(task: str) -> None:
    model = build_model(task, "tiny").eval()
    traced = torch.fx.symbolic_trace(model)
    x = example_input(task, "tiny", batch=2, seed=3)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        torch.testing.assert_close(traced(x), model(x))


def test_crepe_capacities_follow_the_reference() -> None:
    for name, mult in [("tiny", 4), ("small", 8), ("medium", 16), ("full", 32)]:
        model = crepe(name)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
        assert [c.out_channels for c in convs] == [f * mult for f in CREPE_BASE_FILTERS]
        assert convs[0].kernel_size == (512,) and convs[0].stride == (4,)
        assert all(c.kernel_size == (64,) for c in convs[1:])
    # CREPE "full" is the 22-million-parameter model the paper quotes
    assert abs(count_parameters(crepe("full")) - 22e6) / 22e6 < 0.05
    assert isinstance(crepe(2), Crepe)
    with pytest.raises(ValueError, match="capacity"):
        crepe("huge")


def test_crepe_feature_map_lengths() -> None:
    model = crepe("micro").eval()
    lengths = []
    h = torch.zeros(1, 1, 1024)
    for layer in model.features:
        h = layer(h)
        if isinstance(layer, nn.MaxPool1d):
            lengths.append(h.shape[-1])
    assert lengths == [128, 64, 32, 16, 8, 4]


def test_drum_pools_frequency_only() -> None:
    model = build_model("drum", "tiny")
    pools = [m for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 4 and all(p.kernel_size == (2, 1) for p in pools)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (5, 5) and c.padding == (2, 2) for c in convs)
    assert [c.out_channels for c in build_model("drum").modules() if isinstance(c, nn.Conv2d)] == [
        256
    ] * 4


def test_waveform_classifier_flat_size_and_errors() -> None:
    inst, sing = build_model("instrument"), build_model("singing")
    assert inst.flat_features * 4 == sing.flat_features  # 3 s at 44.1 kHz is 4x 1.5 s at 22.05
    dilations = [m.dilation[0] for m in inst.modules() if isinstance(m, nn.Conv1d)]
    assert dilations == [1, 2, 4, 8]
    with pytest.raises(ValueError, match="too short"):
        waveform_classifier(13, n_samples=512)


def test_registry_errors_and_overrides() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        build_model("tempo")
    with pytest.raises(ValueError, match="unknown size"):
        build_model("chord", "huge")
    assert count_parameters(build_model("pitch", "tiny", capacity="tiny")) == count_parameters(
        crepe("tiny")
    )


@pytest.mark.parametrize("task", sorted(MIR_TASKS))
def test_the_trimming_engine_can_trim_every_model(task: str) -> None:
    lt = pytest.importorskip("lotterytrim")
    if not hasattr(lt, "trim"):
        pytest.skip("lotterytrim.trim is not available")
    torch.manual_seed(0)
    model = build_model(task, "tiny").eval()
    x = example_input(task, "tiny", batch=2)
    before = count_parameters(model)
    lt.trim(model, x, criterion="magnitude", amount=0.3)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, TASKS[task].n_outputs)
    assert count_parameters(model) < 0.8 * before

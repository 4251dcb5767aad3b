"""The lottery driver: full lotteries per method, resume, optimizer rebuild, misuse errors."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import same_state, snapshot
from torch import nn
from torch.nn import functional as F
from zoo_models import CRNN
from zoo_patterns import ConvFlatten

import lotterytrim as lt
from lotterytrim.cli import main as cli_main
from lotterytrim.measure.layers import layer_diff
from lotterytrim.trimming.rewind import model_tensors
from lotterytrim.trimming.state import load_trimmer_state

METHODS = ["trim", "finetune", "reinit", "mask"]


def _data(seed: int = 0, n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 32, generator=gen), torch.randint(0, 5, (8,), generator=gen))] * n


def _train(model: nn.Module, data, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    for x, y in data:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def _lottery(method: str, levels: int = 3, criterion: str = "magnitude", trimmer_kw=None):
    torch.manual_seed(0)
    model, data = ConvFlatten(), _data()
    trimmer = lt.LotteryTrimmer(
        model, data[0][0], criterion, 0.3, method=method, seed=1, **(trimmer_kw or {})
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _train(model, data[:1], opt)
    trimmer.capture_rewind()
    for _ in range(levels):
        _train(model, data, opt)
        trimmer.step(data=data)
        opt = trimmer.rebuild_optimizer(opt)
    return model, trimmer, data


@pytest.mark.parametrize("method", METHODS)
def test_three_level_lottery(method):
    # safeguards make the steps of this 4-to-12-channel model coarser than 5 points; their
    # budget is checked in selection/test_rank.py and test_properties.py
    model, trimmer, data = _lottery(method, trimmer_kw={"safeguards": False})
    assert trimmer.level == 3 and len(trimmer.history) == 3
    for r in trimmer.history:
        assert r.method == method
        assert abs(r.achieved - 0.3) < 0.05, r
    total = sum(p.numel() for p in ConvFlatten().parameters())
    if method == "mask":
        kept = total - sum(int((m.weight_mask == 0).sum()) for m in _masked_layers(model))
        assert kept < total * 0.45
    else:
        assert trimmer.params < total * 0.45
        assert trimmer.plan.current_shapes() == {
            k: tuple(v.shape) for k, v in model_tensors(model).items() if v.dim() > 0
        }
    assert model(data[0][0]).shape == (8, 5)


def _masked_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if hasattr(m, "weight_mask")]


def test_mask_keeps_masked_weights_zero_through_training():
    model, trimmer, data = _lottery("mask", levels=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01)
    _train(model, data, opt)
    for m in _masked_layers(model):
        assert torch.all(m.weight[m.weight_mask == 0] == 0)
        assert (m.weight_mask == 0).any()


def test_mask_compact_removes_emptied_units():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.2, method="mask")
    trimmer.capture_rewind()
    trimmer.step()
    with torch.no_grad():  # empty three hidden units of fc1 by hand, as heavy masking would
        model.fc1.weight_mask[:3] = 0
    before_out = model(x)
    result = trimmer.compact()
    assert result.removed_units["fc1"] == 3 and result.saved > 0  # counted as fc1's features
    assert model.fc1.out_features == 21 and model.fc2.in_features == 21
    assert trimmer.plan.current_shape("fc1.weight") == (21, 256)
    # empty units produced relu(bias); removing them changes fc2's input by those constants only
    assert model(x).shape == before_out.shape
    assert torch.all(model.fc1.weight[model.fc1.weight_mask == 0] == 0)


def _resume_run(method: str, criterion: str, via: str, tmp_path):
    """Run 3 levels, stopping after level 1 and resuming from saved state."""
    torch.manual_seed(0)
    data = _data()
    model = ConvFlatten()
    kw = dict(method=method, seed=1)
    trimmer = lt.LotteryTrimmer(model, data[0][0], criterion, 0.3, **kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, data[:1], opt)
    trimmer.capture_rewind()
    _train(model, data, opt)
    trimmer.step(data=data)
    if via == "state_dict":
        saved_model = copy.deepcopy(model.state_dict())
        saved = trimmer.state_dict()
        model = ConvFlatten()
        trimmer = lt.LotteryTrimmer(model, data[0][0], criterion, 0.3, **kw)
        trimmer.load_state_dict(saved)
        model.load_state_dict(saved_model)
    else:
        path = tmp_path / "level1.lt"
        lt.save(model, path, trimmer)
        model = lt.load(path, ConvFlatten)
        trimmer = lt.LotteryTrimmer(model, data[0][0], criterion, 0.3, **kw)
        trimmer.load_state_dict(load_trimmer_state(path))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        _train(model, data, opt)
        trimmer.step(data=data)
        opt = trimmer.rebuild_optimizer(opt)
    return model, trimmer


def _straight_run(method: str, criterion: str):
    torch.manual_seed(0)
    data = _data()
    model = ConvFlatten()
    trimmer = lt.LotteryTrimmer(model, data[0][0], criterion, 0.3, method=method, seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    _train(model, data[:1], opt)
    trimmer.capture_rewind()
    _train(model, data, opt)
    trimmer.step(data=data)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        _train(model, data, opt)
        trimmer.step(data=data)
        opt = trimmer.rebuild_optimizer(opt)
    return model, trimmer


@pytest.mark.parametrize(
    ("method", "criterion", "via"),
    [
        ("trim", "random", "state_dict"),
        ("trim", "activation", "file"),
        ("mask", "magnitude", "state_dict"),
        ("mask", "magnitude", "file"),
    ],
)
def test_resume_matches_uninterrupted_run(method, criterion, via, tmp_path):
    a, ta = _straight_run(method, criterion)
    b, tb = _resume_run(method, criterion, via, tmp_path)
    assert ta.plan == tb.plan
    assert ta.level == tb.level == 3
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert [r.params_after for r in ta.history] == [r.params_after for r in tb.history]


def test_step_before_capture_is_an_error_and_changes_nothing():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x)
    before = snapshot(model)
    with pytest.raises(lt.errors.TrimmerStateError, match="capture_rewind"):
        trimmer.step()
    assert same_state(model, before) and trimmer.level == 0


def test_finetune_needs_no_rewind_point():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    assert lt.LotteryTrimmer(model, x, method="finetune").step().params_after < 7013


def test_model_resized_outside_is_named():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x)
    trimmer.capture_rewind()
    lt.trim(model, x, "magnitude", 0.2)  # behind the trimmer's back
    before = snapshot(model)
    with pytest.raises(lt.errors.TrimmerStateError, match=r"'c1\.weight'|'fc1\.weight'|shape"):
        trimmer.step()
    assert same_state(model, before) and trimmer.level == 0


def test_parameter_replaced_outside_is_named():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x)
    trimmer.capture_rewind()
    model.fc2 = nn.Linear(24, 5)
    with pytest.raises(lt.errors.TrimmerStateError, match=r"'fc2\.weight'.*replaced"):
        trimmer.step()


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"method": "prune"}, "method must be"),
        ({"amount": 1.5}, "amount"),
        ({"scope": "layer"}, "scope"),
        ({"criterion": "nope"}, "unknown criterion"),
    ],
)
def test_bad_arguments(kwargs, words):
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    with pytest.raises(ValueError, match=words):
        lt.LotteryTrimmer(model, x, **kwargs)


def test_compact_only_for_mask():
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    with pytest.raises(lt.errors.TrimmerStateError, match="mask"):
        lt.LotteryTrimmer(model, x).compact()


def test_load_state_dict_rejects_other_method():
    _, trimmer, _ = _lottery("finetune", levels=1)
    model = ConvFlatten()
    other = lt.LotteryTrimmer(model, torch.randn(4, 1, 32), method="trim")
    with pytest.raises(lt.errors.TrimmerStateError, match="method"):
        other.load_state_dict(trimmer.state_dict())
    assert other.level == 0 and other.plan.is_identity()


@pytest.mark.parametrize("carry", [False, True])
def test_rebuild_optimizer_keeps_options_and_slices_state(carry):
    torch.manual_seed(0)
    model, data = ConvFlatten(), _data()
    trimmer = lt.LotteryTrimmer(model, data[0][0], method="finetune")
    head = list(model.fc2.parameters())
    rest = [p for p in model.parameters() if all(p is not q for q in head)]
    opt = torch.optim.Adam([{"params": rest}, {"params": head, "lr": 1e-4}], lr=1e-3, eps=1e-7)
    _train(model, data, opt)
    old_avg = opt.state[model.fc1.weight]["exp_avg"].clone()
    trimmer.step()
    new = trimmer.rebuild_optimizer(opt, carry_state=carry)
    assert type(new) is torch.optim.Adam
    assert [g["lr"] for g in new.param_groups] == [1e-3, 1e-4]
    assert all(g["eps"] == 1e-7 for g in new.param_groups)
    assert {id(p) for g in new.param_groups for p in g["params"]} == {
        id(p) for p in model.parameters()
    }
    if carry:
        plan = trimmer.last_step_plan
        expected = plan.apply_to_state_dict({"fc1.weight": old_avg})["fc1.weight"]
        assert torch.equal(new.state[model.fc1.weight]["exp_avg"], expected)
    else:
        assert not new.state
    _train(model, data, new)


def test_docs_snippets_run(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "trimmer.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    try:
        exec(compile("\n".join(blocks), "docs/trimmer.md", "exec"), namespace)  # noqa: S102
    finally:
        if "layer-mask" in lt.methods.METHODS:
            lt.methods.METHODS.unregister("layer-mask")


@pytest.mark.parametrize("method", ["trim", "mask"])
def test_a_failed_step_changes_nothing_and_the_next_one_works(method, tmp_path):
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    rewind_file = tmp_path / "wk.safetensors"
    trimmer = lt.LotteryTrimmer(model, x, method=method, rewind_to_disk=rewind_file)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    trimmer.attach(optimizer)
    trimmer.capture_rewind()
    _train(model, _data(), optimizer)  # optimizer state to lose, values that differ from W_k
    before, params = snapshot(model), list(model.parameters())
    state = {id(p): {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    hooks = sum(len(m._forward_pre_hooks) for m in model.modules())
    saved = rewind_file.read_bytes()
    rewind_file.unlink()
    with pytest.raises(lt.errors.LoadError):
        trimmer.step()
    assert same_state(model, before) and list(model.parameters()) == params
    assert (trimmer.level, trimmer.history, trimmer.plan) == (0, [], lt.TrimPlan.identity(model))
    assert sum(len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert optimizer.param_groups[0]["params"] == params
    assert {id(p) for p in optimizer.state} == set(state)
    for p, s in optimizer.state.items():
        assert all(torch.equal(v, state[id(p)][k]) for k, v in s.items())
    # with the file back, the trimmer goes on as if nothing had happened
    rewind_file.write_bytes(saved)
    result = trimmer.step()
    assert trimmer.level == 1 and result.params_after < result.params_before
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {
        id(p) for p in model.parameters()
    }
    lt.save(model, tmp_path / "m.lt", trimmer)


def test_an_interrupted_step_changes_nothing(monkeypatch):
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x, method="finetune")
    before = snapshot(model)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trimmer._method, "after_removal", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trimmer.step()
    assert same_state(model, before) and trimmer.level == 0 and not trimmer.history
    monkeypatch.undo()
    assert trimmer.step().level == 1


def test_a_model_whose_dtype_changed_after_capture_is_named_not_blamed_on_a_group():
    torch.manual_seed(0)
    model, x = ConvFlatten(), torch.randn(4, 1, 32)
    trimmer = lt.LotteryTrimmer(model, x)
    trimmer.capture_rewind()
    model.double()
    with pytest.raises(lt.errors.ExampleInputError, match=r"before anything was removed.*dtype"):
        trimmer.step()
    assert trimmer.level == 0 and model.fc1.out_features == ConvFlatten().fc1.out_features


def test_bidirectional_units_are_hidden_units_per_direction_everywhere(tmp_path, capsys):
    torch.manual_seed(0)
    model, x = CRNN(), torch.randn(2, 1, 16, 20)  # GRU(64, 20, bidirectional=True)
    reference = copy.deepcopy(model)
    trimmer = lt.LotteryTrimmer(model, x, amount=0.3)
    trimmer.capture_rewind()
    for _ in range(3):
        result = trimmer.step()
        assert result.units_after["gru"] == model.gru.hidden_size
        for group, removed in result.removed_units.items():
            assert result.units_before[group] - result.units_after[group] == removed, group
    assert trimmer.history[0].units_before["gru"] == 20  # hidden_size, not 2 * 20 features
    assert any(step.removed_units.get("gru", 0) > 0 for step in trimmer.history)
    assert model.gru.hidden_size < 20
    diff = layer_diff(reference, model, x)
    assert diff.loc["gru", "units_before"] == 20
    assert diff.loc["gru", "units_after"] == model.gru.hidden_size
    path = tmp_path / "crnn.lt"
    lt.save(model, path)
    assert cli_main(["report", str(path), "--json"]) == 0
    layers = {layer["layer"]: layer for layer in json.loads(capsys.readouterr().out)["layers"]}
    assert layers["gru"]["units"] == model.gru.hidden_size

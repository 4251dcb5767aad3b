"""A criterion and a method registered once are usable by name everywhere, the runner included;
a layer adapter registered once (a subclassed built-in one) is used wherever its layer is met."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import masked_copy, outputs
from torch import nn

import lotterytrim as lt
from lotterytrim.adapters import ADAPTERS, GAMMA, LinearAdapter, Piece, RecurrentAdapter, column
from lotterytrim.criteria import CRITERIA, Magnitude
from lotterytrim.engine.layers import adapter_for
from lotterytrim.trimming.methods import METHODS


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).mean(-1)
        return self.head(torch.relu(self.fc(x)))


class UnitIndex(lt.criteria.LayerCriterion):
    """Scores each output channel by its index: the highest indices are kept, always."""

    name = "unit-index"
    scored = 0  # how many layers were scored, over every instance

    def channel_scores(self, name: str, module: nn.Module) -> torch.Tensor | None:
        UnitIndex.scored += 1
        return torch.arange(module.weight.shape[0], dtype=torch.float64)


class ZeroBias(lt.methods.Method):
    """Keeps the survivors' weights (like finetune) but zeroes every bias after a step."""

    name = "zero-bias"
    steps = 0

    def after_removal(self, trimmer: lt.LotteryTrimmer) -> None:
        ZeroBias.steps += 1
        with torch.no_grad():
            for m in trimmer.model.modules():
                if isinstance(getattr(m, "bias", None), torch.Tensor):
                    m.bias.zero_()


@pytest.fixture
def registered() -> Iterator[None]:
    lt.criteria.register("unit-index", UnitIndex)
    lt.methods.register("zero-bias", ZeroBias)
    UnitIndex.scored, ZeroBias.steps = 0, 0
    try:
        yield
    finally:
        CRITERIA.unregister("unit-index")
        METHODS.unregister("zero-bias")


def test_registered_names_work_in_trim_and_the_trimmer(registered: None) -> None:
    torch.manual_seed(0)
    model, x = Net(), torch.randn(4, 1, 12)
    last_rows = model.conv.weight.detach()[-3:].clone()
    lt.trim(model, x, "unit-index", 0.3)
    assert UnitIndex.scored > 0
    assert model.conv.out_channels < 8
    # the highest indices survive: the last rows of the conv weight are still there, unchanged
    assert torch.equal(model.conv.weight.detach()[-3:], last_rows)

    model = Net()
    trimmer = lt.LotteryTrimmer(model, x, "unit-index", 0.3, method="zero-bias")
    assert trimmer.method == "zero-bias"
    result = trimmer.step()
    assert result.method == "zero-bias" and not result.rewound
    assert ZeroBias.steps == 1
    assert all(
        float(m.bias.detach().abs().sum()) == 0.0 for m in (model.conv, model.fc, model.head)
    )


def test_registered_names_run_in_the_lottery_runner(registered: None, tmp_path: Path) -> None:
    x = torch.randn(16, 1, 12)
    y = torch.randint(0, 3, (16,))

    def train(model: nn.Module, ctx: lt.LevelContext) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in ctx.epochs(2):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return float((model(x).argmax(1) != y).float().mean())

    config = lt.LotteryConfig(
        task="reg", levels=2, replicates=1, methods=("zero-bias",), criteria=("unit-index",)
    )
    lottery = lt.Lottery(Net, x[:2], train, evaluate, config, root=tmp_path, progress=False)
    rows = lottery.run()
    assert list(rows["method"]) == ["zero-bias"] * 3
    assert list(rows["criterion"]) == ["unit-index"] * 3
    assert list(rows["level"]) == [0, 1, 2]
    assert rows["params"].is_monotonic_decreasing and rows["params"].iloc[-1] < rows["params"][0]
    assert ZeroBias.steps == 2 and UnitIndex.scored > 0


def test_unknown_and_duplicate_names_are_refused(registered: None) -> None:
    with pytest.raises(ValueError, match="unknown criterion 'nope'"):
        lt.LotteryConfig(criteria=("nope",))
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        lt.LotteryConfig(methods=("nope",))
    with pytest.raises(ValueError, match="criterion 'unit-index' is registered already"):
        lt.criteria.register("unit-index", Magnitude)
    assert CRITERIA["unit-index"] is UnitIndex
    lt.criteria.register("unit-index", Magnitude, replace=True)
    assert CRITERIA["unit-index"] is Magnitude
    with pytest.raises(TypeError, match="must subclass Method"):
        lt.methods.register("not-a-method", UnitIndex)
    assert "unit-index" in CRITERIA and "zero-bias" in METHODS
    assert lt.LotteryConfig(methods=("zero-bias", "mask")).runs() == [
        ("zero-bias", "magnitude"),
        ("mask", "magnitude"),
    ]


def test_options_are_one_dataclass_with_keywords_as_shorthand() -> None:
    opts = lt.TrimOptions(scope="local", safeguards=False)
    assert opts.safeguards == lt.Safeguards.off()
    config = lt.LotteryConfig(options=opts, min_units=2)
    assert config.options == lt.TrimOptions(scope="local", safeguards=False, min_units=2)
    assert (config.scope, config.min_units) == ("local", 2)
    model = Net()
    trimmer = lt.LotteryTrimmer(model, torch.randn(2, 1, 12), options=opts, normalize="l2")
    assert trimmer.options == lt.TrimOptions(scope="local", normalize="l2", safeguards=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        lt.trim(Net(), torch.randn(2, 1, 12), scopes="local")
    with pytest.raises(ValueError, match="scope"):
        lt.TrimOptions(scope="layer")
    # the defaults live in TrimOptions only: every entry point starts from them
    assert lt.LotteryConfig().options == lt.TrimOptions()
    assert lt.LotteryTrimmer(Net(), torch.randn(2, 1, 12)).options == lt.TrimOptions()


def test_import_leaves_heavy_optional_modules_alone() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lotterytrim as lt; "
        "assert 'matplotlib' not in sys.modules and 'onnx' not in sys.modules; "
        "lt.plot.table1; assert 'matplotlib' not in sys.modules; print(len(lt.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) <= 30


class Gated(nn.Linear):
    """A linear layer with a learnt gate per output feature: the Linear adapter misses the gate."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(inputs, outputs)
        self.gate = nn.Parameter(torch.linspace(0.5, 1.5, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.gate


class GatedAdapter(LinearAdapter):
    """A Linear's pieces plus one gate per unit: only what differs from the built-in adapter."""

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        return [*super().out_pieces(m, idx), Piece("gate", 0, column(idx), GAMMA)]


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Gated(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(x)))


@pytest.fixture
def gated() -> Iterator[None]:
    lt.adapters.register_adapter(Gated, GatedAdapter)
    try:
        yield
    finally:
        ADAPTERS.unregister(Gated)


def _assert_trimmed_equals_masked(model: nn.Module, x: torch.Tensor, amount: float = 0.3) -> None:
    """One finetune step (weights kept): the trimmed model computes what its masked copy does."""
    original = copy.deepcopy(model)
    trimmer = lt.LotteryTrimmer(model, x, "magnitude", amount, method="finetune")
    trimmer.step()
    plan = trimmer.last_step_plan
    assert plan is not None and not plan.is_identity()
    for a, b in zip(outputs(model, x), outputs(masked_copy(original, plan), x), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_registered_adapter_lets_a_new_layer_type_shrink() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    with pytest.raises(lt.errors.TrimVerificationError, match="'fc'"):
        lt.trim(GatedNet(), x, "magnitude", 0.3)  # weight sliced, gate not: the model breaks
    lt.adapters.register_adapter(Gated, GatedAdapter)
    try:
        model = GatedNet()
        reference = copy.deepcopy(model)
        plan, _ = lt.trim(model, x, "magnitude", 0.3)
        kept = plan.keep["fc.weight"][0]
        assert kept is not None and model.fc.out_features == len(kept) < 8
        assert torch.equal(model.fc.gate.detach(), reference.fc.gate.detach()[kept])
        _assert_trimmed_equals_masked(GatedNet(), x)
    finally:
        ADAPTERS.unregister(Gated)


class ScaledGRU(nn.GRU):
    """A GRU whose output features are scaled by a learnt vector, one entry per feature."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__(inputs, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 2 * hidden))

    def forward(self, x: Any, hx: Any = None) -> Any:
        out, h = super().forward(x, hx)
        return out * self.scale, h


class ScaledGRUAdapter(RecurrentAdapter):
    """The recurrent pieces plus the scale entries of the removed output features."""

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        assert isinstance(m, nn.RNNBase)
        return [*super().out_pieces(m, idx), Piece("scale", 0, column(idx), GAMMA)]


class ScaledGRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = ScaledGRU(4, 8)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def test_a_subclassed_recurrent_adapter_is_used_by_the_trimmer() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4)
    lt.adapters.register_adapter(ScaledGRU, ScaledGRUAdapter)
    try:
        assert type(adapter_for(ScaledGRU(4, 8))) is ScaledGRUAdapter
        assert type(adapter_for(nn.GRU(4, 8))) is RecurrentAdapter
        model = ScaledGRUNet()
        _assert_trimmed_equals_masked(model, x)
        h = model.rnn.hidden_size
        assert h < 8 and model.rnn.scale.shape == (2 * h,)
        assert model.rnn.weight_ih_l1_reverse.shape == (3 * h, 2 * h)
    finally:
        ADAPTERS.unregister(ScaledGRU)


def test_a_duplicate_adapter_is_refused_and_replace_swaps_it(gated: None) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    with pytest.raises(ValueError, match="adapter for Gated is registered already.*replace=True"):
        lt.adapters.register_adapter(Gated, LinearAdapter)
    with pytest.raises(ValueError, match="adapter for Linear is registered already"):
        lt.adapters.register_adapter(nn.Linear, GatedAdapter)
    assert ADAPTERS[Gated] is GatedAdapter and ADAPTERS[nn.Linear] is LinearAdapter
    _assert_trimmed_equals_masked(GatedNet(), x)  # the refused entry changed nothing
    lt.adapters.register_adapter(Gated, LinearAdapter, replace=True)
    assert ADAPTERS[Gated] is LinearAdapter
    with pytest.raises(lt.errors.TrimVerificationError, match="'fc'"):
        lt.trim(GatedNet(), x, "magnitude", 0.3)  # the plain Linear adapter misses the gate
    with pytest.raises(TypeError, match="pass the class, not an instance"):
        lt.adapters.register_adapter(Gated, GatedAdapter(), replace=True)
    with pytest.raises(TypeError, match="Module subclasses"):
        lt.adapters.register_adapter(int, GatedAdapter)  # type: ignore[arg-type]
    assert ADAPTERS[Gated] is LinearAdapter


def test_adapters_are_public_and_the_error_names_a_public_function() -> None:
    from lotterytrim import adapters

    assert "adapters" in lt.__all__ and "register_adapter" not in lt.__all__
    for name in adapters.__all__:
        assert getattr(adapters, name) is not None
        if name.endswith("Adapter"):
            assert issubclass(getattr(adapters, name), adapters.Adapter)
    decorated = lt.adapters.register_adapter(Gated)(GatedAdapter)  # the decorator returns it
    try:
        assert decorated is GatedAdapter and ADAPTERS[Gated] is GatedAdapter
    finally:
        ADAPTERS.unregister(Gated)

    class Mix(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mix = nn.Parameter(torch.eye(4) + 0.1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("oc,bc->bo", self.mix, x)

    model = nn.Sequential(nn.Linear(3, 4), Mix(), nn.Linear(4, 2))
    pattern = r"lt\.adapters\.(\w+)\(layer_type"
    with pytest.raises(lt.errors.UnsupportedLayerError, match=pattern) as info:
        lt.trim(model, torch.randn(2, 3), "magnitude", 0.3)
    named = re.search(pattern, str(info.value))
    assert named is not None and callable(getattr(lt.adapters, named.group(1)))


def test_the_documented_adapter_example_runs() -> None:
    text = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    section = text.split("## Adding a layer adapter", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    torch.manual_seed(0)
    exec(compile(blocks[0], "docs/architecture.md", "exec"), namespace)  # noqa: S102
    layer, adapter = namespace["Gated"], namespace["GatedAdapter"]
    try:
        assert ADAPTERS[layer] is adapter and issubclass(adapter, LinearAdapter)
        assert type(adapter_for(layer(2, 3))) is adapter
        x = torch.randn(4, 6)
        _assert_trimmed_equals_masked(nn.Sequential(layer(6, 8), nn.ReLU(), nn.Linear(8, 3)), x)
    finally:
        ADAPTERS.unregister(layer)

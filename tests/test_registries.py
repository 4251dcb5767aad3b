"""A criterion and a method registered once are usable by name everywhere, the runner included."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.criteria import CRITERIA
from lotterytrim.engine.adapter import GAMMA, Adapter, Piece
from lotterytrim.engine.layers import adapter_for, register_adapter
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
    with pytest.raises(ValueError, match="registered already"):
        lt.criteria.register("unit-index", UnitIndex)
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
        "lt.plot.figure2; assert 'matplotlib' in sys.modules; print(len(lt.__all__))"
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


class GatedAdapter(Adapter):
    """The adapter docs/architecture.md shows: a Linear's pieces plus one gate per unit."""

    def __init__(self) -> None:
        self.linear = adapter_for(nn.Linear(1, 1))

    def out_channels(self, m: nn.Module) -> int | None:
        return self.linear.out_channels(m)

    def in_channels(self, m: nn.Module) -> int | None:
        return self.linear.in_channels(m)

    def out_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        gate = Piece("gate", 0, np.asarray(idx).reshape(-1, 1), GAMMA)
        return [*self.linear.out_pieces(m, idx), gate]

    def in_pieces(self, m: nn.Module, idx: np.ndarray) -> list[Piece]:
        return self.linear.in_pieces(m, idx)

    def attributes(self, m: nn.Module, out: int | None, inp: int | None) -> dict[str, Any]:
        return self.linear.attributes(m, out, inp)


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Gated(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(x)))


def test_registered_adapter_lets_a_new_layer_type_shrink() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    with pytest.raises(lt.TrimVerificationError, match="'fc'"):
        lt.trim(GatedNet(), x, "magnitude", 0.3)  # weight sliced, gate not: the model breaks
    register_adapter(Gated, GatedAdapter())
    model = GatedNet()
    reference = copy.deepcopy(model)
    plan, _ = lt.trim(model, x, "magnitude", 0.3)
    kept = plan.keep["fc.weight"][0]
    assert kept is not None and model.fc.out_features == len(kept) < 8
    assert torch.equal(model.fc.gate.detach(), reference.fc.gate.detach()[kept])
    # the survivors compute what they computed before: the removed features are simply gone
    with torch.no_grad():
        hidden = torch.relu(reference.fc(x))[:, kept]
        assert torch.allclose(torch.relu(model.fc(x)), hidden, atol=1e-6)

"""Type checkers accept the documented calls: the trim options as keywords included."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

import lotterytrim as lt
from lotterytrim.options import OPTION_NAMES, OptionKeywords, TrimOptions, field_help

ROOT = Path(__file__).resolve().parents[1]

DOCUMENTED = """\
import torch
from torch import nn

import lotterytrim as lt

model = nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(112, 3))
x = torch.randn(2, 1, 16)
plan, result = lt.trim(model, x, criterion="magnitude", amount=0.3)
print(result.params_before, "->", result.params_after, result.protected)
lt.trim(model, x, amount=0.3, safeguards=lt.Safeguards(step_cap=0.3, keep_floor=0.1))
lt.trim(model, x, amount=0.3, safeguards=False, scope="local", min_units=2)
opts = lt.TrimOptions(scope="local", safeguards=lt.Safeguards(step_cap=0.3))
trimmer = lt.LotteryTrimmer(model, x, "magnitude", 0.3, options=opts)
lt.LotteryTrimmer(model, x, scope="local")
lt.LotteryTrimmer(model, x, safeguards={"cost": "macs"})
sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
sgd = trimmer.rebuild_optimizer(sgd)
config = lt.LotteryConfig(task="onset", options=opts, min_units=2)
lt.LotteryConfig(task="x", min_units=2, on_unsupported="protect")
lt.LotteryConfig(task="onset", levels=15, replicates=5, methods=("trim", "finetune", "mask"))
lt.LotteryConfig(criteria=("magnitude", "activation"))
"""

WRONG = """\
import torch
from torch import nn

import lotterytrim as lt

model = nn.Linear(4, 2)
x = torch.randn(2, 4)
lt.LotteryConfig(task="x", min_unit=2)
lt.LotteryConfig(task="x", min_units="2")
lt.LotteryTrimmer(model, x, scop="local")
lt.trim(model, x, normalise="max")
"""


def _mypy(*files: Path) -> dict[str, list[tuple[int, str]]]:
    """mypy's errors per file name as (line, code), with the project's configuration."""
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=ROOT,  # pyproject.toml's [tool.mypy], and the cache the CI's mypy run leaves
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
        timeout=300,
    )
    found: dict[str, list[tuple[int, str]]] = {f.name: [] for f in files}
    for line in run.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): error: .*\[([\w-]+)\]$", line)
        if m and Path(m.group(1)).name in found:
            found[Path(m.group(1)).name].append((int(m.group(2)), m.group(3)))
    return found


def test_mypy_accepts_the_documented_calls_and_reports_wrong_keywords(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    good, bad = tmp_path / "documented.py", tmp_path / "wrong.py"
    good.write_text(DOCUMENTED)
    bad.write_text(WRONG)
    errors = _mypy(good, bad)
    assert errors["documented.py"] == []
    assert errors["wrong.py"] == [
        (8, "call-arg"),
        (9, "arg-type"),
        (10, "call-arg"),
        (11, "call-arg"),
    ]


def test_option_keywords_name_the_trim_options() -> None:
    assert tuple(OptionKeywords.__annotations__) == OPTION_NAMES


def test_lottery_config_declares_its_fields_and_the_option_keywords() -> None:
    """The ``__init__`` declared for type checkers matches the dataclass fields, in order."""
    tree = ast.parse((ROOT / "src/lotterytrim/runner/config.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LotteryConfig")
    init = next(n for n in ast.walk(cls) if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    declared = {a.arg: ast.unparse(a.annotation) for a in init.args.args[1:] if a.annotation}
    expected = {f.name: str(f.type) for f in fields(lt.LotteryConfig)}
    expected["options"] = "TrimOptions | None"
    assert declared == expected and list(declared) == list(expected)
    kwargs = init.args.kwarg
    assert kwargs is not None and kwargs.annotation is not None
    assert ast.unparse(kwargs.annotation) == "Unpack[OptionKeywords]"


def test_field_help_describes_every_field() -> None:
    assert set(field_help(TrimOptions)) == set(OPTION_NAMES) == set(TrimOptions.help())
    notes = lt.LotteryConfig.help()
    assert set(notes) == {f.name for f in fields(lt.LotteryConfig)} | set(OPTION_NAMES)
    assert all(notes.values())

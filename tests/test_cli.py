"""``lotterytrim report PATH [--json]``: what a saved file alone tells, and clean failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import lotterytrim as lt
from lotterytrim.cli import _plan_summary, main
from lotterytrim.storage.files import HEADER_KEY as HEADER
from lotterytrim.trimming.state import load_trimmer_state

SRC = str(Path(__file__).resolve().parents[1] / "src")


def small_model() -> nn.Sequential:
    """Conv1d(1->8, k3), BatchNorm1d(8), LSTM(8->4, projection 2)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 8, 3), nn.BatchNorm1d(8), nn.LSTM(8, 4, proj_size=2))


def saved(tmp_path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write small_model's state_dict as safetensors, with optional header metadata."""
    path = tmp_path / "model.safetensors"
    state = {k: v.contiguous() for k, v in small_model().state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return path


PLAN = {
    "format": 1,
    "plan": {
        "format": 1,
        "shapes": {"0.weight": [10, 1, 3], "0.bias": [10]},
        "keep": {"0.weight": [[[0, 8]], None, None], "0.bias": [None]},
        "attributes": {},
    },
    "metadata": {"task": "onset", "level": 3},
}
LSTM_PARAMS = 16 * 8 + 16 * 2 + 2 * 4 + 16 + 16
PARAMS = (8 * 3 + 8) + (8 + 8) + LSTM_PARAMS


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path, {"lotterytrim": json.dumps(PLAN), "format": "pt"})
    assert main(["report", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["disk_bytes"] == os.path.getsize(path)
    assert info["tensors"] == 12
    assert info["params"] == PARAMS
    assert info["buffer_elements"] == 8 + 8 + 1
    assert info["dtypes"] == {"F32": 11, "I64": 1}
    layers = {layer["layer"]: layer for layer in info["layers"]}
    assert [layers[k]["units"] for k in ("0", "1", "2")] == [8, 8, 4]
    assert layers["2"]["params"] == LSTM_PARAMS
    shapes = {t["name"]: t["shape"] for t in layers["0"]["tensors"]}
    assert shapes == {"weight": [8, 1, 3], "bias": [8]}
    assert info["metadata"] == PLAN
    assert info["header_metadata"] == {"format": "pt"}


def test_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path, {"lotterytrim": json.dumps(PLAN)})
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"({PARAMS})" in out
    assert f"({os.path.getsize(path)} bytes)" in out
    assert "weight_hr_l0 [2, 4]" in out
    assert "lotterytrim.plan" in out and "2 tensors, 1 trimmed" in out
    assert 'lotterytrim.metadata.task   "onset"' in out


def test_trimmer_state_tensors_are_kept_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "with_state.safetensors"
    state = {k: v.contiguous() for k, v in small_model().state_dict().items()}
    state["__trimmer__/rewind.0.weight"] = torch.zeros(8, 1, 3)
    save_file(state, str(path), metadata={"lotterytrim": json.dumps(PLAN)})
    assert main(["report", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tensors"] == 12 and info["trimmer_tensors"] == 1
    assert info["params"] == PARAMS
    assert main(["report", str(path)]) == 0
    assert "1 tensor of saved trimmer state" in capsys.readouterr().out


class SmallConv(nn.Module):
    """Two Conv1d + BatchNorm1d stages, a mean over time and a Linear head.

    Registered (model) order conv1, bn1, conv2, bn2, head differs from alphabetical order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm1d(6)
        self.conv2 = nn.Conv1d(6, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(self.bn2(self.conv2(h)))
        return self.head(h.mean(-1))


LAYERS = ["conv1", "bn1", "conv2", "bn2", "head"]


def _count(model: nn.Module) -> int:
    """Parameter elements of a model."""
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def trimmed(tmp_path: Path) -> tuple[Path, SmallConv, lt.LotteryTrimmer]:
    """A SmallConv after one real trimming step, saved with its trimmer state by lt.save."""
    torch.manual_seed(0)
    model = SmallConv()
    before = _count(model)
    trimmer = lt.LotteryTrimmer(model, torch.randn(4, 1, 16), amount=0.4)
    trimmer.capture_rewind()
    trimmer.step()
    assert _count(model) < before  # units were really removed
    path = tmp_path / "small.lt"
    lt.save(model, path, trimmer, metadata={"task": "onset"})
    return path, model, trimmer


def _trimmed_tensors(plan: lt.TrimPlan) -> int:
    """Tensors of a plan that keep fewer indices than their original size along some dim."""
    return sum(
        any(k is not None and k.size < plan.shapes[name][d] for d, k in enumerate(ks))
        for name, ks in plan.keep.items()
    )


def test_json_report_of_a_real_trimmed_file(
    trimmed: tuple[Path, SmallConv, lt.LotteryTrimmer], capsys: pytest.CaptureFixture[str]
) -> None:
    path, model, trimmer = trimmed
    assert main(["report", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    saved_state = load_trimmer_state(path)
    assert saved_state is not None and saved_state["tensors"]
    assert info["disk_bytes"] == os.path.getsize(path)
    assert info["params"] == _count(model)  # the model's, trimmer state left out
    assert info["tensors"] == len(model.state_dict())
    assert info["trimmer_tensors"] == len(saved_state["tensors"])
    assert info["buffer_elements"] == sum(b.numel() for b in model.buffers())
    assert info["dtypes"] == {"F32": len(model.state_dict()) - 2, "I64": 2}
    layers = {layer["layer"]: layer for layer in info["layers"]}
    assert [layer["layer"] for layer in info["layers"]] == LAYERS  # model order
    for name in LAYERS:
        module = model.get_submodule(name)
        assert layers[name]["params"] == _count(module), name
        shapes = {t["name"]: t["shape"] for t in layers[name]["tensors"]}
        assert shapes == {k: list(v.shape) for k, v in module.state_dict().items()}, name
    assert layers["conv1"]["units"] == model.conv1.out_channels < 6
    assert layers["conv2"]["units"] == model.conv2.out_channels
    assert layers["bn1"]["units"] == model.conv1.out_channels
    assert layers["head"]["units"] == 3
    assert info["metadata"]["metadata"] == {"task": "onset"}
    assert lt.TrimPlan.from_dict(info["metadata"]["plan"]) == trimmer.plan
    assert info["metadata"]["trimmer"]["level"] == 1


def test_text_report_of_a_real_trimmed_file(
    trimmed: tuple[Path, SmallConv, lt.LotteryTrimmer], capsys: pytest.CaptureFixture[str]
) -> None:
    path, model, trimmer = trimmed
    assert main(["report", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    params = next(line for line in lines if line.startswith("params"))
    assert params.endswith(f"({_count(model)})")
    n_state = len(load_trimmer_state(path)["tensors"])  # type: ignore[index]
    assert f"trimmer   {n_state} tensors of saved trimmer state" in lines
    rows = [words[0] for words in map(str.split, lines) if words and words[0] in LAYERS]
    assert rows == LAYERS
    conv1 = next(line for line in lines if line.startswith("conv1 "))
    assert conv1.split()[1] == str(model.conv1.out_channels)
    cut = _trimmed_tensors(trimmer.plan)
    assert 0 < cut < len(trimmer.plan.shapes)
    plan_line = next(line for line in lines if "lotterytrim.plan" in line)
    assert plan_line.split("lotterytrim.plan")[1].strip() == (
        f"{len(trimmer.plan.shapes)} tensors, {cut} trimmed"
    )
    assert any("lotterytrim.metadata.task" in line and '"onset"' in line for line in lines)


def test_plan_summary_counts_only_tensors_that_lose_indices() -> None:
    plan = {
        "shapes": {"a": [4, 2], "b": [4], "c": [3]},
        "keep": {"a": [[[0, 4]], [[0, 1]]], "b": [[[0, 4]]]},  # a loses a column, b keeps all
    }
    assert _plan_summary(plan) == "3 tensors, 1 trimmed"
    assert _plan_summary({"shapes": {}, "keep": {"x": ["bad"]}}) == "1 tensor, 1 trimmed"
    assert _plan_summary("not a plan") == '"not a plan"'


def test_valid_file_starting_like_a_pickle_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.lt"
    model = nn.Linear(3, 2)
    for pad in range(300):  # the header length is a multiple of 8: its low byte can be 0x80
        lt.save(model, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    assert main(["report", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 8


def test_file_without_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path)
    assert main(["report", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"] is None


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("directory", "not a file"),
        ("garbage", "as a safetensors file"),
        ("truncated", "as a safetensors file"),
        ("bad_json", "corrupt lotterytrim metadata"),
        ("torch_zip", "zip or pickle archive"),
        ("torch_pickle", "zip or pickle archive"),
    ],
)
def test_unreadable_files_fail_with_one_line(
    kind: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.safetensors"
    if kind == "directory":
        path = tmp_path
    elif kind == "garbage":
        path.write_bytes(b"not a safetensors file at all")
    elif kind == "truncated":
        good = saved(tmp_path).read_bytes()
        path.write_bytes(good[:-7])
    elif kind == "bad_json":
        path = saved(tmp_path, {"lotterytrim": "{not json"})
    elif kind.startswith("torch_"):
        torch.save(
            small_model().state_dict(), path, _use_new_zipfile_serialization=kind == "torch_zip"
        )
    assert main(["report", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lotterytrim: error: ")
    assert message in lines[0] and str(path) in lines[0]
    assert "Traceback" not in captured.err


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "report" in capsys.readouterr().err


def test_module_entry_point(trimmed: tuple[Path, SmallConv, lt.LotteryTrimmer]) -> None:
    path, model, _ = trimmed
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "lotterytrim.cli", "report"]
    done = subprocess.run(
        [*command, str(path), "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["params"] == _count(model)
    assert info["trimmer_tensors"] > 0
    missing = subprocess.run(
        [*command, str(path.with_name("gone.lt"))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("lotterytrim: error: no such file")


def test_strings_from_the_file_are_escaped_in_the_text_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.safetensors"
    hostile = "\x1b]0;owned\x07\x1b[2J\rx\ny\u202e"
    tensors = {f"layer{hostile}.weight": torch.zeros(2, 2)}
    meta = {HEADER: json.dumps({"format": 1, "metadata": {f"k{hostile}": "v"}}), hostile: "v"}
    save_file(tensors, str(path), metadata=meta)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\r\u202e")
    assert "\\x1b]0;owned\\x07\\x1b[2J\\rx\\ny\\u202e" in out
    # each line of the report is one of ours: the newline in a name did not start a new one
    assert not any(line.startswith("y") for line in out.splitlines())
    # --json was already escaped by the JSON encoder
    assert main(["report", str(path), "--json"]) == 0
    assert "\x1b" not in capsys.readouterr().out

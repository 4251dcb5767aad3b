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

from lotterytrim.cli import main

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


def test_file_without_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = saved(tmp_path)
    assert main(["report", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"] is None


@pytest.mark.parametrize("kind", ["missing", "directory", "garbage", "truncated", "bad_json"])
def test_unreadable_files_fail_with_one_line(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
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
    assert main(["report", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lotterytrim: error: ")
    assert "Traceback" not in captured.err


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "report" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path) -> None:
    path = saved(tmp_path, {"lotterytrim": json.dumps(PLAN)})
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "lotterytrim.cli", "report"]
    done = subprocess.run(
        [*command, str(path), "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == PARAMS

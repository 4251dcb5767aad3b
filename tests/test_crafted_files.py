"""Files from strangers: every crafted plan, attribute or header is a LoadError naming the culprit,
and ``lotterytrim report`` answers every one of them with one line, never a traceback."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.cli import main
from lotterytrim.storage.io import load_state, read_tensors, write_tensors
from lotterytrim.trimming.state import load_trimmer_state


def _build() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 8, 3), nn.ReLU(), nn.Conv1d(8, 4, 3))


def _good(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = _build()
    trimmer = lt.LotteryTrimmer(model, torch.randn(2, 1, 16), amount=0.3, method="finetune")
    trimmer.step()
    path = tmp_path / "good.lt"
    lt.save(model, path, trimmer, metadata={"task": "t"})
    return path


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    tensors, meta = read_tensors(src)
    header = json.loads(meta["lotterytrim"])
    edit(header)
    write_tensors(dst, tensors, {"lotterytrim": json.dumps(header)})


def _raw(text: str) -> Callable[[Path, Path], None]:
    def write(src: Path, dst: Path) -> None:
        tensors, _ = read_tensors(src)
        write_tensors(dst, tensors, {"lotterytrim": text})

    return write


def _keep(runs: Any, dim: int = 0, name: str = "0.weight") -> Callable[[dict[str, Any]], None]:
    def edit(h: dict[str, Any]) -> None:
        h["plan"]["keep"].setdefault(name, [None] * len(h["plan"]["shapes"][name]))[dim] = runs

    return edit


def _attr(module: str, **values: Any) -> Callable[[dict[str, Any]], None]:
    def edit(h: dict[str, Any]) -> None:
        h["plan"]["attributes"].setdefault(module, {}).update(values)

    return edit


def _extra_dim(h: dict[str, Any]) -> None:
    h["plan"]["keep"]["0.weight"].append(None)


def _huge(h: dict[str, Any]) -> None:
    h["plan"]["shapes"]["0.weight"][0] = 10**12
    h["plan"]["keep"]["0.weight"] = [[[0, 10**12]], None, None]


def _unknown_tensor(h: dict[str, Any]) -> None:
    h["plan"]["shapes"]["0.gamma"] = [8]


def _trimmer_plan(h: dict[str, Any]) -> None:
    h["trimmer"]["plan"]["keep"]["0.weight"] = [[[0, 99]], None, None]


def _retyped(dtype: torch.dtype) -> Callable[[Path, Path], None]:
    def write(src: Path, dst: Path) -> None:
        tensors, meta = read_tensors(src)
        tensors["0.bias"] = tensors["0.bias"].to(dtype)
        write_tensors(dst, tensors, meta)

    return write


def _deep() -> str:
    return '{"format":1,"metadata":' + "[" * 100_000 + "]" * 100_000 + "}"


# (id, how the file is made from a good one, text the LoadError must contain)
CRAFTED: list[tuple[str, Any, str]] = [
    ("index-out-of-range", _keep([[0, 99]]), "'0.weight' dim 0"),
    ("negative-index", _keep([[-1, 3]]), "'0.weight' dim 0"),
    ("unsorted-runs", _keep([[4, 6], [0, 2]]), "unsorted"),
    ("overlapping-runs", _keep([[0, 3], [2, 4]]), "overlapping"),
    ("empty-run", _keep([[2, 2]]), "empty"),
    ("float-run", _keep([[0.0, 3.0]]), "pair of integers"),
    ("wrong-count", _keep([[0, 2]]), "the file holds it as"),
    ("extra-dim", _extra_dim, "one entry per dim"),
    ("huge-allocation", _huge, "the file holds it as"),
    ("unknown-tensor", _unknown_tensor, "0.gamma"),
    ("conv-stride", _attr("0", stride=[2]), "stride"),
    ("root-training", _attr("", training=False), "training"),
    ("missing-module", _attr("7", out_features=3), "'7'"),
    ("width-mismatch", _attr("2", out_channels=3), "out_channels"),
    ("width-bool", _attr("2", in_channels=True), "in_channels"),
    ("trimmer-plan", _trimmer_plan, "trimmer plan"),
    ("deep-json", _raw(_deep()), "nested too deeply"),
    ("nan-metadata", _raw('{"format":1,"metadata":{"x":NaN}}'), "NaN"),
    ("not-an-object", _raw("[1, 2]"), "unknown lotterytrim file format"),
    ("zero-units", _keep([]), "keeps no index of dim 0 of tensor '0.weight'"),
    ("float64-tensor", _retyped(torch.float64), "'0.bias' is torch.float64 in the file"),
    ("float16-tensor", _retyped(torch.float16), "'0.bias' is torch.float16 in the file"),
    ("int64-tensor", _retyped(torch.int64), "'0.bias' is torch.int64 in the file"),
    ("bool-tensor", _retyped(torch.bool), "'0.bias' is torch.bool in the file"),
]


def _craft(tmp_path: Path, make: Any) -> Path:
    good, bad = _good(tmp_path), tmp_path / "bad.lt"
    if getattr(make, "__name__", "") == "write":
        make(good, bad)
    else:
        _rewrite(good, bad, make)
    return bad


@pytest.mark.parametrize(("make", "text"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_file_is_a_load_error(tmp_path: Path, make: Any, text: str) -> None:
    bad = _craft(tmp_path, make)
    with pytest.raises(lt.errors.LoadError) as info:
        lt.load(bad, _build)
        load_trimmer_state(bad)
    assert text in str(info.value)


@pytest.mark.parametrize("make", [c[1] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_report_answers_every_crafted_file_in_one_line(
    tmp_path: Path, make: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _craft(tmp_path, make)
    for args in (["report", str(bad)], ["report", str(bad), "--json"]):
        code = main(args)
        out, err = capsys.readouterr()
        assert code in (0, 1), args
        if code == 1:
            assert err.count("\n") == 1 and err.startswith("lotterytrim: error:")
        else:
            json.loads(out) if "--json" in args else None


@pytest.mark.parametrize("which", ["deep-json", "nan-metadata"])
def test_report_exits_1_on_unreadable_json(
    tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make = next(c[1] for c in CRAFTED if c[0] == which)
    assert main(["report", str(_craft(tmp_path, make)), "--json"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_good_file_still_loads(tmp_path: Path) -> None:
    path = _good(tmp_path)
    model = lt.load(path, _build)
    tensors, plan, _ = load_state(path)
    assert model[0].out_channels == model[2].in_channels == plan.current_shape("0.weight")[0] < 8
    assert all(torch.equal(t, tensors[k]) for k, t in model.state_dict().items())


def test_from_json_refuses_what_to_json_never_writes() -> None:
    plan = lt.TrimPlan(shapes={"w": (6, 2)})
    plan.keep["w"] = [None, None]
    data = plan.to_dict()
    for runs in ([[3, 5], [0, 2]], [[0, 3], [1, 4]], [[2, 2]], [[0.0, 2.0]], [[True, 2]]):
        data["keep"]["w"] = [runs, None]
        with pytest.raises(ValueError, match="'w' dim 0"):
            lt.TrimPlan.from_json(json.dumps(data))
    data["keep"]["w"] = [[[0, 2], [3, 5]], None]
    assert lt.TrimPlan.from_json(json.dumps(data)).kept_indices("w", 0).tolist() == [0, 1, 3, 4]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_save_refuses_non_finite_metadata(tmp_path: Path, value: float) -> None:
    path = tmp_path / "m.lt"
    with pytest.raises(ValueError, match="NaN or infinities"):
        lt.save(_build(), path, metadata={"loss": value})
    assert not path.exists()


def test_trimmer_state_cannot_set_other_attributes(tmp_path: Path) -> None:
    bad = _craft(tmp_path, _attr("0", stride=[2]))
    tensors, meta = read_tensors(bad)
    header = json.loads(meta["lotterytrim"])
    header["trimmer"]["plan"]["attributes"]["0"] = {"stride": [2]}
    write_tensors(bad, tensors, {"lotterytrim": json.dumps(header)})
    model = _build()
    trimmer = lt.LotteryTrimmer(model, torch.randn(2, 1, 16), amount=0.3, method="finetune")
    with pytest.raises(lt.errors.TrimmerStateError, match="stride"):
        trimmer.load_state_dict(load_trimmer_state(bad))
    assert model[0].stride == (1,)


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("level", -5, "level -5 is not a level"),
        ("level", 1e300, r"level 1e\+300 is not a level"),
        ("level", True, "level True is not a level"),
        ("masked", ["0.nope"], "mask of '0.nope' names no weight"),
        ("masked", ["0.weight"], "mask of '0.weight' names no weight of the plan or has no saved"),
    ],
)
def test_crafted_trimmer_state_fields_are_named_and_change_nothing(
    tmp_path: Path, field: str, value: Any, text: str
) -> None:
    good = _good(tmp_path)
    tensors, meta = read_tensors(good)
    header = json.loads(meta["lotterytrim"])
    header["trimmer"][field] = value
    write_tensors(good, tensors, {"lotterytrim": json.dumps(header)})
    model = _build()
    before = [t.clone() for t in model.state_dict().values()]
    trimmer = lt.LotteryTrimmer(model, torch.randn(2, 1, 16), amount=0.3, method="finetune")
    with pytest.raises(lt.errors.TrimmerStateError, match=text):
        trimmer.load_state_dict(load_trimmer_state(good))
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))
    assert trimmer.level == 0

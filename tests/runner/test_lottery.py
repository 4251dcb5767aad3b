"""The experiment runner: rows, files, resume after a crash, run-directory hashing, picking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import lotterytrim as lt
from lotterytrim.runner.results import COLUMNS
from lotterytrim.storage.io import load_state
from lotterytrim.trimming.state import load_trimmer_state


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 12, 5, padding=2)
        self.bn1 = nn.BatchNorm1d(12)
        self.conv2 = nn.Conv1d(12, 16, 3, padding=1)
        self.fc = nn.Linear(16, 24)
        self.head = nn.Linear(24, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x)).mean(-1)
        return self.head(torch.relu(self.fc(x)))


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=gen)
    t = torch.arange(32).float()
    x = torch.sin(t * (y[:, None] + 1) * 0.3) + 0.3 * torch.randn(n, 32, generator=gen)
    return x[:, None, :], y


TRAIN, TEST = _data(96, 1), _data(48, 2)


class Recorder:
    """A train function that counts its calls and can crash on a chosen level."""

    def __init__(self, epochs: int = 2, crash_at: tuple[str, int] | None = None) -> None:
        self.epochs, self.crash_at = epochs, crash_at
        self.calls: list[tuple[str, str, int, int]] = []

    def __call__(self, model: nn.Module, ctx: lt.LevelContext) -> None:
        if self.crash_at == (ctx.method, ctx.level):
            raise KeyboardInterrupt("simulated crash")
        self.calls.append((ctx.method, ctx.criterion, ctx.replicate, ctx.level))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        x, y = TRAIN
        for _ in ctx.epochs(self.epochs):
            model.train()
            for idx in torch.randperm(len(x)).split(32):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
        ctx.record(final_lr=1e-2)


def evaluate(model: nn.Module) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        wrong = (model(TEST[0]).argmax(1) != TEST[1]).float().mean()
    return {"error": float(wrong), "val_error": float(wrong) / 2}


def _lottery(tmp_path: Path, train=None, settings=None, **config) -> lt.Lottery:
    defaults = dict(task="toy", levels=2, replicates=1, methods=("trim",))
    cfg = lt.LotteryConfig(**{**defaults, **config})
    return lt.Lottery(
        Net,
        TRAIN[0][:4],
        train or Recorder(),
        evaluate,
        cfg,
        data=[TRAIN[0][:32], TRAIN[0][32:64]],
        settings=settings if settings is not None else {"epochs": 2},
        root=tmp_path,
        progress=False,
    )


def test_rows_files_and_measurements(tmp_path: Path) -> None:
    train = Recorder()
    lottery = _lottery(tmp_path, train, methods=("trim", "finetune", "mask"), replicates=2)
    results = lottery.run()
    # one row per (method, criterion, replicate, level); mask runs once, by magnitude
    assert len(results) == 3 * 2 * 3
    assert set(results["method"]) == {"trim", "finetune", "mask"}
    assert set(results.loc[results.method == "mask", "criterion"]) == {"magnitude"}
    for col in COLUMNS + ("val_error", "final_lr"):
        assert col in results.columns, col
    # the reference is trained once per replicate and shared by every pair
    assert sum(1 for c in train.calls if c[3] == 0) == 2
    ref = results[results.level == 0]
    assert ref.groupby("replicate")["error"].nunique().max() == 1
    assert (ref["kept"] == 1.0).all()
    trim = results[(results.method == "trim") & (results.replicate == 0)].sort_values("level")
    params = trim["params"].tolist()
    assert params[0] > params[1] > params[2]
    assert trim["kept"].iloc[1] == pytest.approx(params[1] / params[0])
    assert trim["macs"].is_monotonic_decreasing and trim["macs"].iloc[2] < trim["macs"].iloc[0]
    assert trim["disk_bytes"].iloc[2] < trim["disk_bytes"].iloc[0]
    # masking removes weights from the count but not from the compute
    mask = results[(results.method == "mask") & (results.replicate == 0)].sort_values("level")
    assert mask["params"].iloc[2] < mask["params"].iloc[0]
    # (the masked forward also multiplies each weight by its mask, which counts too)
    assert (mask["macs"] >= mask["macs"].iloc[0]).all() and mask["macs"].iloc[1:].nunique() == 1
    # every level's file loads into the trimmed architecture with the recorded size
    for row in results.itertuples():
        model = lt.load(lottery.directory / row.path, Net)
        if row.method != "mask":
            assert sum(p.numel() for p in model.parameters()) == row.params
    assert (lottery.directory / "results.csv").exists()
    on_disk = pd.read_csv(lottery.directory / "results.csv")
    assert len(on_disk) == len(results)
    settings = json.loads((lottery.directory / "settings.json").read_text())
    assert settings["settings"] == {"epochs": 2}
    assert settings["config"]["methods"] == ["trim", "finetune", "mask"]


def test_only_the_last_level_keeps_the_trimmer_state(tmp_path: Path) -> None:
    lottery = _lottery(tmp_path, levels=3)
    lottery.run()
    folder = lottery.directory / "replicate-0" / "trim-magnitude"
    assert load_trimmer_state(folder / "level-01.lt") is None
    assert load_trimmer_state(folder / "level-02.lt") is None
    state = load_trimmer_state(folder / "level-03.lt")
    assert state is not None and state["meta"]["level"] == 3
    slim = (folder / "level-02.lt").stat().st_size
    assert slim < (folder / "level-03.lt").stat().st_size


def test_second_run_resumes_without_training(tmp_path: Path) -> None:
    first = _lottery(tmp_path).run()
    again = Recorder()
    lottery = _lottery(tmp_path, again)
    files = sorted(lottery.directory.rglob("*.lt"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    second = lottery.run()
    assert again.calls == []
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    cols = ["level", "error", "params", "macs"]
    pd.testing.assert_frame_equal(first[cols], second[cols])


def test_crash_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    clean = _lottery(tmp_path / "clean", levels=3).run()
    crashing = Recorder(crash_at=("trim", 2))
    lottery = _lottery(tmp_path / "crash", crashing, levels=3)
    with pytest.raises(KeyboardInterrupt):
        lottery.run()
    kept = lottery.results()
    assert sorted(kept["level"]) == [0, 1]  # the finished levels survive the crash
    resumed = Recorder()
    final = _lottery(tmp_path / "crash", resumed, levels=3).run()
    assert [c[3] for c in resumed.calls] == [2, 3]  # nothing finished is trained again
    cols = ["level", "error", "params", "macs", "disk_bytes"]
    pd.testing.assert_frame_equal(clean[cols], final[cols])


def test_run_directory_follows_the_settings(tmp_path: Path) -> None:
    a = _lottery(tmp_path).directory
    assert _lottery(tmp_path).directory == a
    assert _lottery(tmp_path, settings={"epochs": 3}).directory != a
    assert _lottery(tmp_path, amount=0.4).directory != a
    assert _lottery(tmp_path, criteria=("activation",)).directory != a
    assert a.name.startswith("toy-")


def test_train_must_capture_the_rewind_point(tmp_path: Path) -> None:
    def lazy(model: nn.Module, ctx: lt.LevelContext) -> None:
        pass

    with pytest.raises(lt.errors.LotteryError, match="rewind point"):
        _lottery(tmp_path, lazy).run()


def test_manual_capture_and_late_capture_rules(tmp_path: Path) -> None:
    seen: list[int] = []

    def manual(model: nn.Module, ctx: lt.LevelContext) -> None:
        seen.append(ctx.level)
        if ctx.level == 0:
            ctx.capture_rewind()
        else:
            with pytest.raises(lt.errors.LotteryError, match="level 0"):
                ctx.capture_rewind()

    results = _lottery(tmp_path, manual).run()
    assert seen == [0, 1, 2] and len(results) == 3


def test_evaluate_and_record_errors_name_the_problem(tmp_path: Path) -> None:
    def no_error(model: nn.Module) -> dict[str, float]:
        return {"accuracy": 0.5}

    cfg = lt.LotteryConfig(task="toy", levels=1, replicates=1)
    lottery = lt.Lottery(
        Net, TRAIN[0][:4], Recorder(), no_error, cfg, root=tmp_path, progress=False
    )
    with pytest.raises(lt.errors.LotteryError, match="'error'"):
        lottery.run()

    def clash(model: nn.Module, ctx: lt.LevelContext) -> None:
        ctx.record(params=3)

    with pytest.raises(ValueError, match="params"):
        _lottery(tmp_path / "b", clash).run()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"methods": ("prune",)}, "unknown method 'prune'"),
        ({"criteria": ("size",)}, "unknown criterion 'size'"),
        ({"amount": 1.5}, "amount"),
        ({"levels": -1}, "levels"),
        ({"replicates": 0}, "replicates"),
        ({"rewind_fraction": 2.0}, "rewind_fraction"),
        ({"task": "a/b"}, "task"),
        ({"criterion_options": {"information": {"bins": 4}}}, "criterion_options"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lt.LotteryConfig(**kwargs)


def test_lottery_rejects_bad_arguments(tmp_path: Path) -> None:
    cfg = lt.LotteryConfig(task="toy", levels=1)
    with pytest.raises(TypeError, match="config"):
        lt.Lottery(Net, TRAIN[0][:4], Recorder(), evaluate, {"levels": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="settings"):
        lt.Lottery(Net, TRAIN[0][:4], Recorder(), evaluate, cfg, settings={"f": object()})
    with pytest.raises(TypeError, match="build_model"):
        lt.Lottery(lambda: "net", TRAIN[0][:4], Recorder(), evaluate, cfg, root=tmp_path)


def test_min_units_reaches_the_trimmer(tmp_path: Path) -> None:
    results = _lottery(tmp_path, min_units=10, levels=2).run()
    path = results.sort_values("level")["path"].iloc[-1]
    model = lt.load(_lottery(tmp_path, min_units=10).directory / path, Net)
    assert model.conv1.out_channels >= 10 and model.conv2.out_channels >= 10
    assert model.fc.out_features >= 10
    with pytest.raises(ValueError, match="min_units"):
        lt.LotteryConfig(min_units=0)


def test_unprunable_names_are_protected(tmp_path: Path) -> None:
    results = _lottery(tmp_path, unprunable=("fc",), levels=2).run()
    path = results.sort_values("level")["path"].iloc[-1]
    model = lt.load(_lottery(tmp_path, unprunable=("fc",)).directory / path, Net)
    assert model.fc.out_features == 24
    assert model.conv1.out_channels < 12 or model.conv2.out_channels < 16


def test_pick_models_works_on_real_results(tmp_path: Path) -> None:
    results = _lottery(tmp_path, methods=("trim", "finetune"), levels=2).run()
    table = lt.pick_models(results, smallest=100.0)
    models = set(table["model"])
    assert {"reference", "best", "smallest"} <= models
    smallest = table.set_index("model").loc["smallest"]
    trim = results[results.method == "trim"]
    assert smallest["level"] == 2 and smallest["params"] == trim["params"].min()
    assert np.isfinite(table["error"]).all()


class MixedNet(Net):
    """Net whose second conv output is remixed by a matrix only an adapter could slice."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.eye(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.einsum("oc,bct->bot", self.mix, torch.relu(self.conv2(x))).mean(-1)
        return self.head(torch.relu(self.fc(x)))


def test_on_unsupported_reaches_the_trimmer(tmp_path: Path) -> None:
    def run(choice: str | None) -> lt.Lottery:
        extra = {} if choice is None else {"on_unsupported": choice}
        cfg = lt.LotteryConfig(task="toy", levels=1, replicates=1, **extra)
        return lt.Lottery(
            MixedNet, TRAIN[0][:4], Recorder(), evaluate, cfg, root=tmp_path, progress=False
        )

    with pytest.raises(lt.errors.UnsupportedLayerError, match=r"'<model>' \(MixedNet\) owns mix"):
        run(None).run()
    lottery = run("protect")
    results = lottery.run()
    path = results.sort_values("level")["path"].iloc[-1]
    model = lt.load(lottery.directory / path, MixedNet)
    assert model.conv2.out_channels == 16 and model.mix.shape == (16, 16)
    assert model.conv1.out_channels < 12 or model.fc.out_features < 24
    with pytest.raises(ValueError, match="on_unsupported must be 'error' or 'protect'"):
        lt.LotteryConfig(on_unsupported="ignore")


def test_default_on_unsupported_keeps_the_run_directory(tmp_path: Path) -> None:
    """Configs that leave on_unsupported at its default hash as they did before it existed."""
    a = _lottery(tmp_path)
    b = _lottery(tmp_path, on_unsupported="error")
    c = _lottery(tmp_path, on_unsupported="protect")
    assert a.directory == b.directory != c.directory
    assert "on_unsupported" not in a._settings_record()["config"]


def test_a_run_grows_replicate_by_replicate_in_one_directory(tmp_path: Path) -> None:
    first = _lottery(tmp_path, levels=1, replicates=1)
    first.run()
    calls = Recorder()
    grown = _lottery(tmp_path, train=calls, levels=2, replicates=2)
    assert grown.directory == first.directory
    rows = grown.run()
    # replicate 0's finished levels are kept; only what is new trains
    assert (0, 1) not in {(r, lvl) for _, _, r, lvl in calls.calls}
    assert {(r, lvl) for _, _, r, lvl in calls.calls} == {(0, 2), (1, 0), (1, 1), (1, 2)}
    assert sorted(set(zip(rows["replicate"], rows["level"], strict=True))) == [
        (r, lvl) for r in (0, 1) for lvl in (0, 1, 2)
    ]


def test_a_level_file_that_is_not_the_cells_is_set_aside_and_retrained(tmp_path: Path) -> None:
    clean = _lottery(tmp_path / "clean", levels=3).run()
    crashing = Recorder(crash_at=("trim", 2))
    lottery = _lottery(tmp_path / "crash", crashing, levels=3)
    with pytest.raises(KeyboardInterrupt):
        lottery.run()
    cell = lottery.directory / "replicate-0" / "trim-magnitude"
    # the reference's file copied over level 1's: its header says level 0, replicate 0's reference
    (cell / "level-01.lt").write_bytes(
        (lottery.directory / "replicate-0/reference.lt").read_bytes()
    )
    resumed = Recorder()
    with pytest.warns(UserWarning, match="level-01.lt is not this cell's file.*level 0, not 1"):
        final = _lottery(tmp_path / "crash", resumed, levels=3).run()
    assert [c[3] for c in resumed.calls] == [1, 2, 3]  # level 1 trained again, then on
    assert (cell / "level-01.lt.rejected").is_file()
    cols = ["level", "error", "params", "macs", "disk_bytes"]
    pd.testing.assert_frame_equal(clean[cols], final[cols])
    _, _, meta = load_state(cell / "level-02.lt")
    assert meta == {
        "task": "toy",
        "run": lottery.directory.name,
        "replicate": 0,
        "method": "trim",
        "criterion": "magnitude",
        "level": 2,
    }


def test_a_foreign_reference_is_set_aside_and_trained_again(tmp_path: Path) -> None:
    lottery = _lottery(tmp_path, replicates=2, levels=1)
    lottery.run()
    ref0 = lottery.directory / "replicate-0" / "reference.lt"
    ref0.write_bytes((lottery.directory / "replicate-1" / "reference.lt").read_bytes())
    (lottery.directory / "replicate-0" / "trim-magnitude" / "level-00.json").unlink()
    calls = Recorder()
    with pytest.warns(UserWarning, match="replicate 1, not 0"):
        _lottery(tmp_path, calls, replicates=2, levels=1).run()
    assert (0, 0) in {(r, lvl) for _, _, r, lvl in calls.calls}


@pytest.mark.parametrize("params", [0, None, "12", 1.5])
def test_a_corrupt_reference_row_is_named_before_anything_trains(tmp_path: Path, params) -> None:
    lottery = _lottery(tmp_path, levels=1)
    lottery.run()
    row = lottery.directory / "replicate-0" / "trim-magnitude" / "level-00.json"
    data = json.loads(row.read_text())
    data["params"] = params
    row.write_text(json.dumps(data))
    (lottery.directory / "replicate-0" / "trim-magnitude" / "level-01.json").unlink()
    calls = Recorder()
    with pytest.raises(lt.errors.LotteryError, match=r"level-00.json: field 'params' must be"):
        _lottery(tmp_path, calls, levels=1).run()
    assert calls.calls == []


def test_a_task_name_too_long_for_a_directory_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="at most 200 bytes, got 300"):
        lt.LotteryConfig(task="t" * 300)


def test_a_crash_between_a_level_file_and_its_row_retrains_that_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = _lottery(tmp_path / "clean", levels=3).run()
    from lotterytrim.runner import lottery as runner_module

    real = runner_module.write_json

    def crash_on_row_2(path: Path, value) -> None:
        if path.name == "level-02.json":
            raise KeyboardInterrupt("crash after the level file, before its row")
        real(path, value)

    monkeypatch.setattr(runner_module, "write_json", crash_on_row_2)
    lottery = _lottery(tmp_path / "crash", levels=3)
    with pytest.raises(KeyboardInterrupt):
        lottery.run()
    cell = lottery.directory / "replicate-0" / "trim-magnitude"
    assert (cell / "level-02.lt").is_file() and not (cell / "level-02.json").exists()
    monkeypatch.undo()
    resumed = Recorder()
    final = _lottery(tmp_path / "crash", resumed, levels=3).run()
    assert [c[3] for c in resumed.calls] == [2, 3]  # the half-done level is not trusted
    cols = ["level", "error", "params", "macs", "disk_bytes"]
    pd.testing.assert_frame_equal(clean[cols], final[cols])

"""The MIR lottery runs (examples.mir.run): every task end to end on the tiny profile, resume,
run directories, the command line and the real-data splits."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import lotterytrim as lt
from examples.mir import metrics, render_pitch, synth_chords, synth_drums
from examples.mir.datasets import DatasetNotFoundError
from examples.mir.models import MIR_TASKS, TASKS, count_parameters
from examples.mir.profiles import PROFILES, Profile
from examples.mir.run import build_lottery, headline, main, parse_args, run_task
from examples.mir.splits import split_by_group, subset

TINY = PROFILES["tiny"]


def _file(directory: Path, path: str) -> Path:
    """A result row's model file (paths may be relative to the run directory)."""
    p = Path(path)
    return p if p.is_absolute() else directory / p


def _level_files(directory: Path) -> dict[Path, int]:
    """Modification times of the per-level rows and model files of a run directory."""
    files = [*directory.rglob("*.lt"), *directory.rglob("level-*.json")]
    return {p: p.stat().st_mtime_ns for p in files}


@pytest.mark.parametrize("task", list(MIR_TASKS))  # ddsp: tests/examples/test_ddsp.py
def test_tiny_lottery_runs_saves_and_resumes(task: str, tmp_path: Path) -> None:
    results, lottery, run = run_task(task, TINY, tmp_path, progress=False, log=None)
    config = TINY.config(task)
    pairs = config.runs()
    expected = {
        (m, c, r, level)
        for r in range(config.replicates)
        for m, c in pairs
        for level in range(config.levels + 1)
    }
    keys = list(
        zip(results.method, results.criterion, results.replicate, results.level, strict=True)
    )
    assert len(keys) == len(expected) and set(keys) == expected
    assert (results["task"] == task).all()
    assert results["error"].between(0.0, 1.0).all() and results["val_error"].notna().all()
    assert {"best_epoch", "epochs", "still_falling", "test_n"} <= set(results.columns)
    assert (results.error_low <= results.error + 1e-9).all()
    assert (results.error <= results.error_high + 1e-9).all()
    # one reference per replicate, then every (method, criterion) level once
    assert run.train_calls == config.replicates * (1 + len(pairs) * config.levels)
    assert lottery.directory.parent == tmp_path and lottery.directory.name.startswith(task)
    on_disk = pd.read_csv(lottery.directory / "results.csv")
    assert len(on_disk) == len(results)

    reference = count_parameters(run.build_model())
    for row in results.itertuples():
        file = _file(lottery.directory, row.path)
        assert file.is_file(), file
        model = lt.load(file, run.build_model)
        with torch.no_grad():
            out = model.eval()(run.example_inputs)
        assert out.shape == (2, TASKS[task].n_outputs) and torch.isfinite(out).all()
        if row.level == 0 or row.method == "mask":  # masking keeps the shapes
            assert count_parameters(model) == reference
        else:
            assert count_parameters(model) == row.params < reference
    for method in ("trim", "finetune"):
        params = results[results.method == method].sort_values("level")["params"].to_numpy()
        assert np.all(np.diff(params) < 0), (method, params)

    before = _level_files(lottery.directory)
    again, lottery2, run2 = run_task(task, TINY, tmp_path, progress=False, log=None)
    assert lottery2.directory == lottery.directory
    assert run2.train_calls == 0
    pd.testing.assert_frame_equal(again, results)
    assert _level_files(lottery.directory) == before


def test_same_settings_give_the_same_numbers(tmp_path: Path) -> None:
    profile = TINY.override(levels=1)
    first, _, _ = run_task("singing", profile, tmp_path / "a", progress=False, log=None)
    second, _, _ = run_task("singing", profile, tmp_path / "b", progress=False, log=None)
    numbers = ["error", "val_error", "val_loss", "params", "macs"]
    pd.testing.assert_frame_equal(first[numbers], second[numbers])


def test_changed_settings_get_their_own_directory(tmp_path: Path) -> None:
    same, _ = build_lottery("pitch", TINY, tmp_path, progress=False, log=None)
    again, _ = build_lottery("pitch", TINY, tmp_path, progress=False, log=None)
    assert same.directory == again.directory
    # more levels or replicates extend the same run, replicate by replicate
    for grown in (TINY.override(levels=3), TINY.override(replicates=3)):
        assert (
            build_lottery("pitch", grown, tmp_path, progress=False)[0].directory == same.directory
        )
    changed = [
        TINY.override(epochs=2),
        TINY.override(methods=("trim", "finetune")),
        dataclasses.replace(TINY, lr={**TINY.lr, "pitch": 5e-4}),
        dataclasses.replace(TINY, examples={**TINY.examples, "pitch": 30}),
        dataclasses.replace(TINY, seed=1),
    ]
    directories = {
        build_lottery("pitch", p, tmp_path, progress=False)[0].directory for p in changed
    }
    assert len(directories) == len(changed) and same.directory not in directories
    other_task, _ = build_lottery("onset", TINY, tmp_path, progress=False, log=None)
    assert other_task.directory.name.startswith("onset-")
    assert not any(tmp_path.iterdir())  # building a runner writes nothing


def test_command_line_runs_a_task_and_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figure = tmp_path / "figure2.png"
    argv = ["--task", "onset", "--profile", "tiny", "--root", str(tmp_path / "runs")]
    argv += ["--no-progress", "--levels", "1", "--epochs", "2", "--figure", str(figure)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (directory,) = (tmp_path / "runs").iterdir()
    assert f"run directory: {directory}" in out
    assert "| onset" in out and "reference" in out and "optimal" in out
    assert "level 1: trained" in out and "(2 epochs" in out  # per-level timing
    assert figure.is_file() and figure.stat().st_size > 0
    rows = pd.read_csv(directory / "results.csv")
    assert sorted(rows.level.unique()) == [0, 1]
    # the headline names the model chosen on validation, its method and its test error
    pick = lt.pick_models(rows).set_index("model")
    if "optimal" in pick.index:
        chosen = pick.loc["optimal"]
        assert f"{chosen.method} level 1, {chosen.smaller:.2f}x fewer parameters" in out
        assert f"test error {chosen.error:.3f}" in out
    else:
        assert "no trimmed model within 1.1x" in out


def test_headline_chooses_on_validation_across_methods() -> None:
    rows = []
    for method, val, test in (("trim", 0.30, 0.10), ("finetune", 0.21, 0.40)):
        for level in (0, 1, 2):
            params = 1000 // (level + 1)
            rows.append(
                dict(
                    task="onset",
                    method=method,
                    criterion="magnitude",
                    replicate=0,
                    level=level,
                    params=params,
                    macs=10 * params,
                    val_error=0.2 if level == 0 else val,
                    error=0.2 if level == 0 else test,
                )
            )
    line = headline(pd.DataFrame(rows))
    # trim is better on test (0.10) but only finetune is within 1.1x on validation
    assert "finetune level 2, 3.00x fewer parameters (333 of 1,000)" in line
    assert "validation error 0.210 (reference 0.200), test error 0.400 (reference 0.200)" in line


def test_parse_args_defaults_and_overrides() -> None:
    args = parse_args(["--task", "pitch"])
    assert (args.task, args.profile, args.root, args.data_root) == ("pitch", "quick", "runs", None)
    assert args.replicates is args.levels is args.epochs is args.figure is None
    args = parse_args(
        ["--task", "all", "--profile", "paper", "--replicates", "2", "--levels", "3"]
        + ["--epochs", "7", "--data-root", "/data", "--no-progress", "--figure", "f.png"]
    )
    assert (args.task, args.profile, args.replicates, args.levels, args.epochs) == (
        "all",
        "paper",
        2,
        3,
        7,
    )
    assert args.no_progress and args.data_root == "/data" and args.figure == "f.png"
    profile = PROFILES[args.profile].override(args.replicates, args.levels, args.epochs)
    assert (profile.replicates, profile.levels) == (2, 3)
    assert set(profile.max_epochs.values()) == {7} and set(profile.max_epochs) == set(TASKS)
    assert profile.batch_size == PROFILES["paper"].batch_size
    assert profile.methods == PROFILES["paper"].methods  # not given: the profile's
    args = parse_args(["--task", "onset", "--methods", "trim, mask"])
    assert args.methods == ("trim", "mask")
    quick = PROFILES["quick"].override(methods=args.methods)
    assert quick.methods == ("trim", "mask") and "mask" not in PROFILES["quick"].methods


def test_set_changes_number_fields_for_the_tasks_run() -> None:
    args = parse_args(["--task", "chord", "--set", "kd_temperature=4", "--set", "lr=3e-3"])
    distilling = PROFILES["quick"].override(methods=("lrr+kd",))
    profile = distilling.with_settings(args.set, ["chord"])
    assert profile.train_settings("chord").kd_temperature == 4.0
    assert profile.lr["chord"] == 3e-3 and profile.lr["onset"] == PROFILES["quick"].lr["onset"]
    assert profile.settings("chord") != distilling.settings("chord")  # a new run directory
    grown = profile.with_settings(["epoch_examples=512", "max_epochs=9"], ["pitch", "drum"])
    assert grown.epoch_examples["pitch"] == 512 and grown.max_epochs["drum"] == 9
    assert grown.max_epochs["chord"] == PROFILES["quick"].max_epochs["chord"]
    for bad, says in [
        ("kd_weight", "FIELD=VALUE"),
        ("colour=3", "FIELD=VALUE"),
        ("methods=trim", "not a number field"),
        ("cap_real_data=1", "not a number field"),
        ("levels=2.5", "expected an integer"),
        ("lr=fast", "expected a number"),
    ]:
        with pytest.raises(SystemExit, match=says):
            PROFILES["quick"].with_settings([bad], ["chord"])


def test_earlybird_settings_reach_the_monitors_and_only_change_paced_runs() -> None:
    paced = PROFILES["quick"].override(methods=("finetune", "finetune@earlybird"))
    assert paced.config("chord").earlybird == {}  # the monitor's defaults: the same directory
    stricter = paced.with_settings(["earlybird_threshold=0.03", "earlybird_window=3"], ["chord"])
    assert stricter.config("chord").earlybird == {"threshold": 0.03, "window": 3}
    assert stricter.config("chord").record() != paced.config("chord").record()
    unpaced = PROFILES["quick"].with_settings(["earlybird_threshold=0.03"], ["chord"])
    assert unpaced.config("chord").earlybird == {}  # no monitor: nothing to set
    guarded = stricter.with_settings(["earlybird_min_drop=0.2"], ["chord"])
    assert guarded.config("chord").earlybird == {"threshold": 0.03, "window": 3, "min_drop": 0.2}
    assert guarded.config("chord").record() != stricter.config("chord").record()


def test_the_reference_may_train_with_its_own_settings_and_only_its_task() -> None:
    quick = PROFILES["quick"]
    # tasks without settings of their own hash as before: their run directories stay
    assert all("reference" not in quick.settings(t)["train"] for t in ("chord", "onset"))
    longer = quick.with_settings(["reference.patience=30", "reference.max_epochs=90"], ["chord"])
    chord = longer.train_settings("chord")
    assert chord.at_level(0).patience == 30 and chord.at_level(0).max_epochs == 90
    assert chord.at_level(1) == chord and chord.patience == quick.patience["chord"]
    assert longer.settings("chord") != quick.settings("chord")
    assert longer.settings("onset") == quick.settings("onset")
    for bad in ("reference.lr=1e-3", "reference.patience=", "reference=3"):
        with pytest.raises(SystemExit, match="reference"):
            quick.with_settings([bad], ["chord"])


def test_the_command_line_may_change_the_safeguards_of_the_tasks_it_runs() -> None:
    quick = dataclasses.replace(
        PROFILES["quick"], task_config={"ddsp": {"safeguards": {"step_cap": 0.4}}}
    )
    lower = quick.with_settings(["safeguards.keep_floor=0.1"], ["ddsp"])
    # over what the task sets itself, field by field; other tasks keep the profile's
    assert lower.config("ddsp").safeguards == lt.Safeguards(step_cap=0.4, keep_floor=0.1)
    assert lower.config("chord") == quick.config("chord")
    both = quick.with_settings(["safeguards.step_cap=0.3", "safeguards.keep_floor=0.2"], ["chord"])
    assert both.config("chord").safeguards == lt.Safeguards(step_cap=0.3, keep_floor=0.2)
    assert both.config("ddsp") == quick.config("ddsp")
    for bad, why in (
        ("safeguards.cost=1", "may set"),
        ("safeguards.keep_floor=1.5", "keep_floor must lie"),
        ("safeguards.keep_floor=", "may set"),
        ("safeguards=0.1", "number field"),
    ):
        with pytest.raises(SystemExit, match=why):
            quick.with_settings([bad], ["ddsp"])


def test_the_command_line_may_set_the_units_every_layer_keeps(tmp_path: Path) -> None:
    quick = PROFILES["quick"]
    assert quick.config("chord").options.min_units == 1
    three = quick.with_settings(["min_units=3"], ["chord"])
    assert three.config("chord").options.min_units == 3
    assert three.config("chord").safeguards == quick.config("chord").safeguards
    assert three.config("pitch") == quick.config("pitch")  # only the tasks run change
    runs = {
        build_lottery("chord", p, tmp_path, progress=False)[0].directory for p in (quick, three)
    }
    assert len(runs) == 2  # it changes the levels, so it has a run directory of its own
    for bad in ("min_units=0", "min_units=1.5"):
        with pytest.raises((SystemExit, ValueError), match="min_units"):
            quick.with_settings([bad], ["chord"]).config("chord")


def test_pitch_keeps_three_units_per_layer_over_a_lower_floor() -> None:
    """The quick profile's own selection for pitch, whose middle layers have 4 channels: the
    minimum and the floor reach the lottery's configuration, and only pitch's."""
    quick = PROFILES["quick"]
    pitch = quick.config("pitch")
    assert pitch.options.min_units == 3 and pitch.safeguards.keep_floor == 0.05
    assert quick.config("chord").safeguards == lt.Safeguards()


@pytest.mark.parametrize(
    ("argv", "bad"),
    [
        (["--task", "tempo"], "tempo"),
        (["--task", "onset", "--profile", "huge"], "huge"),
        (["--task", "onset", "--levels", "-1"], "-1"),
        (["--task", "onset", "--epochs", "many"], "expected an integer, got 'many'"),
        (["--profile", "quick"], "--task"),
        (["--task", "onset", "--methods", "trim,prune"], "['prune']"),
        (["--task", "onset", "--methods", ","], "unknown method"),
    ],
)
def test_parse_args_rejects_unknown_values(
    argv: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert bad in err
    if "--task" in argv and bad == "tempo":
        assert all(task in err for task in TASKS)  # the message lists the valid tasks
    if bad == "huge":
        assert all(name in err for name in PROFILES)
    if "--methods" in argv:
        assert all(name in err for name in ("trim", "finetune", "reinit", "mask"))


def test_profiles_follow_the_paper_and_document_every_field() -> None:
    helps = Profile.help()
    assert set(helps) == {f.name for f in dataclasses.fields(Profile)}
    assert all(text.strip() for text in helps.values())
    paper = PROFILES["paper"]
    assert (paper.levels, paper.amount, paper.replicates, paper.rewind_fraction("chord")) == (
        15,
        0.3,
        5,
        0.5,
    )
    # the paper's fixed epochs: its patience never ends a level before the cap
    assert all(paper.patience[t] >= paper.max_epochs[t] for t in TASKS)
    assert {paper.batch_size[t] for t in MIR_TASKS} == {64} and paper.weight_decay == 2e-4
    assert set(paper.lr.values()) == {1e-3}
    assert (paper.plateau_factor, paper.size) == (0.5, "paper")
    assert set(paper.plateau_patience.values()) == {10}
    assert {"trim", "finetune", "mask"} <= set(paper.methods)
    assert {"magnitude", "activation", "batchnorm"} <= set(paper.criteria)
    quick = PROFILES["quick"]
    assert quick.size == "quick" and (1 - quick.amount) ** quick.levels < 0.15  # > 85% removed
    assert {"trim", "finetune"} <= set(quick.methods)
    assert quick.replicates == 3 and quick.data == "rendered"
    assert all(quick.rewind_epochs[t] <= quick.patience[t] < quick.max_epochs[t] for t in TASKS)
    # the rate is lowered at least once before a level can stop, and per task
    assert all(quick.plateau_patience[t] < quick.patience[t] for t in TASKS)
    assert (
        quick.train_settings("drum").plateau_patience
        == quick.plateau_patience["drum"]
        != (quick.train_settings("chord").plateau_patience)
    )
    assert TINY.size == "tiny" and TINY.levels == 2 and set(TINY.max_epochs.values()) == {1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.levels = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="size"):
        dataclasses.replace(TINY, size="huge")


def _smt_drums(root: Path, clips: int) -> int:
    """A small IDMT-SMT-Drums folder: noise-burst drum mixes with text annotations."""
    sr = 22050
    (root / "audio").mkdir(parents=True)
    (root / "annotation_txt").mkdir()
    rng = np.random.default_rng(0)
    burst = rng.standard_normal(1500) * np.exp(-np.arange(1500) / 200)
    for c in range(clips):
        times = np.sort(rng.choice(np.arange(0.2, 1.8, 0.1), 5, replace=False))
        y = 0.01 * rng.standard_normal(2 * sr)
        for t in times:
            y[int(t * sr) : int(t * sr) + 1500] += 0.3 * burst
        sf.write(str(root / "audio" / f"Mix{c:02d}#MIX.wav"), y.astype(np.float32), sr)
        lines = [f"{t:.3f} {'KD' if i % 2 else 'HH'}" for i, t in enumerate(times)]
        (root / "annotation_txt" / f"Mix{c:02d}#MIX.txt").write_text("\n".join(lines))
    return clips


def test_real_data_root_runs_on_recordings_split_by_clip(tmp_path: Path) -> None:
    _smt_drums(tmp_path / "data" / "smt-drums", clips=6)
    real = dataclasses.replace(TINY, levels=1)
    results, lottery, run = run_task(
        "onset", real, tmp_path / "runs", str(tmp_path / "data"), progress=False, log=None
    )
    files = [set(part.meta["file"]) for part in run.splits]
    assert sum(len(f) for f in files) == real.examples["onset"]  # tiny keeps 4 whole clips
    assert all(len(f) >= 1 for f in files)
    assert not (files[0] & files[1] or files[0] & files[2] or files[1] & files[2])
    assert all(
        len(part.meta["onsets"]) == len(f) for part, f in zip(run.splits, files, strict=True)
    )
    assert len(results) == len(real.config("onset").runs()) * 2
    assert results["error"].between(0.0, 1.0).all()
    synthetic, _ = build_lottery("onset", real, tmp_path / "runs", progress=False, log=None)
    assert synthetic.directory != lottery.directory  # the data source is part of the hash


def test_missing_real_data_names_the_expected_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="smt-drums"):
        build_lottery("onset", TINY, tmp_path / "runs", data_root=str(tmp_path), log=None)


def test_split_by_group_keeps_clips_whole_and_scorable() -> None:
    data = synth_drums.onsets(6, seed=3, size="tiny")
    splits = split_by_group(data, "clip", seed=0)
    clips_per_split = [len(part.meta["onsets"]) for part in splits]
    assert sum(clips_per_split) == 6 and min(clips_per_split) >= 1
    assert sum(part.n for part in splits) == data.n
    seen: list[float] = []
    for part in splits:
        assert set(np.unique(part.meta["clip"])) == set(range(len(part.meta["onsets"])))
        # perfect activations at the reference onsets give a perfect score on every split
        assert metrics.onset_error(part.targets * 20 - 10, part) == pytest.approx(0.0, abs=0.05)
        seen.extend(float(t) for clip in part.meta["onsets"] for t in clip[0])
    everything = [float(t) for clip in data.meta["onsets"] for t in clip[0]]
    assert sorted(seen) == sorted(everything)  # every clip lands in exactly one split


def test_split_by_group_keeps_groups_apart_and_limits_them() -> None:
    data = synth_chords.chords(60, seed=1, size="tiny")
    data.meta["song"] = [f"song{i // 5}" for i in range(data.n)]  # 12 songs of 5 patches
    data.meta["row"] = np.arange(data.n)
    splits = split_by_group(data, "song", seed=0)
    songs = [set(part.meta["song"]) for part in splits]
    assert not (songs[0] & songs[1] or songs[0] & songs[2] or songs[1] & songs[2])
    assert sum(part.n for part in splits) == data.n
    for part in splits:  # inputs and labels stay aligned with their meta
        rows = torch.as_tensor(part.meta["row"])
        assert torch.equal(part.inputs, data.inputs[rows])
        assert torch.equal(part.targets, data.targets[rows])
    limited = split_by_group(data, "song", seed=0, limit=20)
    assert sum(part.n for part in limited) == 20
    picked = subset(data, np.array([3, 7]))
    assert torch.equal(picked.inputs, data.inputs[[3, 7]])
    assert picked.meta["song"] == [data.meta["song"][3], data.meta["song"][7]]


def test_rendered_data_run_and_its_soundfont_in_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOTTERYTRIM_CACHE", str(tmp_path / "cache"))
    rendered = dataclasses.replace(TINY, data="rendered", levels=1)
    results, lottery, run = run_task("onset", rendered, tmp_path / "runs", progress=False, log=None)
    assert results["error"].between(0.0, 1.0).all() and run.splits.test.n > 0
    assert any((tmp_path / "cache").rglob("*.npz"))  # rendered once, kept on disk
    settings = rendered.settings("onset")
    assert settings["data"]["source"] == "rendered"
    assert len(settings["data"]["soundfont"]["sha256"]) == 64
    synthetic, _ = build_lottery("onset", TINY.override(levels=1), tmp_path / "runs", log=None)
    assert synthetic.directory != lottery.directory


def test_rendered_pitch_settings_name_its_held_out_timbres() -> None:
    rendered = dataclasses.replace(TINY, data="rendered")
    pitch = rendered.settings("pitch")["data"]
    assert pitch["heldout_programs"] == list(render_pitch.PITCH_HELDOUT_PROGRAMS)
    assert pitch["heldout_share"] == render_pitch.PITCH_HELDOUT_SHARE
    # the other tasks' settings, and so their run directories, are what they were
    onset = rendered.settings("onset")["data"]
    assert set(onset) == {"source", "examples", "fractions", "seed", "soundfont"}


def test_workers_give_the_in_process_results(tmp_path: Path) -> None:
    here, _, _ = run_task(
        "onset", TINY.override(levels=1), tmp_path / "a", progress=False, log=None
    )
    argv = ["--task", "onset", "--profile", "tiny", "--levels", "1", "--no-progress"]
    assert main([*argv, "--root", str(tmp_path / "b"), "--workers", "2"]) == 0
    (directory,) = (tmp_path / "b").iterdir()
    workers = pd.read_csv(directory / "results.csv")
    numbers = ["method", "replicate", "level", "error", "val_error", "params", "macs"]
    pd.testing.assert_frame_equal(here[numbers], workers[numbers])
    with pytest.raises(SystemExit):
        parse_args(["--task", "onset", "--workers", "0"])


def test_replicates_run_one_at_a_time_fill_the_directory_of_one_run(tmp_path: Path) -> None:
    tiny = TINY.override(replicates=2, levels=1)
    both, _, _ = run_task("onset", tiny, tmp_path / "a", progress=False, log=None)
    argv = ["--task", "onset", "--profile", "tiny", "--levels", "1", "--replicates", "2"]
    argv += ["--no-progress", "--root", str(tmp_path / "b")]
    assert main([*argv, "--only-replicates", "1"]) == 0
    (directory,) = (tmp_path / "b").iterdir()
    assert set(pd.read_csv(directory / "results.csv").replicate) == {1}
    assert main([*argv, "--only-replicates", "0"]) == 0
    split = pd.read_csv(directory / "results.csv")
    numbers = ["method", "replicate", "level", "error", "val_error", "params", "macs"]
    pd.testing.assert_frame_equal(both[numbers], split[numbers])
    with pytest.raises(SystemExit, match="--only-replicates 2: the run has 2 replicate"):
        main([*argv, "--only-replicates", "0,2"])
    for bad in ("x", "-1", ""):
        with pytest.raises(SystemExit):
            parse_args(["--task", "onset", "--only-replicates", bad])


def test_a_task_run_travels_to_workers_without_its_data(tmp_path: Path) -> None:
    lottery, run = build_lottery("pitch", TINY, tmp_path, progress=False, log=None)
    assert "splits" not in run.__getstate__() and callable(lottery.data)
    copy = pickle.loads(pickle.dumps(lottery))
    task_run = copy.train.__self__
    assert task_run.spec is TASKS["pitch"]
    assert torch.equal(task_run.splits.val.inputs, run.splits.val.inputs)
    assert all(torch.equal(a, b) for a, b in zip(copy.data(), lottery.data(), strict=True))


@pytest.mark.parametrize("task", ["chord", "onset"])
def test_a_distilling_method_trains_against_the_reference(task: str, tmp_path: Path) -> None:
    """chord distils a softmax, onset a sigmoid; each ``+kd`` method is its own result column."""
    profile = TINY.override(methods=("lrr", "lrr+kd"), levels=1)
    results, _, _ = run_task(task, profile, tmp_path, progress=False, log=None)
    assert set(results.method) == {"lrr", "lrr+kd"}
    plain, distilled = (
        results[(results.method == m) & (results.level == 1)].iloc[0] for m in ("lrr", "lrr+kd")
    )
    assert plain.params == distilled.params  # the same step, trained differently
    assert plain.val_loss != distilled.val_loss
    # distillation's settings are hashed only where a method distils
    assert "kd_weight" in profile.settings(task)["train"]
    assert "kd_weight" not in PROFILES["quick"].settings(task)["train"]


def test_levels_record_the_error_right_after_their_step(tmp_path: Path) -> None:
    """step_val_error: validation error of the model as the step left it, before retraining."""
    profile = TINY.override(methods=("trim",), levels=2)
    results, lottery, run = run_task("chord", profile, tmp_path, progress=False, log=None)
    assert results[results.level == 0].step_val_error.isna().all()
    trimmed = results[results.level > 0].sort_values("level")
    assert trimmed.step_val_error.between(0, 1).all()
    assert (trimmed.step_val_error != trimmed.val_error).any()  # not the retrained model's


def test_train_records_the_validation_error_of_the_model_it_was_handed(tmp_path: Path) -> None:
    _, run = build_lottery("chord", TINY, tmp_path, progress=False, log=None)
    model = run.build_model()
    expected = run._validate(model)[0]

    class Ctx:
        task, method, criterion, replicate, level, seed, distill = (
            "chord",
            "trim",
            "m",
            0,
            1,
            0,
            False,
        )
        records: dict = {}

        def epochs(self, n: int):
            yield 0

        def record(self, **values: float) -> None:
            self.records.update(values)

        def report_loss(self, loss: float) -> None:
            pass

    ctx = Ctx()
    run.train(model, ctx)
    assert ctx.records["step_val_error"] == expected


def test_a_task_may_rank_in_its_own_scope_and_only_its_directory_changes(tmp_path: Path) -> None:
    """``task_scope`` changes the scope (and run directory) of the tasks it names only;
    ``--scope`` ranks every task in one scope again."""
    own = dataclasses.replace(TINY, task_scope={"chord": "local"})
    assert (own.config("chord").scope, own.config("onset").scope) == ("local", TINY.scope)
    for task, moved in (("chord", True), ("onset", False)):
        before = build_lottery(task, TINY, tmp_path, progress=False, log=None)[0].directory
        after = build_lottery(task, own, tmp_path, progress=False, log=None)[0].directory
        assert (before != after) is moved
    # a per-task local scope is the run of the whole profile in that scope, for that task
    local = build_lottery("chord", TINY.with_scope("local"), tmp_path, progress=False)[0]
    assert local.directory == build_lottery("chord", own, tmp_path, progress=False)[0].directory
    every = own.with_scope("global")
    assert every.config("chord").scope == "global" and not every.task_scope
    args = parse_args(["--task", "chord", "--scope", "global"])
    assert args.scope == "global" and parse_args(["--task", "chord"]).scope is None
    with pytest.raises(ValueError, match="task_scope"):
        dataclasses.replace(TINY, task_scope={"chord": "everywhere"})
    with pytest.raises(ValueError, match="task_scope"):
        dataclasses.replace(TINY, task_scope={"karaoke": "local"})


def test_a_task_may_set_its_own_levels_methods_and_criteria() -> None:
    """``task_config`` changes the runner settings of the task it names only; the command
    line's methods and levels hold for every task; unknown tasks or fields are refused."""
    own = dataclasses.replace(
        TINY,
        task_config={
            "ddsp": {
                "amount": 0.4,
                "methods": ("finetune",),
                "criteria": ("magnitude", "information"),
                "criterion_options": {"information": {"positions": True}},
                "safeguards": {"keep_floor": 0.1},
            }
        },
    )
    ddsp, chord = own.config("ddsp"), own.config("chord")
    assert ddsp.safeguards == lt.Safeguards(keep_floor=0.1)  # the fields it names, else the
    assert chord.safeguards == lt.Safeguards()  # profile's
    assert (ddsp.amount, ddsp.methods, ddsp.criteria) == (
        0.4,
        ("finetune",),
        ("magnitude", "information"),
    )
    assert ddsp.criterion_options == {"information": {"positions": True}}
    assert chord == TINY.config("chord")
    cli = own.override(methods=("trim",), levels=3)
    assert cli.config("ddsp").methods == ("trim",) and cli.config("ddsp").levels == 3
    assert cli.config("ddsp").amount == 0.4  # what the command line did not name stays
    # --criteria too; options of a criterion the run does not rank by are left out
    one = own.override(criteria=("magnitude",)).config("ddsp")
    assert one.criteria == ("magnitude",) and one.criterion_options == {}
    assert parse_args(["--task", "ddsp", "--criteria", "magnitude,information"]).criteria == (
        "magnitude",
        "information",
    )
    with pytest.raises(SystemExit):
        parse_args(["--task", "ddsp", "--criteria", "loudest"])
    with pytest.raises(ValueError, match="task_config"):
        dataclasses.replace(TINY, task_config={"ddsp": {"scope": "local"}})
    with pytest.raises(ValueError, match="task_config"):
        dataclasses.replace(TINY, task_config={"karaoke": {"amount": 0.4}})

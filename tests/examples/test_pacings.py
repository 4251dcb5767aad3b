"""The pacing benchmark (benchmarks.pacings): the table of errors and costs per level beside
the iterative lottery's, the early-bird curves gathered from run directories into a CSV, and
the two figures (distance against epochs, error against training time)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.pacings import (
    CURVE_COLUMNS,
    by_level,
    collect_curves,
    export_rows,
    main,
    plot_curves,
    plot_time,
    table,
    target_verdict,
    targets,
)
from examples.mir.profiles import PROFILES
from examples.mir.run import run_task
from lotterytrim.storage.io import saved_metadata


def test_ratios_are_to_the_iterative_lottery_at_the_same_level() -> None:
    rows = pd.DataFrame(
        {
            "method": ["lrr", "lrr", "lrr", "lrr@earlybird", "lrr@oneshot", "lrr@oneshot"],
            "replicate": [0, 0, 1, 0, 0, 1],
            "level": [0, 1, 1, 1, 1, 1],
            "kept": [1.0, 0.7, 0.7, 0.7, 0.7, 0.7],
            "val_error": [0.1, 0.2, 0.1, 0.3, 0.1, 0.2],
            "error": [0.1, 0.2, 0.2, 0.3, 0.2, 0.2],
            "total_epochs": [10, 20, 20, 8, 15, 15],
            "total_seconds": [10.0, 40.0, 40.0, 10.0, 20.0, 40.0],
        }
    )
    got = table(rows)
    assert set(got.index) == {(1, "iterative"), (1, "earlybird"), (1, "oneshot")}
    # early-bird ran on replicate 0 only: held to replicate 0's lottery (0.2), not the mean
    assert got.loc[(1, "earlybird"), "val x"] == 1.5
    assert got.loc[(1, "earlybird"), "time x"] == 0.25
    assert got.loc[(1, "earlybird"), "replicates"] == 1
    assert got.loc[(1, "oneshot"), "val x"] == 1.0  # the means over both replicates: 0.15
    assert got.loc[(1, "oneshot"), "replicates"] == 2
    assert got.loc[(1, "iterative"), "val_error"] == pytest.approx(0.15)
    assert "paired" not in got  # every mean paired: the replicates say it
    # a pacing of a replicate without an iterative lottery: its means, and no ratio
    alone = rows[rows.method == "lrr@earlybird"].assign(replicate=5, val_error=0.5)
    got = table(pd.concat([rows, alone]))
    assert got.loc[(1, "earlybird"), "val_error"] == pytest.approx(0.4)  # replicates 0 and 5
    assert got.loc[(1, "earlybird"), "val x"] == 1.5  # replicate 0's, the one paired
    assert got.loc[(1, "earlybird"), ["replicates", "paired"]].tolist() == [2, 1]
    got = table(alone)
    assert got.loc[(1, "earlybird"), "val_error"] == 0.5 and pd.isna(
        got.loc[(1, "earlybird"), "val x"]
    )


def _monitor(level: int, distances: list[float], drawn: int | None) -> dict:
    return {
        "criterion": "magnitude",
        "level": level,
        "keep": 0.7**level,
        "threshold": 0.1,
        "window": 2,
        "drawn_epoch": drawn,
        "settled": int(drawn is not None),
        "distances": distances,
        "layer_distances": {"conv": distances},
    }


def _run_dir(root: Path) -> Path:
    """A run directory of task ``chord`` with the curves of two replicates (four epochs)."""
    run = root / "chord-0123456789ab"
    (run / "replicate-0").mkdir(parents=True)
    (run / "replicate-1").mkdir()
    (run / "settings.json").write_text(json.dumps({"config": {"task": "chord"}}))
    for replicate, monitors in (
        (0, [_monitor(1, [0.3, 0.05, 0.0], 4), _monitor(2, [0.4, 0.2, 0.15], None)]),
        (1, [_monitor(1, [0.2, 0.0, 0.0], 4), _monitor(2, [0.1, 0.05, 0.0], 3)]),
    ):
        curves = {"replicate": replicate, "epochs": 4, "distance_epochs": [2, 3, 4]}
        if replicate:  # a training that reported its validation loss each epoch
            curves["losses"] = [1.0, 0.9, 0.7, 0.6]
        file = run / f"replicate-{replicate}" / "earlybird-curves.json"
        file.write_text(json.dumps({**curves, "monitors": monitors}))
    return run


def test_the_curves_of_every_replicate_are_gathered_one_row_per_monitor_and_epoch(
    tmp_path: Path,
) -> None:
    run = _run_dir(tmp_path)
    out = tmp_path / "chord-curves.csv"
    assert main(["--curves", str(run), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert tuple(got.columns) == CURVE_COLUMNS
    assert len(got) == 2 * 2 * 3 and set(got["task"]) == {"chord"}
    one = got[(got.replicate == 0) & (got.level == 2)]
    assert one["epoch"].tolist() == [2, 3, 4]
    assert one["distance"].tolist() == [0.4, 0.2, 0.15]
    assert one["drawn_epoch"].isna().all()  # never settled
    assert one["keep"].tolist() == pytest.approx([0.49] * 3)
    assert (got[got.replicate == 1].groupby("level")["drawn_epoch"].first() == [4, 3]).all()
    assert (got["threshold"] == 0.1).all() and (got["window"] == 2).all()
    assert one["loss"].isna().all() and (got["min_drop"] == 0.0).all()
    late = got[(got.replicate == 1) & (got.level == 1)]
    assert late["loss"].tolist() == [0.9, 0.7, 0.6] and (late["first_loss"] == 1.0).all()
    gathered = collect_curves([run]).reset_index(drop=True)
    pd.testing.assert_frame_equal(gathered, got, check_dtype=False)


def test_a_run_directory_without_curves_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="earlybird-curves.json"):
        collect_curves([tmp_path])
    with pytest.raises(SystemExit):
        main(["--curves", str(tmp_path)])  # no --out


def test_a_tiny_earlybird_run_exports_the_curves_its_monitors_measured(tmp_path: Path) -> None:
    tiny = PROFILES["tiny"]
    profile = dataclasses.replace(
        tiny,
        methods=("finetune@earlybird",),
        levels=2,
        max_epochs={**tiny.max_epochs, "chord": 4},
        patience={**tiny.patience, "chord": 10},
    )
    results, lottery, _ = run_task("chord", profile, tmp_path, progress=False, log=None)
    epochs = int(results.loc[results.level == 0, "train_epochs"].iloc[0])
    assert epochs == 4
    curves = collect_curves([lottery.directory])
    assert sorted(curves.groupby(["criterion", "level"]).groups) == [
        ("magnitude", 1),
        ("magnitude", 2),
    ]
    for level, part in curves.groupby("level"):
        assert part["epoch"].tolist() == list(range(2, epochs + 1))
        snapshot = lottery.directory / "replicate-0" / f"earlybird-magnitude-level-0{level}.lt"
        meta = saved_metadata(snapshot)
        drawn = part["drawn_epoch"].iloc[0]
        assert (pd.isna(drawn) and meta["settled"] == 0) or drawn == meta["drawn_epoch"]


def test_exported_rows_carry_their_threshold_and_tables_tell_thresholds_apart(
    tmp_path: Path,
) -> None:
    tiny = PROFILES["tiny"]
    profile = dataclasses.replace(
        tiny, methods=("finetune", "finetune@earlybird"), levels=1, earlybird_threshold=0.03
    )
    _, lottery, _ = run_task("chord", profile, tmp_path, progress=False, log=None)
    rows = export_rows(lottery.directory)
    paced = rows["method"] == "finetune@earlybird"
    assert (rows.loc[paced, "threshold"] == 0.03).all() and (rows.loc[paced, "window"] == 5).all()
    assert rows.loc[~paced, "threshold"].isna().all()
    # beside the same run at the monitor's default threshold, each keeps its own line
    default = rows.assign(threshold=rows["threshold"].where(~paced, 0.1))
    both = pd.concat([rows, default[paced]], ignore_index=True)
    got = table(both)
    assert {(1, "iterative"), (1, "earlybird 0.03"), (1, "earlybird 0.1")} == set(got.index)
    assert (rows.loc[paced, "min_drop"] == 0.0).all()  # no loss guard: the label stays
    guarded = rows.assign(min_drop=rows["min_drop"].where(~paced, 0.2))
    got = table(pd.concat([rows, guarded[paced]], ignore_index=True))
    assert {(1, "earlybird 0.03"), (1, "earlybird 0.03 drop 0.2")} <= set(got.index)
    assert main(["--export", str(lottery.directory), "--out", str(tmp_path / "chord.csv")]) == 0
    assert pd.read_csv(tmp_path / "chord.csv")["threshold"].dropna().eq(0.03).all()


def _curves_frame() -> pd.DataFrame:
    rows = []
    for level, distances, drawn in ((1, [0.3, 0.05, 0.0], 4), (2, [0.4, 0.2, 0.15], None)):
        for epoch, distance in zip((2, 3, 4), distances, strict=True):
            rows.append(("chord", 0, "magnitude", level, 0.7**level, epoch, distance, drawn))
    rows.append(("chord", 0, "magnitude", 3, 0.343, 2, 0.0, 2))
    frame = pd.DataFrame(rows, columns=list(CURVE_COLUMNS[: CURVE_COLUMNS.index("threshold")]))
    return frame.assign(threshold=0.1, window=2)


def test_the_curve_figure_draws_a_line_per_level_the_threshold_and_the_draws(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    figure = plot_curves(_curves_frame(), path)
    (ax,) = figure.axes
    assert len(ax.lines) == 3 + 1  # three levels, one threshold
    assert [line.get_ydata()[0] for line in ax.lines][-1] == 0.1
    (dots,) = ax.collections
    assert dots.get_offsets().tolist() == [[4.0, 0.0], [2.0, 0.0]]  # level 2 never settled
    assert path.stat().st_size > 0


def test_the_time_figure_draws_each_pacing_against_its_total_seconds(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = pd.DataFrame(
        {
            "task": "chord",
            "method": ["lrr", "lrr", "lrr", "lrr@oneshot", "lrr@oneshot", "lrr@earlybird"],
            "replicate": 0,
            "level": [0, 1, 2, 1, 2, 1],
            "val_error": [0.1, 0.2, 0.3, 0.25, 0.35, 0.4],
            "error": [0.1, 0.2, 0.3, 0.2, 0.3, 0.5],
            "total_epochs": [10, 20, 30, 15, 15, 8],
            "total_seconds": [10.0, 40.0, 70.0, 20.0, 20.0, 12.0],
        }
    )
    figure = plot_time(rows, tmp_path / "time.png")
    assert len(figure.axes) == 2
    for ax, column in zip(figure.axes, ("val_error", "error"), strict=True):
        lines = {line.get_label(): line for line in ax.lines}
        assert sorted(lines) == ["earlybird", "iterative", "oneshot"]
        assert lines["iterative"].get_xdata().tolist() == [40.0, 70.0]
        assert lines["oneshot"].get_ydata().tolist() == rows[column][3:5].tolist()
        assert len(ax.texts) == 5  # one level label per point
        (star,) = ax.collections
        assert star.get_offsets().tolist() == [[10.0, 0.1]]
    epochs = plot_time(rows, x="total_epochs")
    assert epochs.axes[0].lines[0].get_xdata().tolist() == [20, 30]
    with pytest.raises(ValueError, match="total_seconds"):
        plot_time(rows, x="seconds")


def test_the_rows_folder_may_hold_curve_files_beside_the_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    rows = pd.DataFrame(
        {
            "task": "chord",
            "method": ["lrr", "lrr", "lrr@earlybird"],
            "replicate": 0,
            "level": [0, 1, 1],
            "kept": [1.0, 0.7, 0.7],
            "val_error": [0.1, 0.2, 0.3],
            "error": [0.1, 0.2, 0.3],
            "total_epochs": [10, 20, 8],
            "total_seconds": [10.0, 40.0, 10.0],
        }
    )
    rows.to_csv(tmp_path / "chord.csv", index=False)
    _curves_frame().to_csv(tmp_path / "chord-curves.csv", index=False)
    png = tmp_path / "time.png"
    assert main(["--rows", str(tmp_path), "--plot-time", str(png)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("chord\n") and "chord-curves" not in printed
    assert png.stat().st_size > 0
    # another monitor setting's rows of the same task, in a folder of their own: one table
    apart = tmp_path / "guard"
    apart.mkdir()
    guarded = rows[rows.method == "lrr@earlybird"].assign(
        threshold=0.03, min_drop=0.2, val_error=0.25
    )
    guarded.to_csv(apart / "chord.csv", index=False)
    assert main(["--rows", str(tmp_path), str(apart)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("chord\n") == 1 and "earlybird 0.03 drop 0.2" in printed
    assert "| (1, 'earlybird')" in printed  # the first folder's rows, without a threshold
    with pytest.raises(SystemExit, match="replicate 0, level 1 in .*: each would count twice"):
        main(["--rows", str(apart), str(apart)])


def _task_rows(task: str, eb_val: list[float], eb_seconds: list[float]) -> pd.DataFrame:
    """Six levels of 30% of one task: iterative at validation error 0.2 for 100 s a level,
    early-bird at ``eb_val`` and ``eb_seconds`` per level."""
    kept = [0.7**level for level in range(1, 7)]
    iterative = {"method": "lrr", "val_error": 0.2, "error": 0.25, "total_seconds": 100.0}
    frames = [pd.DataFrame({"level": range(1, 7), "kept": kept, **iterative})]
    frames.append(
        pd.DataFrame(
            {"level": range(1, 7), "kept": kept, "method": "lrr@earlybird", "val_error": eb_val}
        ).assign(error=0.3, total_seconds=eb_seconds)
    )
    return pd.concat(frames).assign(task=task, replicate=0, total_epochs=10)


def test_targets_hold_each_pacing_at_the_levels_nearest_half_a_quarter_and_an_eighth() -> None:
    good = _task_rows("onset", [0.2, 0.21, 0.3, 0.21, 0.3, 0.2], [30.0] * 6)
    slow = _task_rows("chord", [0.2] * 6, [30.0, 30.0, 30.0, 30.0, 30.0, 40.0])
    got = targets(pd.concat([good, slow]))
    onset = got[got.task == "onset"].set_index("size")
    # 0.7**2 = 0.49, 0.7**4 = 0.24, 0.7**6 = 0.118: levels 2, 4 and 6; levels 3 and 5 ignored
    assert list(onset.level) == [2, 4, 6]
    assert onset.loc[0.5, "val x"] == pytest.approx(1.05)
    assert onset.loc[0.5, "test x"] == pytest.approx(1.2)  # reported, not what is held
    assert onset.loc[0.25, "time x"] == pytest.approx(0.3)
    assert onset.met.all()
    chord = got[got.task == "chord"].set_index("size")
    assert chord.loc[0.12, "time x"] == pytest.approx(0.4)
    assert list(chord.met) == [True, True, False]
    assert target_verdict(got, "earlybird") == "earlybird: target met on 1 of 2 tasks (onset)"
    with pytest.raises(ValueError, match="'oneshot'"):
        target_verdict(got, "oneshot")


def test_distilled_pacings_are_their_own_lines_held_to_the_plain_iterative_lottery(
    tmp_path: Path,
) -> None:
    plain = _task_rows("onset", [0.3] * 6, [30.0] * 6)
    distilled = plain[plain.method == "lrr@earlybird"].assign(
        method="lrr+kd@earlybird", val_error=0.21
    )
    iterative_kd = plain[plain.method == "lrr"].assign(method="lrr+kd", val_error=0.1)
    rows = pd.concat([plain, distilled, iterative_kd])
    got = table(rows)
    assert {p for _, p in got.index} == {"iterative", "iterative kd", "earlybird", "earlybird kd"}
    # each against the plain iterative lottery (0.2), not averaged with the other
    assert got.loc[(1, "earlybird"), "val x"] == pytest.approx(1.5)
    assert got.loc[(1, "earlybird kd"), "val x"] == pytest.approx(1.05)
    assert got.loc[(1, "iterative kd"), "val x"] == pytest.approx(0.5)
    held = targets(rows)
    assert set(held.pacing) == {"earlybird", "earlybird kd"}  # no iterative line is held
    verdict = target_verdict(held, "earlybird kd")
    assert verdict == "earlybird kd: target met on 1 of 1 tasks (onset)"
    mixed = pd.concat([plain, plain.assign(method=plain.method.str.replace("lrr", "trim"))])
    with pytest.raises(ValueError, match=r"several retraining methods \(lrr, trim\)"):
        table(mixed)
    mixed.to_csv(tmp_path / "onset.csv", index=False)
    for mode in ([], ["--targets"]):  # the command says why, without a traceback
        with pytest.raises(SystemExit, match=r"several retraining methods \(lrr, trim\)"):
            main(["--rows", str(tmp_path), *mode])
    distilled.to_csv(tmp_path / "onset.csv", index=False)  # no iterative lottery to hold to
    with pytest.raises(SystemExit, match="no paced rows beside an iterative lottery"):
        main(["--rows", str(tmp_path), "--targets"])


def test_only_replicates_keeps_those_a_later_run_added(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    rows = _task_rows("chord", [0.3] * 6, [30.0] * 6)
    pd.concat([rows, rows.assign(replicate=1)]).to_csv(run / "results.csv", index=False)
    out = tmp_path / "out.csv"
    assert main(["--curves", str(run), "--out", str(out), "--only-replicates", "1"]) == 0
    assert set(pd.read_csv(out).replicate) == {1}
    assert main(["--export", str(run), "--out", str(out), "--only-replicates", "1"]) == 0
    exported = pd.read_csv(out)
    assert set(exported.replicate) == {1} and len(exported) == len(rows)
    with pytest.raises(SystemExit, match=r"no replicate \[2\] here \(have \[0, 1\]\)"):
        main(["--export", str(run), "--out", str(out), "--only-replicates", "1,2"])
    assert set(pd.read_csv(out).replicate) == {1}  # the refused export wrote nothing
    with pytest.raises(SystemExit):
        main(["--rows", str(tmp_path), "--only-replicates", "1"])  # neither export nor curves


def test_by_level_puts_each_tasks_ratios_in_one_row_per_pacing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onset = _task_rows("onset", [0.3, 0.22, 0.2, 0.2, 0.2, 0.4], [30.0] * 6)
    chord = _task_rows("chord", [0.2] * 6, [50.0] * 6)
    got = by_level(pd.concat([onset, chord]))
    assert list(got.columns) == ["task", "pacing", *(f"level {i}" for i in range(1, 7))]
    assert got.set_index("task").loc["onset", "level 1"] == 1.5
    assert got.set_index("task").loc["onset", "level 6"] == 2.0
    assert (got.pacing == "earlybird").all()  # the iterative lottery is the 1.0 of every ratio
    time = by_level(pd.concat([onset, chord]), "time x").set_index("task")
    assert time.loc["chord", "level 3"] == 0.5
    onset.to_csv(tmp_path / "onset.csv", index=False)
    assert main(["--rows", str(tmp_path), "--by-level"]) == 0
    printed = capsys.readouterr().out
    assert "val x" in printed and "time x" in printed
    assert "| onset  | earlybird |       1.5 |       1.1 |" in printed

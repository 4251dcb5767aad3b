"""lotterytrim.plot: Figure 2 axes, lines and values; Table 1 numbers and rendering; bad input."""

from __future__ import annotations

import math
import os
import sys
import types
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lotterytrim.measure.report import Report
from lotterytrim.plot import Table1, figure2, table1
from lotterytrim.plot.figure import percent_ticks

TASKS = ("inst", "pitch")
METHODS = ("trim", "finetune", "mask")
CRITERIA = ("magnitude", "activation")
LEVELS = 4
REFERENCE = {"inst": (0.10, 0.12), "pitch": (0.20, 0.22)}
"""Reference error of each task per replicate: means 0.11 and 0.21."""
MEANS = {"inst": 0.11, "pitch": 0.21}
FACTOR = {
    "trim": (1.0, 0.9, 1.0, 1.3),
    "finetune": (1.0, 1.2, 1.5, 2.0),
    "mask": (1.0, 0.95, 0.98, 1.05),
}
"""Error of a level relative to the replicate's reference error, per method."""
OFFSET = {"magnitude": 0.0, "activation": 0.01}
"""Added to the error of every level after the reference, per criterion."""
PARAMS = {"inst": 800_000, "pitch": 5_900_000}


def kept_share(method: str, level: int, replicate: int) -> float:
    """0.7 per level; trimming and fine-tuning keep 2% more in replicate 1 (mean 1.01)."""
    if level == 0:
        return 1.0
    extra = 0.0 if method == "mask" else 0.02 * replicate
    return 0.7**level * (1 + extra)


def make_results(
    tasks: tuple[str, ...] = TASKS,
    methods: tuple[str, ...] = METHODS,
    criteria: tuple[str, ...] = CRITERIA,
    latency: bool = False,
) -> pd.DataFrame:
    """A lottery results frame in the runner's schema, with errors from the tables above."""
    rows = []
    for task in tasks:
        for method in methods:
            for criterion in criteria:
                for replicate in (0, 1):
                    for level in range(LEVELS):
                        reference = REFERENCE[task][replicate]
                        kept = kept_share(method, level, replicate)
                        offset = OFFSET[criterion] if level else 0.0
                        params = round(PARAMS[task] * kept)
                        row = {
                            "task": task,
                            "method": method,
                            "criterion": criterion,
                            "replicate": replicate,
                            "level": level,
                            "error": reference * FACTOR[method][level] + offset,
                            "params": params,
                            "kept": params / PARAMS[task],
                            "macs": round(100 * PARAMS[task] * kept**2),
                            "memory_bytes": 4 * params + 1000,
                            "disk_bytes": 4 * params + 500,
                            "seconds": 1.5,
                            "path": f"{task}/{method}/{criterion}/{replicate}/{level}.pt",
                            # validation agrees with test here
                            "val_error": reference * FACTOR[method][level] + offset,
                        }
                        if latency:
                            row["latency_ms"] = 10.0 * kept
                        rows.append(row)
    return pd.DataFrame(rows)


def expected_kept(method: str) -> list[float]:
    """Mean share kept per level over criteria and replicates."""
    return [
        float(np.mean([round(PARAMS["inst"] * kept_share(method, lv, r)) for r in (0, 1)]))
        / PARAMS["inst"]
        for lv in range(LEVELS)
    ]


def mean_error(task: str, method: str, level: int, criteria: tuple[str, ...] = CRITERIA) -> float:
    """Mean error at a level over replicates and the given criteria."""
    values = [
        REFERENCE[task][r] * FACTOR[method][level] + (OFFSET[c] if level else 0.0)
        for r in (0, 1)
        for c in criteria
    ]
    return float(np.mean(values))


def axes_by_label(figure: Figure) -> dict[str, Axes]:
    """The figure's axes keyed by their label."""
    return {ax.get_label(): ax for ax in figure.axes}


def curves(ax: Axes) -> dict[str, Any]:
    """The labelled data lines of an axes (reference line left out)."""
    return {
        line.get_label(): line
        for line in ax.get_lines()
        if line.get_label() != "reference" and not line.get_label().startswith("_")
    }


def notes(ax: Axes) -> list[str]:
    """Texts written on an axes."""
    return [text.get_text() for text in ax.texts]


# --------------------------------------------------------------------------- figure 2


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    """Two tasks, three methods, two criteria, two replicates, four levels."""
    return make_results()


@pytest.fixture(scope="module")
def figure(results: pd.DataFrame) -> Figure:
    """Figure 2 of the full results."""
    return figure2(results)


def test_figure_has_one_axes_per_task_and_two_across_task_axes(figure: Figure) -> None:
    axes = axes_by_label(figure)
    assert sorted(axes) == ["criteria", "methods", "task:inst", "task:pitch"]
    assert axes["task:inst"].get_title() == "inst"
    assert axes["task:inst"].get_ylabel() == "test error"
    assert axes["methods"].get_ylabel() == "error / reference"


def test_task_axes_have_one_line_per_method_at_mean_kept_and_error(figure: Figure) -> None:
    for task in TASKS:
        ax = axes_by_label(figure)[f"task:{task}"]
        lines = curves(ax)
        assert sorted(lines) == sorted(METHODS)
        assert len(ax.collections) == len(METHODS)  # one shaded band per method
        for method in METHODS:
            x, y = lines[method].get_xdata(), lines[method].get_ydata()
            if task == "inst":
                np.testing.assert_allclose(x, expected_kept(method))
            expected = [mean_error(task, method, lv) for lv in range(LEVELS)]
            np.testing.assert_allclose(y, expected)


def test_task_axes_x_data_is_the_mean_kept_share(figure: Figure) -> None:
    ax = axes_by_label(figure)["task:inst"]
    trim = curves(ax)["trim"].get_xdata()
    # replicates keep 0.7**level and 0.7**level * 1.02: the mean is 0.7**level * 1.01
    np.testing.assert_allclose(trim, [1.0, 0.707, 0.4949, 0.346430], rtol=1e-5)
    np.testing.assert_allclose(curves(ax)["mask"].get_xdata(), [1.0, 0.7, 0.49, 0.343], rtol=1e-5)


def test_task_axes_band_spans_replicates(figure: Figure) -> None:
    ax = axes_by_label(figure)["task:inst"]
    band = ax.collections[list(curves(ax)).index("trim")]
    ys = band.get_paths()[0].vertices[:, 1]
    # level 1 of trim: replicates average 0.09 + 0.005 and 0.108 + 0.005 over the criteria
    assert np.isclose(ys, 0.095).any() and np.isclose(ys, 0.113).any()
    # level 3: 0.13 + 0.005 and 0.156 + 0.005 bound the band
    assert np.isclose(ys, 0.135).any() and np.isclose(ys, 0.161).any()
    assert ys.min() == pytest.approx(0.095) and ys.max() == pytest.approx(0.161)


def test_task_axes_reference_line_is_dashed_at_the_level0_error(figure: Figure) -> None:
    for task, expected in (("inst", 0.11), ("pitch", 0.21)):
        ax = axes_by_label(figure)[f"task:{task}"]
        (reference,) = [line for line in ax.get_lines() if line.get_label() == "reference"]
        assert reference.get_linestyle() == "--"
        np.testing.assert_allclose(reference.get_ydata(), [expected, expected])


def test_task_axes_x_is_log_from_100_percent_down(figure: Figure) -> None:
    ax = axes_by_label(figure)["task:inst"]
    assert ax.get_xscale() == "log"
    left, right = ax.get_xlim()
    assert left >= 1.0 > right
    assert right <= min(expected_kept("mask"))
    formatter = ax.xaxis.get_major_formatter()
    ticks = list(ax.get_xticks())
    assert ticks[0] == 1.0
    assert formatter(1.0) == "100%"
    assert formatter(0.5) == "50%"
    assert formatter(0.005) == "0.5%"


def test_percent_ticks_stay_in_range_and_are_few() -> None:
    # the deepest share gets its own tick when no round share lies near it
    assert percent_ticks(0.343) == pytest.approx([1.0, 0.7, 0.5, 0.343])
    assert percent_ticks(0.49) == pytest.approx([1.0, 0.7, 0.5])
    deep = percent_ticks(0.7**15)  # the paper's 15 levels: 0.47%
    assert deep == pytest.approx([1.0, 0.3, 0.1, 0.03, 0.01, 0.7**15])
    assert percent_ticks(0.005) == pytest.approx([1.0, 0.3, 0.1, 0.03, 0.01, 0.005])


def test_method_panel_is_normalised_and_starts_at_one(figure: Figure) -> None:
    ax = axes_by_label(figure)["methods"]
    lines = curves(ax)
    assert sorted(lines) == sorted(METHODS)
    for method in METHODS:
        y = lines[method].get_ydata()
        assert y[0] == pytest.approx(1.0)
        expected = [
            np.mean([mean_error(t, method, lv) / mean_error(t, method, 0) for t in TASKS])
            for lv in range(LEVELS)
        ]
        np.testing.assert_allclose(y, expected)
    # x: mean over tasks of the mean kept share per level
    np.testing.assert_allclose(lines["mask"].get_xdata(), [1.0, 0.7, 0.49, 0.343], rtol=1e-5)


def test_criteria_panel_uses_trim_only(figure: Figure) -> None:
    ax = axes_by_label(figure)["criteria"]
    lines = curves(ax)
    assert sorted(lines) == sorted(CRITERIA)
    # magnitude adds nothing: every task is at 0.9 of its reference after one trimming step
    np.testing.assert_allclose(lines["magnitude"].get_ydata(), [1.0, 0.9, 1.0, 1.3])
    activation = [
        np.mean([mean_error(t, "trim", lv, ("activation",)) / ref for t, ref in MEANS.items()])
        for lv in range(LEVELS)
    ]
    np.testing.assert_allclose(lines["activation"].get_ydata(), activation)


def test_filters_restrict_tasks_methods_and_criteria(results: pd.DataFrame) -> None:
    fig = figure2(results, tasks=["pitch"], methods=["trim", "mask"], criterion="activation")
    axes = axes_by_label(fig)
    assert sorted(axes) == ["criteria", "methods", "task:pitch"]
    lines = curves(axes["task:pitch"])
    assert sorted(lines) == ["mask", "trim"]
    expected = [mean_error("pitch", "trim", lv, ("activation",)) for lv in range(LEVELS)]
    np.testing.assert_allclose(lines["trim"].get_ydata(), expected)
    assert any("no data" in note for note in notes(axes["criteria"]))
    assert not curves(axes["criteria"])


def test_single_criterion_and_missing_trim_show_notes_not_errors() -> None:
    one = figure2(make_results(criteria=("magnitude",)))
    criteria = axes_by_label(one)["criteria"]
    assert notes(criteria) == ["no data: one criterion only (magnitude)"]
    assert not curves(criteria)
    assert len(curves(axes_by_label(one)["methods"])) == 3

    no_trim = figure2(make_results(methods=("finetune", "mask")))
    assert notes(axes_by_label(no_trim)["criteria"]) == ["no data: no trim results"]
    assert sorted(curves(axes_by_label(no_trim)["task:inst"])) == ["finetune", "mask"]


def test_task_without_a_method_gets_a_note(results: pd.DataFrame) -> None:
    partial = results[~((results["task"] == "pitch") & (results["method"] == "mask"))]
    fig = figure2(partial, methods=["mask"])
    axes = axes_by_label(fig)
    assert notes(axes["task:pitch"]) == ["no data for pitch"]
    assert sorted(curves(axes["task:inst"])) == ["mask"]
    # the across-task mean uses the one task that has masking
    expected = [mean_error("inst", "mask", lv) / 0.11 for lv in range(LEVELS)]
    np.testing.assert_allclose(curves(axes["methods"])["mask"].get_ydata(), expected)


def test_a_method_keeps_its_colour_in_every_panel_whatever_else_a_panel_has(
    results: pd.DataFrame,
) -> None:
    """Names without a fixed colour get theirs once for the figure, not once per panel."""
    renamed = results.replace({"method": {"finetune": "lrr", "mask": "lrr+kd"}})
    partial = renamed[~((renamed["task"] == "pitch") & (renamed["method"] == "lrr"))]
    axes = axes_by_label(figure2(partial))
    inst, pitch, across = (curves(axes[k]) for k in ("task:inst", "task:pitch", "methods"))
    assert "lrr" not in pitch
    for method in ("lrr+kd", "trim"):
        colours = {lines[method].get_color() for lines in (inst, pitch, across)}
        assert len(colours) == 1, method
    assert inst["lrr"].get_color() != inst["lrr+kd"].get_color()


def test_single_level_and_single_task_draw() -> None:
    only_reference = make_results(tasks=("inst",))
    only_reference = only_reference[only_reference["level"] == 0]
    fig = figure2(only_reference)
    axes = axes_by_label(fig)
    assert sorted(axes) == ["criteria", "methods", "task:inst"]
    np.testing.assert_allclose(curves(axes["methods"])["trim"].get_ydata(), [1.0])


def test_png_is_written_atomically(results: pd.DataFrame, tmp_path: Any) -> None:
    target = tmp_path / "figure2.png"
    target.write_bytes(b"old")
    fig = figure2(results, path=target)
    assert isinstance(fig, Figure)
    data = target.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert sorted(os.listdir(tmp_path)) == ["figure2.png"]  # no temporary file left
    figure2(results, path=str(tmp_path / "again.png"))
    assert (tmp_path / "again.png").stat().st_size > 10_000


def test_failed_save_leaves_nothing_behind(results: pd.DataFrame, tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        figure2(results, path=tmp_path / "missing" / "figure2.png")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("column", ["task", "method", "criterion", "replicate", "level", "error"])
def test_missing_column_is_named(results: pd.DataFrame, column: str) -> None:
    with pytest.raises(ValueError, match=f"missing column.*'{column}'"):
        figure2(results.drop(columns=column))


def test_missing_kept_is_named(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'kept'"):
        figure2(results.drop(columns="kept"))


def test_bad_input_raises_clear_errors(results: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="empty"):
        figure2(results.iloc[0:0])
    with pytest.raises(ValueError, match="empty"):
        figure2(pd.DataFrame())
    with pytest.raises(TypeError, match="DataFrame"):
        figure2(results.to_dict())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method 'prune'.*present: trim, finetune, mask"):
        figure2(results, methods=["trim", "prune"])
    with pytest.raises(ValueError, match="task 'drum'"):
        figure2(results, tasks="drum")
    with pytest.raises(ValueError, match="no level-0"):
        figure2(results[results["level"] > 0])
    zero = results.copy()
    zero.loc[0, "kept"] = 0.0
    with pytest.raises(ValueError, match="'kept' must be > 0"):
        figure2(zero)


def test_zero_reference_error_is_left_out_of_normalised_panels(results: pd.DataFrame) -> None:
    perfect = results.copy()
    perfect.loc[(perfect["task"] == "pitch") & (perfect["level"] == 0), "error"] = 0.0
    with pytest.warns(UserWarning, match="'pitch' has a reference error of 0"):
        fig = figure2(perfect)
    trim = curves(axes_by_label(fig)["methods"])["trim"].get_ydata()
    np.testing.assert_allclose(trim, [mean_error("inst", "trim", lv) / 0.11 for lv in range(4)])


def test_without_matplotlib_figure2_names_the_extra_and_table1_still_works(
    results: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install "lotterytrim\[plot\]"'):
        figure2(results)
    assert isinstance(table1(results), Table1)  # Table 1 needs pandas only


# --------------------------------------------------------------------------- table 1


def selection() -> pd.DataFrame:
    """A frame shaped like ``lotterytrim.pick_models`` output, with paper-like numbers."""
    rows = [
        ("inst", "reference", 0, 0.092, 797_000, 10_000_000, 572_000_000, 190_000_000),
        ("inst", "best", 2, 0.088, 390_530, 4_900_000, 140_000_000, 93_000_000),
        ("inst", "optimal", 6, 0.117, 93_400, 2_300_000, 38_300_000, 41_900_000),
        ("inst", "smallest", 9, 0.131, 32_000, 800_000, 6_000_000, 9_000_000),
        ("chord", "reference", 0, 0.232, 416_000, 1_400_000, 27_200_000, 22_100_000),
        ("chord", "optimal", 4, 0.251, 91_900, 200_000, 1_720_000, 589_000),
    ]
    frame = pd.DataFrame(
        rows,
        columns=["task", "model", "level", "error", "params", "disk_bytes", "macs", "memory_bytes"],
    )
    frame["method"] = ["trim"] * len(frame)
    frame["criterion"] = "magnitude"
    frame["error_std"] = 0.01
    frame["kept"] = frame["params"] / frame.groupby("task")["params"].transform("max")
    frame["replicates"] = 5
    frame["path"] = "model.pt"
    return frame


def make_report(latency: float | None, params: int = 1) -> Report:
    """A Report with only the fields Table 1 might read set to something meaningful."""
    return Report(
        model="Net",
        params=params,
        prunable_params=params,
        macs=1,
        macs_by_operator={},
        uncounted_ops=(),
        disk_bytes=1,
        param_bytes=1,
        peak_activation_bytes=1,
        memory_bytes=1,
        latency_median_s=latency,
        latency_iqr_s=None if latency is None else latency / 10,
        threads=1,
        runs=10,
        input_shapes=((1, 3),),
    )


def test_table1_from_a_selection_has_exact_numbers_and_ratios() -> None:
    table = table1(selection())
    assert isinstance(table, Table1) and isinstance(table, pd.DataFrame)
    assert list(table.index) == [
        ("inst", "reference"),
        ("inst", "optimal"),
        ("chord", "reference"),
        ("chord", "optimal"),
    ]
    assert list(table.columns) == [
        "method",
        "criterion",
        "level",
        "error",
        "params",
        "disk_bytes",
        "macs",
        "memory_bytes",
        "params_smaller",
        "disk_bytes_smaller",
        "macs_smaller",
        "memory_bytes_smaller",
    ]
    assert table.loc[("inst", "optimal"), "level"] == 6
    assert table.loc[("inst", "optimal"), "error"] == pytest.approx(0.117)
    assert table.loc[("inst", "reference"), "params"] == 797_000
    assert table.loc[("inst", "optimal"), "params"] == 93_400
    assert table.loc[("chord", "optimal"), "memory_bytes"] == 589_000
    assert table.loc[("inst", "optimal"), "params_smaller"] == pytest.approx(797_000 / 93_400)
    assert table.loc[("inst", "optimal"), "macs_smaller"] == pytest.approx(572 / 38.3)
    assert table.loc[("chord", "optimal"), "disk_bytes_smaller"] == pytest.approx(7.0)
    assert math.isnan(table.loc[("inst", "reference"), "params_smaller"])
    assert str(table["params"].dtype) == "Int64"


def test_table1_markdown_and_html_use_human_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tabulate", None)  # rendering must not need it
    table = table1(selection())
    text = table.to_markdown()
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[0].startswith("| task | model | method | criterion | level | error | params |")
    assert lines[1].startswith("| --- | --- | --- | --- | ---: | ---: |")
    assert lines[2] == (
        "| inst | reference | - | - | 0 | 0.092 | 797 K | 10 MB | 572 M | 190 MB | - | - | - | - |"
    )
    assert lines[3] == (
        "| inst | optimal | trim | magnitude | 6 | 0.117 | 93.4 K | 2.3 MB | 38.3 M | 41.9 MB "
        "| 8.53x | 4.35x | 14.9x | 4.53x |"
    )
    row = "| chord | optimal | trim | magnitude | 4 | 0.251 | 91.9 K | 200 KB | 1.72 M | 589 KB |"
    assert row in text
    page = table._repr_html_()
    assert page.startswith("<table>") and "93.4 K" in page and "8.53x" in page
    assert "93.4 K" in repr(table)


def test_table1_one_task_and_other_models() -> None:
    table = table1(selection(), tasks="inst", model="best")
    assert list(table.index) == [("inst", "reference"), ("inst", "best")]
    assert table.loc[("inst", "best"), "level"] == 2
    assert table.loc[("inst", "best"), "params_smaller"] == pytest.approx(797_000 / 390_530)
    smallest = table1(selection(), model="smallest")
    assert smallest.loc[("inst", "smallest"), "params"] == 32_000
    # chord has no 'smallest' row: its trimmed row is missing and renders as dashes
    assert pd.isna(smallest.loc[("chord", "smallest"), "params"])
    assert "| chord | smallest | - | - | - | - | - | - | - | - | - | - | - |" in (
        smallest.to_markdown() or ""
    )


def test_table1_latency_from_reports() -> None:
    reports = {
        ("inst", "reference"): make_report(0.0121),
        ("inst", "trimmed"): make_report(0.0011),
        ("chord", "reference"): make_report(None),
    }
    table = table1(selection(), reports=reports)
    assert table.loc[("inst", "reference"), "latency_s"] == pytest.approx(0.0121)
    assert table.loc[("inst", "optimal"), "latency_s"] == pytest.approx(0.0011)
    assert table.loc[("inst", "optimal"), "latency_s_smaller"] == pytest.approx(11.0)
    assert math.isnan(table.loc[("chord", "reference"), "latency_s"])
    assert table.loc[("inst", "reference"), "params"] == 797_000  # numbers stay the results'
    markdown = table.to_markdown() or ""
    assert "| 12.1 ms |" in markdown and "| 1.1 ms |" in markdown and "| 11x |" in markdown


def test_table1_latency_from_a_selection_column() -> None:
    frame = selection()
    frame["latency_ms"] = [4.0, 2.0, 0.5, 0.1, 1.0, 0.25]
    table = table1(frame, tasks=["chord"])
    assert table["latency_s"].tolist() == pytest.approx([0.001, 0.00025])
    assert table.loc[("chord", "optimal"), "latency_s_smaller"] == pytest.approx(4.0)


def test_table1_bad_input() -> None:
    with pytest.raises(ValueError, match="model must be one of"):
        table1(selection(), model="reference")
    with pytest.raises(ValueError, match="missing column.*'macs'"):
        table1(selection().drop(columns="macs"))
    with pytest.raises(ValueError, match="empty"):
        table1(selection().iloc[0:0])
    with pytest.raises(ValueError, match="task 'drum'"):
        table1(selection(), tasks="drum")
    with pytest.raises(ValueError, match="keys are"):
        table1(selection(), reports={("inst", "optimal"): make_report(0.1)})
    with pytest.raises(ValueError, match="unknown task 'drum'"):
        table1(selection(), reports={("drum", "trimmed"): make_report(0.1)})
    with pytest.raises(TypeError, match="not a Report"):
        table1(selection(), reports={("inst", "trimmed"): 0.1})  # type: ignore[dict-item]
    no_reference = selection()
    no_reference = no_reference[no_reference["model"] != "reference"]
    with pytest.raises(ValueError, match="no 'reference' row"):
        table1(no_reference)
    with pytest.raises(ValueError, match="missing column.*'memory_bytes'"):
        table1(make_results().drop(columns="memory_bytes"))


def test_table1_from_results_goes_through_pick_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw results are handed to ``lt.pick_models``; latency is looked up in the results."""
    calls: list[dict[str, Any]] = []

    def fake_pick_models(results: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        calls.append({"rows": len(results), **kwargs})
        chosen = selection()
        chosen = chosen[chosen["task"] == "inst"].copy()
        chosen["task"] = "pitch"
        chosen["level"] = [0, 1, 2, 3]
        chosen["method"] = kwargs["method"]
        chosen["criterion"] = kwargs["criterion"]
        return chosen

    module = types.ModuleType("lotterytrim.runner.results")
    module.pick_models = fake_pick_models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lotterytrim.runner.results", module)
    results = make_results(latency=True)
    table = table1(results, method="mask", criterion="activation")
    assert calls == [
        {"rows": len(results), "by": None, "method": "mask", "criterion": "activation"}
    ]
    assert list(table.index) == [("pitch", "reference"), ("pitch", "optimal")]
    assert table["criterion"].tolist() == ["-", "activation"]
    # reference: level 0 keeps everything (10 ms); the optimal row is level 2 of masking with
    # the activation criterion, whose replicates keep exactly 0.49 -> 4.9 ms
    assert table.loc[("pitch", "reference"), "latency_s"] == pytest.approx(0.010)
    assert table.loc[("pitch", "optimal"), "latency_s"] == pytest.approx(0.0049)


def test_table1_with_the_real_pick_models() -> None:
    """With the experiment runner's ``pick_models``: optimal is the deepest level within 1.1x."""
    results = make_results(latency=True)
    table = table1(results, method="trim", criterion="magnitude", tasks="inst")
    # trim + magnitude on inst: mean errors 0.11, 0.099, 0.11, 0.143 over levels 0..3
    assert table.loc[("inst", "reference"), "error"] == pytest.approx(0.11)
    assert table.loc[("inst", "optimal"), "level"] == 2
    assert table.loc[("inst", "optimal"), "error"] == pytest.approx(0.11)
    best = table1(results, method="trim", criterion="magnitude", tasks="inst", model="best")
    assert best.loc[("inst", "best"), "level"] == 1
    smallest = table1(results, method="trim", criterion="magnitude", tasks="inst", model="smallest")
    assert smallest.loc[("inst", "smallest"), "level"] == 3
    # over both criteria, level 2 of magnitude (0.11) beats level 2 of activation (0.12)
    pooled = table1(results, method="trim", tasks="inst")
    assert pooled.loc[("inst", "optimal"), "criterion"] == "magnitude"
    assert pooled.loc[("inst", "optimal"), "level"] == 2
    assert pooled.loc[("inst", "reference"), "params"] == PARAMS["inst"]
    # latency_ms is averaged over replicates: 10 ms x 0.49 x (1 + 1.02) / 2
    assert pooled.loc[("inst", "optimal"), "latency_s"] == pytest.approx(0.004949)
    assert pooled.loc[("inst", "optimal"), "latency_s_smaller"] == pytest.approx(10 / 4.949)
    # across every method, the optimal model names the method that made it
    everything = table1(results, tasks="inst")
    assert everything.loc[("inst", "optimal"), "method"] in METHODS
    # rows follow the tasks' order in the results, whatever order select returns them in
    reordered = table1(make_results(tasks=("pitch", "inst")))
    assert [task for task, _ in reordered.index] == ["pitch", "pitch", "inst", "inst"]

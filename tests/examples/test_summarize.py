"""Row files from run directories, and the results doc rebuilt from the rows alone."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import lotterytrim as lt
from examples.mir import row_files, summarize, tables
from examples.mir.models import build_model, example_input


def _run(
    root: Path,
    task: str,
    extra: dict[str, float] | None = None,
    levels: int = 2,
    methods: tuple[str, ...] = ("trim", "finetune"),
) -> lt.Lottery:
    x = example_input(task, "tiny", batch=8)

    def train(model: nn.Module, ctx: lt.LevelContext) -> None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in ctx.epochs(2):
            opt.zero_grad()
            model(x).float().pow(2).mean().backward()
            opt.step()
        ctx.record(still_falling=1.0)

    def evaluate(model: nn.Module) -> dict[str, float]:
        model.eval()
        with torch.no_grad():
            error = float(model(x).abs().mean())
        low, high = error - 0.01, error + 0.02
        return {
            "error": error,
            "val_error": error,
            "error_low": low,
            "error_high": high,
            "test_n": 8,
            **(extra or {}),
        }

    config = lt.LotteryConfig(task=task, levels=levels, replicates=1, methods=methods)
    lottery = lt.Lottery(
        lambda: build_model(task, "tiny"),
        x,
        train,
        evaluate,
        config,
        settings={"size": "tiny"},
        root=root,
        progress=False,
    )
    lottery.run()
    return lottery


def test_rows_are_exported_and_the_doc_is_rebuilt_from_them(tmp_path: Path, capsys) -> None:
    _run(tmp_path / "runs", "onset")
    _run(tmp_path / "runs", "chord")
    rows = tmp_path / "rows"
    doc = tmp_path / "results.md"
    doc.write_text(
        "intro\n<!-- summarize:table1 -->\nstale\n<!-- /summarize:table1 -->\n"
        "<!-- summarize:targets -->\n<!-- /summarize:targets -->\nend\n"
    )
    figure = tmp_path / "fig" / "figure2.png"
    argv = ["--runs", str(tmp_path / "runs"), "--rows", str(rows), "--doc", str(doc)]
    assert summarize.main([*argv, "--figure", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    files = sorted(p.name for p in rows.iterdir())
    assert files == ["chord.csv", "onset.csv"]
    table = pd.read_csv(rows / "onset.csv")
    # runs of today's runner carry the cells' total cost after the columns every file has
    later = [c for c in row_files.LATER_COLUMNS if c != "step_val_error"]
    assert list(table.columns) == [*row_files.ROW_COLUMNS, *later]
    assert len(table) == 2 * 3  # trim and finetune: the reference's row, levels 1 and 2
    assert (table.latency_ms > 0).all() and table.settings.nunique() == 1
    text = doc.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("end\n")
    assert "| onset | reference |" in text and "| chord | optimal |" in text
    # the doc is what the committed rows give, with no run directory at hand
    assert summarize.main(["--rows", str(rows), "--doc", str(doc), "--check"]) == 0
    doc.write_text(text.replace("| onset | reference |", "| onset | reference | 0.1 |"))
    assert summarize.main(["--rows", str(rows), "--doc", str(doc), "--check"]) == 1
    out = capsys.readouterr().out
    assert "references:" in out and "target-summary:" in out


def test_pitch_rows_keep_their_accuracy_columns(tmp_path: Path) -> None:
    accuracies = {"rpa": 0.7, "rca": 0.8, "rpa_heldout": 0.5, "rca_heldout": 0.6, "heldout_n": 2}
    _run(tmp_path / "runs", "pitch", accuracies, levels=1, methods=("trim",))
    rows = tmp_path / "rows"
    row_files.export(tmp_path / "runs", rows, latency_runs=1)
    pitch = pd.read_csv(rows / "pitch.csv")
    # the other tasks' files have no accuracy columns (onset's, in the test above)
    later = [c for c in row_files.LATER_COLUMNS if c != "step_val_error"]
    assert list(pitch.columns) == [*row_files.ROW_COLUMNS, *row_files.PITCH_COLUMNS, *later]
    assert (pitch.rca_heldout == 0.6).all() and (pitch.heldout_n == 2).all()
    assert "| reference | reference L0 |" in tables.render(row_files.load_rows(rows))["pitch"]


def _pitch_rows() -> pd.DataFrame:
    """A pitch reference and three trim levels; validation picks L2, test would favour L3."""
    rows = []
    for level, (val, error, rpa_h) in enumerate(
        [(0.30, 0.32, 0.50), (0.29, 0.30, 0.52), (0.32, 0.35, 0.45), (0.40, 0.20, 0.90)]
    ):
        for replicate in (0, 1):
            rows.append(
                dict(
                    task="pitch",
                    method="reference" if level == 0 else "trim",
                    criterion="-" if level == 0 else "magnitude",
                    replicate=replicate,
                    level=level,
                    val_error=val,
                    error=error + 0.02 * replicate,
                    kept=0.7**level,
                    params=(1000, 700, 490, 343)[level],
                    test_n=2100,
                    rpa=1 - error - 0.02 * replicate,
                    rca=1 - error + 0.05,
                    rpa_heldout=rpa_h,
                    rca_heldout=rpa_h + 0.1,
                    heldout_n=525,
                )
            )
    return pd.DataFrame(rows)


def test_the_pitch_block_shows_accuracies_of_the_models_chosen_on_validation() -> None:
    chord = _rows({"trim": [0.2, 0.19]}, {"trim": [0.2, 0.2]}).assign(task="chord")
    results = pd.concat([chord, _pitch_rows()], ignore_index=True)
    table = tables.pitch_accuracy(results).set_index("model")
    assert list(table.index) == ["reference", "optimal"]
    ref, opt = table.loc["reference"], table.loc["optimal"]
    assert opt["method, level"] == "trim L2" and opt["params"] == "490"  # 0.32 <= 1.1 x 0.30
    assert ref["test RPA"] == pytest.approx(0.67)  # mean over the two replicates
    assert opt["test RCA"] == pytest.approx(0.70)
    assert opt["held-out RPA"] == pytest.approx(0.45)
    assert opt["held-out RCA"] == pytest.approx(0.55)
    assert ref["test frames (held-out)"] == "2,100 (525)"
    block = tables.pitch_block(results)
    assert "| optimal | trim L2 | 490 | 0.640 | 0.700 | 0.450 | 0.550 | 2,100 (525) |" in block


def test_the_pitch_block_without_pitch_rows_or_a_model_within_reach() -> None:
    chord = _rows({"trim": [0.2, 0.19]}, {"trim": [0.2, 0.2]}).assign(task="chord")
    assert tables.pitch_block(chord) == "Pitch has not run yet: no pitch rows."
    far = _pitch_rows()
    far = far[far.level.isin([0, 3])].drop(columns=["rpa", "rca", "rpa_heldout", "rca_heldout"])
    table = tables.pitch_accuracy(far).set_index("model")
    assert table.loc["optimal", "method, level"] == "none within 1.1x"
    assert math.isnan(table.loc["reference", "test RPA"])  # rows from before the columns
    assert table.loc["reference", "test frames (held-out)"] == "2,100 (525)"


def _rows(val: dict[str, list[float]], test: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method in val:
        for level, (v, e) in enumerate(zip(val[method], test[method], strict=True)):
            rows.append(
                dict(
                    task="t",
                    method=method,
                    criterion="magnitude",
                    replicate=0,
                    level=level,
                    val_error=v,
                    error=e,
                    kept=0.7**level,
                    params=int(1000 * 0.7**level),
                )
            )
    return pd.DataFrame(rows)


def test_targets_choose_on_validation_across_methods() -> None:
    # test error says trim's level 4 is fine; validation says only finetune's level 2 is
    val = {"trim": [0.2, 0.19, 0.23, 0.25, 0.3], "finetune": [0.2, 0.2, 0.21, 0.4, 0.4]}
    test = {"trim": [0.2, 0.2, 0.2, 0.2, 0.2], "finetune": [0.2, 0.3, 0.33, 0.3, 0.3]}
    row = tables.targets(_rows(val, test)).iloc[0]
    assert row["removed at the reference's error"] == pytest.approx(0.3)  # trim L1
    assert row["removed within 1.1x"] == pytest.approx(1 - 0.49)  # finetune L2 (0.21 <= 0.22)
    assert row["within 1.1x: model, test / reference"] == "finetune L2, 1.65x"


def test_per_level_shows_kept_validation_and_test_spread() -> None:
    rows = [
        dict(
            task="t",
            method=m,
            criterion="c",
            replicate=r,
            level=lv,
            error=e,
            val_error=e / 2,
            kept=0.7**lv,
        )
        for m in ("trim", "finetune")
        for r, e in enumerate((0.1, 0.3))
        for lv in (0, 1)
    ]
    table = tables.per_level(pd.DataFrame(rows)).set_index(["task", "method", ""])
    assert table.loc[("t", "trim", "test error"), "L1"] == "0.200 [0.100-0.300]"
    assert table.loc[("t", "trim", "val error"), "L1"] == "0.100"
    assert table.loc[("t", "finetune", "kept"), "L1"] == "0.700"


def test_missing_rows_are_a_clear_exit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no row files"):
        summarize.main(["--rows", str(tmp_path)])
    with pytest.raises(SystemExit, match="no finished lottery runs"):
        summarize.main(["--runs", str(tmp_path), "--rows", str(tmp_path / "rows")])


def test_the_results_doc_is_what_the_committed_rows_give() -> None:
    repo = Path(__file__).resolve().parents[2]
    argv = ["--rows", str(repo / "results" / "quick"), "--doc", str(repo / "docs" / "results.md")]
    assert summarize.main([*argv, "--check"]) == 0


def test_row_files_of_other_tasks_are_not_read(tmp_path: Path) -> None:
    for task in ("chord", "ddsp"):
        row = {column: 1 for column in row_files.ROW_COLUMNS}
        pd.DataFrame([{**row, "task": task}]).to_csv(tmp_path / f"{task}.csv", index=False)
    assert set(row_files.load_rows(tmp_path).task) == {"chord"}

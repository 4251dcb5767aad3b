"""The generative example's summary per level (examples.mir.ddsp_levels)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from examples.mir.ddsp_levels import choose_level, level_table, main


def _rows() -> pd.DataFrame:
    rows = []
    for replicate, ref in ((0, 6.0), (1, 8.0)):
        rows.append(("reference", "-", replicate, 0, 1.0, 1000, ref, ref + 0.1, 0.99))
        for level, kept, factor in ((1, 0.5, 1.02), (2, 0.2, 1.08), (3, 0.05, 1.3)):
            val = ref * factor
            rows.append(
                ("lrr", "magnitude", replicate, level, kept, int(1000 * kept), val, val, 0.98)
            )
            rows.append(
                (
                    "lrr",
                    "information",
                    replicate,
                    level,
                    kept,
                    int(1000 * kept),
                    val * 1.1,
                    val,
                    0.9,
                )
            )
    cols = [
        "method",
        "criterion",
        "replicate",
        "level",
        "kept",
        "params",
        "val_error",
        "error",
        "f0_within_50",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.assign(task="ddsp", f0_cents=1.0, epochs=25, train_seconds=100.0)


def test_the_table_averages_ratios_to_each_replicates_own_reference() -> None:
    table = level_table(_rows()).set_index(["criterion", "level"])
    assert table.loc[("reference", 0), "val_loss"] == pytest.approx(7.0)
    # each replicate's ratio to its own reference, then the mean (not a ratio of means)
    assert table.loc[("magnitude", 2), "val_x"] == pytest.approx(1.08)
    assert table.loc[("information", 2), "val_x"] == pytest.approx(1.08 * 1.1)
    assert table.loc[("magnitude", 1), "test_x"] == pytest.approx((6.12 / 6.1 + 8.16 / 8.1) / 2)
    assert table.loc[("magnitude", 3), "replicates"] == 2


def test_validation_chooses_the_smallest_level_within_the_margin() -> None:
    table = level_table(_rows())
    best = choose_level(table)
    assert (best.criterion, best.level) == ("magnitude", 2)  # information's 1.188x does not qualify
    assert choose_level(table, within=1.01) is None


def test_the_command_writes_rows_figure_and_doc(tmp_path: Path) -> None:
    run = tmp_path / "ddsp-run"
    run.mkdir()
    (run / "settings.json").write_text("{}")
    for row in _rows().to_dict("records"):  # each finished level in its file, as the runner
        chain = run / f"replicate-{row['replicate']}" / f"{row['method']}-{row['criterion']}"
        chain.mkdir(parents=True, exist_ok=True)
        (chain / f"level-{row['level']:02d}.json").write_text(json.dumps(row))
    doc = tmp_path / "doc.md"
    doc.write_text("before\n<!-- ddsp:levels -->\nold\n<!-- /ddsp:levels -->\nafter\n")
    rows, figure = tmp_path / "rows.csv", tmp_path / "levels.png"
    assert (
        main(["--run", str(run), "--rows", str(rows), "--figure", str(figure), "--doc", str(doc)])
        == 0
    )
    text = doc.read_text()
    assert "old" not in text and "magnitude level 2" in text and text.endswith("after\n")
    assert figure.read_bytes()[:4] == b"\x89PNG" and len(pd.read_csv(rows)) == len(_rows())
    # the committed rows alone rebuild the same block
    again = tmp_path / "again.md"
    again.write_text("<!-- ddsp:levels -->\n<!-- /ddsp:levels -->\n")
    assert main(["--rows", str(rows), "--from-rows", "--doc", str(again)]) == 0
    assert _block(again.read_text()) == _block(text)


def _block(text: str) -> str:
    return text.split("<!-- ddsp:levels -->")[1].split("<!-- /ddsp:levels -->")[0]

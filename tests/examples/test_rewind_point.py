"""The rewind-point study (benchmarks.rewind_point): rows exported from run directories with
their rewind epoch and patience, and tables that rank on validation error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks.rewind_point import export, main, table


def _run_dir(root: Path, name: str, rewind: int, patience: int, errors: list[float]) -> Path:
    d = root / name
    d.mkdir()
    train = {"rewind_epochs": rewind, "patience": patience, "lr": 1e-3}
    (d / "settings.json").write_text(json.dumps({"settings": {"train": train}}))
    rows = pd.DataFrame(
        {
            "method": ["trim"] * 3,
            "replicate": [0, 0, 0],
            "level": [0, 1, 2],
            "val_error": errors,
            "error": [e + 0.5 for e in errors],  # test disagrees in scale only
        }
    )
    rows.to_csv(d / "results.csv", index=False)
    return d


def test_export_tags_rows_with_their_settings_and_the_table_reads_validation(
    tmp_path: Path, capsys
) -> None:
    a = _run_dir(tmp_path, "a", rewind=1, patience=8, errors=[0.1, 0.2, 0.4])
    b = _run_dir(tmp_path, "b", rewind=4, patience=3, errors=[0.1, 0.3, 0.3])
    out = tmp_path / "rows.csv"
    rows = export([str(a), str(b)], str(out))
    assert pd.read_csv(out).equals(rows)
    assert sorted(set(zip(rows.rewind, rows.patience, strict=True))) == [(1, 8), (4, 3)]
    text = table(rows)
    line = next(x for x in text.splitlines() if x.startswith("| 8 | 1 | trim"))
    assert "0.200 [0.200-0.200]" in line and line.endswith("| 0.300 |")  # mean of L1, L2
    assert "| 3 | 4 | trim |" in text
    assert main(["--table", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation error (chooses)" in printed and "0.700 [0.700-0.700]" in printed

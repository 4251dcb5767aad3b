"""benchmarks.retraining_figure: which rows each line takes, the references table, the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from benchmarks.retraining_figure import gather, main, references

matplotlib.use("Agg")


def _rows(method: str, reference: float, step: float, **extra: float) -> list[dict]:
    """Three levels of one replicate: the reference, then ``step`` more error per level."""
    return [
        {
            "task": "chord",
            "method": method,
            "criterion": "magnitude",
            "replicate": 0,
            "level": level,
            "kept": 0.7**level,
            "error": reference + step * level,
            "val_error": reference + step * level,
            **extra,
        }
        for level in range(3)
    ]


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    names = {name: tmp_path / name for name in ("quick", "peers", "kd", "trim_kd")}
    for folder in names.values():
        folder.mkdir()
    pd.DataFrame(_rows("trim", 0.1, 0.02) + _rows("finetune", 0.1, 0.0)).to_csv(
        names["quick"] / "chord.csv", index=False
    )
    peers = [r for r in _rows("torch-pruning", 0.1, 0.01) if r["level"] > 0]
    pd.DataFrame(peers).to_csv(names["peers"] / "chord.csv", index=False)
    kd = (
        _rows("finetune", 0.2, 0.0, kd_temperature=2.0, kd_weight=0.7)
        + _rows("finetune+kd", 0.2, 0.03, kd_temperature=2.0, kd_weight=0.7)
        + _rows("finetune+kd", 0.2, 0.5, kd_temperature=4.0, kd_weight=0.9)
    )
    pd.DataFrame(kd).to_csv(names["kd"] / "chord-kd.csv", index=False)
    trim_kd = _rows("trim", 0.3, 0.0, kd_temperature=2.0, kd_weight=0.7) + _rows(
        "trim+kd", 0.3, 0.04, kd_temperature=2.0, kd_weight=0.7
    )
    pd.DataFrame(trim_kd).to_csv(names["trim_kd"] / "chord-kd.csv", index=False)
    return names


def test_each_line_comes_from_its_own_source_at_the_chosen_setting(
    folders: dict[str, Path],
) -> None:
    frame = gather(folders["quick"], folders["peers"], folders["kd"], folders["trim_kd"])
    drawn = frame[frame["level"] > 0]
    by_method = drawn.groupby("method")["error"].apply(lambda e: [round(x, 3) for x in e])
    assert by_method.to_dict() == {
        "lrr": [0.1, 0.1],  # the quick rows' finetune, renamed
        "lrr+kd": [0.23, 0.26],  # T=2 w=0.7 only, not the T=4 screen
        "torch-pruning": [0.11, 0.12],
        "trim": [0.12, 0.14],  # the quick rows' trim, not the one beside trim+kd
        "trim+kd": [0.34, 0.38],
    }
    table = references(frame)
    assert table.loc["chord"].to_dict() == {
        "lrr+kd": 0.2,
        "quick rows": 0.1,
        "trim+kd": 0.3,
    }


def test_the_figure_is_written_and_a_missing_quick_folder_is_named(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figure.png"
    paths = [str(folders[k]) for k in ("quick", "peers", "kd", "trim_kd")]
    flags = ["--quick", "--peers", "--kd", "--trim-kd"]
    argv = [a for pair in zip(flags, paths, strict=True) for a in pair] + ["--out", str(out)]
    assert main(argv) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "trim+kd" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no quick rows"):
        main(["--quick", str(tmp_path / "nowhere"), "--out", str(out)])


def test_across_tasks_and_lowest_read_the_drawn_lines(folders: dict[str, Path]) -> None:
    from benchmarks.retraining_figure import across_tasks, lowest

    frame = gather(folders["quick"], folders["peers"], folders["kd"], folders["trim_kd"])
    drawn = frame[~frame["method"].str.startswith("references of")]
    ratios = across_tasks(drawn, "error")
    # over the quick reference (0.1), not over a distilled run's own (0.2, 0.3)
    assert ratios.loc["trim", 2] == pytest.approx(1.4)
    assert ratios.loc["trim+kd", 1] == pytest.approx(3.4)
    assert ratios.loc["lrr", 1] == pytest.approx(1.0)
    assert lowest(drawn, "error").to_dict() == {"lrr": 2}

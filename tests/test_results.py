"""Picking the paper's reference, best, smallest and optimal models from result rows."""

from __future__ import annotations

import pandas as pd
import pytest

import lotterytrim as lt


def _row(method: str, rep: int, level: int, error: float, path: str) -> dict:
    params = int(1000 * 0.7**level)
    key = dict(task="t", method=method, criterion="magnitude", replicate=rep, level=level)
    return key | dict(error=error, params=params, kept=params / 1000, macs=5 * params, path=path)


def _frame() -> pd.DataFrame:
    """Reference error 0.20; trim levels 1..4 with two replicates; finetune flat at 0.15."""
    errors = {1: (0.18, 0.20), 2: (0.21, 0.23), 3: (0.27, 0.29), 4: (0.40, 0.50)}
    rows = []
    for rep in (0, 1):
        rows += [_row("trim", rep, 0, 0.20, f"r{rep}/ref.lt"), _row("finetune", rep, 0, 0.20, "x")]
        for level, pair in errors.items():
            rows.append(_row("trim", rep, level, pair[rep], f"r{rep}/L{level}.lt"))
            rows.append(_row("finetune", rep, level, 0.15, "ft"))
    return pd.DataFrame(rows)


def test_select_picks_the_papers_three_models() -> None:
    table = lt.select(_frame()).set_index("model")
    assert list(table.index) == ["reference", "best", "smallest", "optimal"]
    assert table.loc["reference", "error"] == pytest.approx(0.20)
    assert table.loc["best", "level"] == 1 and table.loc["best", "error"] == pytest.approx(0.19)
    # 1.1 x 0.20 = 0.22: level 2 (mean 0.22) qualifies, level 3 (0.28) does not
    assert table.loc["optimal", "level"] == 2
    assert table.loc["optimal", "params"] == pytest.approx(int(1000 * 0.7**2))
    # 1.5 x 0.20 = 0.30: level 3 qualifies, level 4 (0.45) does not
    assert table.loc["smallest", "level"] == 3
    assert table.loc["smallest", "error_std"] == pytest.approx(0.01)
    assert table.loc["smallest", "path"] == "r0/L3.lt"  # the better replicate's file
    assert table.loc["smallest", "replicates"] == 2


def test_select_other_method_and_missing_models() -> None:
    table = lt.select(_frame(), method="finetune").set_index("model")
    assert table.loc["best", "error"] == pytest.approx(0.15)
    assert table.loc["optimal", "level"] == 4  # every level qualifies: the smallest wins
    tight = lt.select(_frame(), optimal=1.0).set_index("model")
    assert "optimal" in tight.index and tight.loc["optimal", "level"] == 1
    none = _frame()
    none.loc[none.level > 0, "error"] = 0.9
    assert set(lt.select(none)["model"]) == {"reference", "best"}


def test_select_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="error"):
        lt.select(_frame().drop(columns=["error"]))
    with pytest.raises(ValueError, match="empty"):
        lt.select(_frame().iloc[:0])
    with pytest.raises(ValueError, match="optimal"):
        lt.select(_frame(), optimal=0.5)
    with pytest.raises(TypeError, match="DataFrame"):
        lt.select([1, 2])  # type: ignore[arg-type]

"""Picking the paper's reference, best, smallest and optimal models from result rows."""

from __future__ import annotations

import pandas as pd
import pytest

import lotterytrim as lt


def _row(method: str, rep: int, level: int, val: float, test: float, path: str) -> dict:
    params = int(1000 * 0.7**level)
    key = dict(task="t", method=method, criterion="magnitude", replicate=rep, level=level)
    sizes = dict(params=params, kept=params / 1000, macs=5 * params, path=path)
    return key | dict(error=test, val_error=val) | sizes


def _frame() -> pd.DataFrame:
    """Reference 0.20; trim levels 1..4 with two replicates; finetune flat.

    Validation and test disagree: on validation finetune (0.25) is worse than trim's first
    levels, on test (0.10) it is better than everything.
    """
    val = {1: (0.18, 0.20), 2: (0.21, 0.23), 3: (0.27, 0.29), 4: (0.40, 0.50)}
    rows = []
    for rep in (0, 1):
        rows += [
            _row("trim", rep, 0, 0.20, 0.20, f"r{rep}/ref.lt"),
            _row("finetune", rep, 0, 0.20, 0.20, "x"),
        ]
        for level, pair in val.items():
            # the replicate better on validation is the worse one on test
            test = pair[1 - rep] + 0.05
            rows.append(_row("trim", rep, level, pair[rep], test, f"r{rep}/L{level}.lt"))
            rows.append(_row("finetune", rep, level, 0.25, 0.10, f"ft{rep}/L{level}.lt"))
    return pd.DataFrame(rows)


def test_pick_models_chooses_on_validation_across_methods_and_reports_test() -> None:
    table = lt.pick_models(_frame()).set_index("model")
    assert list(table.index) == ["reference", "best", "smallest", "optimal"]
    assert set(table["chosen_by"]) == {"val_error"}
    assert table.loc["reference", "error"] == pytest.approx(0.20)
    # best on validation is trim level 1 (0.19), although finetune is better on test (0.10)
    assert (table.loc["best", "method"], table.loc["best", "level"]) == ("trim", 1)
    assert table.loc["best", "val_error"] == pytest.approx(0.19)
    assert table.loc["best", "error"] == pytest.approx(0.24)  # its test error, reported
    # 1.1 x 0.20 = 0.22 on validation: trim level 2 (mean 0.22) qualifies, finetune (0.25) not
    assert (table.loc["optimal", "method"], table.loc["optimal", "level"]) == ("trim", 2)
    assert table.loc["optimal", "smaller"] == pytest.approx(1000 / int(1000 * 0.7**2))
    # 1.5 x 0.20 = 0.30: finetune's level 4 (0.25, 240 params) beats trim's level 3 (343)
    assert (table.loc["smallest", "method"], table.loc["smallest", "level"]) == ("finetune", 4)
    assert table.loc["smallest", "replicates"] == 2
    assert table.loc["optimal", "path"] == "r0/L2.lt"  # the replicate better on validation
    assert table.loc["reference", "smaller"] == 1.0


def test_pick_models_by_test_error_only_when_asked_or_without_validation() -> None:
    on_test = lt.pick_models(_frame(), by="error").set_index("model")
    assert set(on_test["chosen_by"]) == {"error"}
    assert on_test.loc["best", "method"] == "finetune"
    no_val = lt.pick_models(_frame().drop(columns=["val_error"])).set_index("model")
    assert set(no_val["chosen_by"]) == {"error"}
    assert no_val.loc["best", "method"] == "finetune"


def test_pick_models_other_method_and_missing_models() -> None:
    table = lt.pick_models(_frame(), method="finetune").set_index("model")
    assert table.loc["best", "val_error"] == pytest.approx(0.25)
    assert "optimal" not in table.index  # 0.25 > 1.1 x 0.20 on validation
    assert table.loc["smallest", "level"] == 4  # every level qualifies: the smallest wins
    tight = lt.pick_models(_frame(), method="trim", optimal=1.0).set_index("model")
    assert tight.loc["optimal", "level"] == 1
    none = _frame()
    none.loc[none.level > 0, "val_error"] = 0.9
    assert set(lt.pick_models(none)["model"]) == {"reference", "best"}
    with pytest.raises(ValueError, match="method.*'mask'"):
        lt.pick_models(_frame(), method="mask")


def test_pick_models_near_equal_sizes_go_to_the_lower_error() -> None:
    """Two methods' last levels 0.5% apart in size: the smaller by a few weights but worse on
    validation loses unless sizes must match exactly (same_size=0)."""
    rows = [
        _row("trim", 0, 0, 0.20, 0.20, "ref"),
        _row("trim", 0, 1, 0.215, 0.30, "trim") | dict(params=200),
        _row("finetune", 0, 1, 0.19, 0.18, "ft") | dict(params=201),
        # within 1% of 201 but not of 200, and the lowest error of all
        _row("finetune", 0, 2, 0.17, 0.18, "next") | dict(params=203),
    ]
    table = lt.pick_models(pd.DataFrame(rows)).set_index("model")
    assert table.loc["optimal", "method"] == "finetune"
    # a band from the fewest, not a chain: 203 does not compete, though it is the best
    assert table.loc["optimal", "params"] == 201 and table.loc["best", "params"] == 203
    assert table.loc["smallest", "params"] == 201
    exact = lt.pick_models(pd.DataFrame(rows), same_size=0.0).set_index("model")
    assert (exact.loc["optimal", "method"], exact.loc["optimal", "params"]) == ("trim", 200)
    narrow = lt.pick_models(pd.DataFrame(rows), same_size=0.004).set_index("model")
    assert narrow.loc["optimal", "params"] == 200  # 201 is 0.5% above: not the same size
    wide = lt.pick_models(pd.DataFrame(rows), same_size=0.02).set_index("model")
    assert wide.loc["optimal", "params"] == 203
    with pytest.raises(ValueError, match="same_size"):
        lt.pick_models(pd.DataFrame(rows), same_size=1.5)


def test_pick_models_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="error"):
        lt.pick_models(_frame().drop(columns=["error"]))
    with pytest.raises(ValueError, match="empty"):
        lt.pick_models(_frame().iloc[:0])
    with pytest.raises(ValueError, match="optimal"):
        lt.pick_models(_frame(), optimal=0.5)
    with pytest.raises(ValueError, match="by='nope'"):
        lt.pick_models(_frame(), by="nope")
    with pytest.raises(ValueError, match="missing"):
        lt.pick_models(_frame().assign(val_error=None), by="val_error")
    gap = _frame()
    gap.loc[3, "val_error"] = None  # one row without validation: never fall back to test
    with pytest.raises(ValueError, match="by='val_error'.*missing"):
        lt.pick_models(gap)
    with pytest.raises(TypeError, match="DataFrame"):
        lt.pick_models([1, 2])  # type: ignore[arg-type]

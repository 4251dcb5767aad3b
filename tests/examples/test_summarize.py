"""The results summary: Figure 2 file, Table 1 with latency, target checks, from real run dirs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import lotterytrim as lt
from examples.mir import summarize
from examples.mir.models import build_model, example_input


def _run(root: Path, task: str) -> lt.Lottery:
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
        return {"error": error, "error_low": error - 0.01, "error_high": error + 0.02, "test_n": 8}

    config = lt.LotteryConfig(task=task, levels=2, replicates=1, methods=("trim", "finetune"))
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


def test_summary_draws_the_figure_and_prints_the_tables(tmp_path: Path, capsys) -> None:
    _run(tmp_path / "runs", "onset")
    _run(tmp_path / "runs", "chord")
    summarize.main(["--root", str(tmp_path / "runs"), "--out", str(tmp_path / "fig")])
    out = capsys.readouterr().out
    png = tmp_path / "fig" / "figure2_quick.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| onset | reference |" in out and "| chord | reference |" in out
    assert "trim no worse than finetune (levels >= 3)" in out
    assert "| onset | kept (trim) | 1.000 |" in out
    assert "test n" in out and "reference 95% CI" in out and "| 8 | [" in out
    assert "references still falling" in out and "| 1/1 |" in out


def test_targets_reads_mean_errors_per_level() -> None:
    rows = []
    for method, errors in {
        "trim": [0.2, 0.19, 0.18, 0.17],
        "finetune": [0.2, 0.3, 0.3, 0.3],
    }.items():
        for level, error in enumerate(errors):
            rows.append(dict(task="t", method=method, level=level, error=error, kept=0.7**level))
    table = summarize.targets(pd.DataFrame(rows)).iloc[0]
    assert table["reference error"] == pytest.approx(0.2)
    assert not table["<=25% kept, error <= reference"]  # 0.7**3 = 34% kept at best
    assert table["removed within 1.1x"] == pytest.approx(1 - 0.7**3)
    assert table["trim no worse than finetune (levels >= 3)"] == "1/1"
    assert table["<=25% kept, error / reference"] is None  # no level that deep
    deeper = pd.DataFrame(rows + [dict(task="t", method="trim", level=4, error=0.22, kept=0.24)])
    again = summarize.targets(deeper).iloc[0]
    assert again["<=25% kept, error / reference"] == pytest.approx(1.1)
    assert again["trim no worse than finetune (levels >= 3)"] == "1/1"  # finetune lacks L4
    tie = pd.DataFrame([{**r, "error": 0.3} if r["level"] == 3 else r for r in rows])
    assert summarize.targets(tie).iloc[0]["trim no worse than finetune (levels >= 3)"] == "1/1"


def test_per_level_spread_shows_mean_min_and_max() -> None:
    rows = [
        dict(task="t", method=m, replicate=r, level=lv, error=e, kept=0.7**lv)
        for m in ("trim", "finetune")
        for r, e in enumerate((0.1, 0.3))
        for lv in (0, 1)
    ]
    table = summarize.per_level(pd.DataFrame(rows), spread=True).set_index(["task", "method"])
    assert table.loc[("t", "trim"), "L1"] == "0.200 [0.100-0.300]"
    assert table.loc[("t", "kept (trim)"), "L1"] == pytest.approx(0.7)
    plain = summarize.per_level(pd.DataFrame(rows)).set_index(["task", "method"])
    assert plain.loc[("t", "finetune"), "L0"] == pytest.approx(0.2)


def test_empty_root_is_a_clear_exit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no finished lottery runs"):
        summarize.main(["--root", str(tmp_path), "--out", str(tmp_path / "fig")])

"""torch-pruning's pipeline as a baseline (benchmarks.peers): pruning to a parameter count, and
the rows of a tiny run beside the lottery's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from benchmarks.peers import comparison, gaps, main, n_params, output_layer, prune_to, verdict
from examples.mir.profiles import PROFILES
from examples.mir.run import run_task


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 32, 5, padding=2),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Conv1d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(32, 16),
        nn.ReLU(),
        nn.Linear(16, 5),
    )


def test_prune_to_lands_near_the_target_and_keeps_the_output_layer() -> None:
    model, x = _net(), torch.randn(4, 1, 40)
    before = n_params(model)
    for share in (0.7, 0.49):
        target = round(before * share)
        pruned = prune_to(model, x, target)
        assert 0.9 * target <= n_params(pruned) <= target
        assert output_layer(pruned).out_features == 5
        assert pruned(x).shape == (4, 5)
    assert n_params(model) == before  # the model given is left as it was


def test_a_tiny_peer_run_writes_rows_at_the_lottery_sizes(tmp_path: Path) -> None:
    profile = PROFILES["tiny"]  # two levels; the peers find its run directory
    rows, _, _ = run_task("onset", profile, tmp_path, progress=False, log=None)
    out = tmp_path / "peers"
    args = ["--task", "onset", "--root", str(tmp_path), "--profile", "tiny", "--levels", "2"]
    assert main([*args, "--out", str(out)]) == 0
    peers = pd.read_csv(out / "onset.csv")
    assert list(peers.level) == [1, 2] and (peers.method == "torch-pruning").all()
    ours = rows[(rows.method == "finetune") & (rows.level > 0)].sort_values("level")
    assert list(peers.target_params) == list(ours.params)
    assert (peers.params <= peers.target_params).all()
    assert peers.error.between(0, 1).all() and peers.val_error.notna().all()
    stamp = (out / "onset.csv").stat().st_mtime_ns
    assert main([*args, "--out", str(out)]) == 0  # finished replicates are not recomputed
    assert (out / "onset.csv").stat().st_mtime_ns == stamp


def test_the_comparison_averages_replicates_per_method_and_level() -> None:
    base = {"task": "onset", "criterion": "magnitude", "level": 1, "kept": 0.7}
    ours = pd.DataFrame(
        [
            {**base, "method": "finetune", "replicate": r, "val_error": v, "error": e}
            for r, v, e in ((0, 0.1, 0.2), (1, 0.3, 0.4))
        ]
        + [{**base, "level": 0, "method": "finetune", "replicate": 0, "val_error": 9, "error": 9}]
    )
    peers = pd.DataFrame(
        [
            {
                **base,
                "method": "torch-pruning",
                "replicate": 0,
                "val_error": 0.5,
                "error": 0.6,
                "kept": 0.68,
            }
        ]
    )
    table = comparison(ours, peers)
    assert list(table.index) == [("onset", 1)]  # the reference row takes no part
    assert [who for who, _ in table.columns][::3] == ["finetune", "torch-pruning"]
    row = table.loc[("onset", 1)]
    assert row[("finetune", "val_error")] == 0.2 and row[("finetune", "error")] == 0.3
    assert row[("torch-pruning", "kept")] == 0.68


def test_the_verdict_reads_the_worst_validation_gap_from_level_two() -> None:
    def rows(method: str, val: list[float], test: list[float]) -> list[dict]:
        return [
            {"method": method, "level": level, "replicate": 0, "val_error": v, "error": e}
            for level, (v, e) in enumerate(zip(val, test, strict=True), start=1)
        ]

    # level 1 is far behind and does not count; from level 2 the worst gap is 0.004 (level 3)
    ours = pd.DataFrame(rows("finetune", [0.9, 0.10, 0.124], [0.9, 0.2, 0.2]))
    peers = pd.DataFrame(rows("torch-pruning", [0.1, 0.11, 0.120], [0.1, 0.1, 0.25]))
    gap = gaps(ours, peers)
    assert list(gap.index) == [2, 3]
    assert abs(gap.val_gap[3] - 0.004) < 1e-9 and abs(gap.test_gap[2] - 0.1) < 1e-9
    line = verdict(gap)
    assert "level 3" in line and line.endswith("yes")
    assert verdict(gap, margin=0.003).endswith("no")

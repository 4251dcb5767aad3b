"""torch-pruning's own prune-then-fine-tune pipeline on an example task, beside our lottery.

What a user would otherwise run: torch-pruning's documented group importance (L2 group
magnitude by default, ``--importance taylor`` for first-order Taylor), global pruning with its
``max_pruning_ratio`` guard (0.75: every layer keeps a quarter of its channels, as our default
floor does), and the output layer left alone. Each level prunes the previous level's retrained
model down to the parameter count of our lottery's level in the same replicate (0.7**level of
the reference when that row is missing), then retrains it with the example's own training
(fresh Adam at the full learning rate, the same early stopping and epoch cap: what our rows
call ``finetune``) and evaluates it the same way. It starts from the lottery's own trained
reference of each replicate, so both pipelines share the reference, the data and the budget.

    python -m benchmarks.peers --task onset --root runs/quick --replicates 0,1,2 \\
        --out results/peers

writes ``results/peers/<task>.csv`` (one row per replicate and level), each replicate as soon as
it finishes; replicates already there are kept, not recomputed. The lottery run must exist: run
``python -m examples.mir.run --task <task> --profile quick`` first.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch_pruning as tp
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt
from examples.mir.models import TASKS
from examples.mir.profiles import PROFILES
from examples.mir.run import trained_reference
from lotterytrim.runner.seeding import derive_seed

COLUMNS = [
    "task",
    "method",
    "criterion",
    "replicate",
    "level",
    "params",
    "kept",
    "target_params",
    "macs",
    "val_error",
    "error",
    "error_low",
    "error_high",
    "epochs",
    "best_epoch",
    "prune_seconds",
    "train_seconds",
]

IMPORTANCE: dict[str, Callable[[], Any]] = {
    "magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
    "taylor": lambda: tp.importance.GroupTaylorImportance(),
}


def n_params(model: nn.Module) -> int:
    """Parameters the model stores."""
    return sum(p.numel() for p in model.parameters())


def output_layer(model: nn.Module) -> nn.Module:
    """The last Linear or convolution in module order: the example models' output layer."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    return layers[-1]


def _prune_copy(
    model: nn.Module,
    example: torch.Tensor,
    ratio: float,
    importance: str,
    batch: tuple[torch.Tensor, torch.Tensor] | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
) -> nn.Module:
    """A copy of ``model`` pruned by torch-pruning at global channel ratio ``ratio``."""
    pruned = copy.deepcopy(model)
    pruned.eval()
    pruner = tp.pruner.MetaPruner(
        pruned,
        example,
        importance=IMPORTANCE[importance](),
        global_pruning=True,
        pruning_ratio=ratio,
        max_pruning_ratio=0.75,
        ignored_layers=[output_layer(pruned)],
    )
    if importance == "taylor" and batch is not None and loss_fn is not None:
        pruned.zero_grad()
        loss_fn(pruned(batch[0]), batch[1]).backward()
    pruner.step()
    pruned.zero_grad(set_to_none=True)
    return pruned


def prune_to(
    model: nn.Module,
    example: torch.Tensor,
    target: int,
    importance: str = "magnitude",
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> nn.Module:
    """The model pruned by torch-pruning to at most about ``target`` parameters: the global
    channel ratio is found by bisection (torch-pruning's ratio counts channels, not weights)."""
    low, high = 0.0, 0.95
    best = model
    for _ in range(14):
        mid = (low + high) / 2
        pruned = _prune_copy(model, example, mid, importance, batch, loss_fn)
        if n_params(pruned) > target:
            low = mid
        else:
            high, best = mid, pruned
        if best is not model and n_params(best) >= target * 0.99:
            break
    if best is model:  # the guard stops short of the target: take the most it allows
        best = _prune_copy(model, example, high, importance, batch, loss_fn)
    return best


def _targets(lottery_rows: pd.DataFrame, replicate: int, levels: int, params0: int) -> list[int]:
    """Our lottery's parameter count per level of ``replicate`` (0.7**level when missing)."""
    mine = lottery_rows[(lottery_rows.replicate == replicate) & (lottery_rows.method != "mask")]
    out = []
    for level in range(1, levels + 1):
        at = mine[mine.level == level]
        out.append(int(at.params.iloc[0]) if len(at) else round(params0 * 0.7**level))
    return out


def _task_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The task's training loss on logits (for Taylor importance's gradient)."""
    if TASKS[task].loss == "cross_entropy":
        return F.cross_entropy
    return F.binary_cross_entropy_with_logits


def run_replicate(
    task: str, root: str, replicate: int, levels: int, importance: str, profile_name: str
) -> list[dict[str, Any]]:
    """Prune and retrain one replicate of ``task`` level by level, from its lottery's reference."""
    profile = PROFILES[profile_name]
    lottery, run, model = trained_reference(task, profile_name, root, replicate)
    params0 = n_params(model)
    targets = _targets(lottery.results(), replicate, levels, params0)
    x, y = run.splits.train
    batch, loss = (x[:64], y[:64]), _task_loss(task)
    rows: list[dict[str, Any]] = []
    for level, target in enumerate(targets, start=1):
        t0 = time.perf_counter()
        model = prune_to(model, run.example_inputs, target, importance, batch, loss)
        prune_seconds = time.perf_counter() - t0
        ctx = lt.LevelContext(
            task=task,
            method="torch-pruning",
            criterion=importance,
            replicate=replicate,
            level=level,
            seed=derive_seed(profile.seed + replicate, "torch-pruning", importance, level),
            trimmer=None,
            rewind_fraction=0.0,
            capture=None,
            progress=False,
        )
        t1 = time.perf_counter()
        run.train(model, ctx)
        train_seconds = time.perf_counter() - t1
        scores = run.evaluate(model)
        rows.append(
            {
                "task": task,
                "method": "torch-pruning",
                "criterion": importance,
                "replicate": replicate,
                "level": level,
                "params": n_params(model),
                "kept": n_params(model) / params0,
                "target_params": target,
                "macs": int(lt.report(model, run.example_inputs).macs),
                "prune_seconds": prune_seconds,
                "train_seconds": train_seconds,
                **{k: scores[k] for k in ("val_error", "error", "error_low", "error_high")},
                **{k: ctx.records[k] for k in ("epochs", "best_epoch")},
            }
        )
        print(
            f"{task} torch-pruning/{importance} replicate {replicate} level {level}: "
            f"{rows[-1]['params']} params (target {target}), val {scores['val_error']:.3f}, "
            f"test {scores['error']:.3f}, {train_seconds:.0f} s",
            flush=True,
        )
    return rows


def comparison(ours: pd.DataFrame, peers: pd.DataFrame) -> pd.DataFrame:
    """Mean validation and test error per level (over replicates) of each of our methods and
    of torch-pruning's pipeline, side by side at the same parameter counts."""
    rows = pd.concat([ours[ours.level > 0], peers], ignore_index=True)
    table = (
        rows.groupby(["task", "level", "method"])
        .agg(
            kept=("kept", "mean"),
            val_error=("val_error", "mean"),
            error=("error", "mean"),
        )
        .reset_index()
    )
    wide = table.pivot_table(
        index=["task", "level"], columns="method", values=["kept", "val_error", "error"]
    ).swaplevel(axis=1)
    order = sorted(wide.columns.levels[0], key=lambda p: (p == "torch-pruning", p))
    columns = [(p, what) for p in order for what in ("kept", "val_error", "error")]
    return wide[[c for c in columns if c in wide.columns]].round(3)


def gaps(
    ours: pd.DataFrame, peers: pd.DataFrame, method: str = "finetune", first_level: int = 2
) -> pd.DataFrame:
    """Per level from ``first_level``: ``method``'s mean error minus torch-pruning's (over
    replicates, unrounded), on validation (``val_gap``, what the verdict reads) and on test."""
    mean = (
        pd.concat([ours[ours.method == method], peers], ignore_index=True)
        .groupby(["level", "method"])[["val_error", "error"]]
        .mean()
        .unstack("method")
    )
    mean = mean[mean.index >= first_level]
    return pd.DataFrame(
        {
            "val_gap": mean["val_error"][method] - mean["val_error"]["torch-pruning"],
            "test_gap": mean["error"][method] - mean["error"]["torch-pruning"],
        }
    ).dropna()


def verdict(gap: pd.DataFrame, margin: float = 0.005, method: str = "finetune") -> str:
    """One line: whether ``method``'s validation gap stays within ``margin`` at every level."""
    worst_val, worst_test = gap.val_gap.idxmax(), gap.test_gap.idxmax()
    met = bool((gap.val_gap <= margin).all())
    return (
        f"{method} against torch-pruning from level {gap.index.min()} on: worst validation gap "
        f"{gap.val_gap.max():+.4f} (level {worst_val}), worst test gap "
        f"{gap.test_gap.max():+.4f} (level {worst_test}); within {margin} on validation at every "
        f"level: {'yes' if met else 'no'}"
    )


def markdown(ours_dir: Path, peers_dir: Path, tasks: Sequence[str]) -> str:
    """The comparison of each task with committed rows in both folders, as markdown tables."""
    out = []
    for task in tasks:
        ours_file, peers_file = ours_dir / f"{task}.csv", peers_dir / f"{task}.csv"
        if not (ours_file.is_file() and peers_file.is_file()):
            continue
        ours = pd.read_csv(ours_file)
        peers = pd.read_csv(peers_file)
        ours = ours[ours.replicate.isin(peers.replicate.unique())]
        table = comparison(ours, peers)
        head = ["level"] + [f"{who} {what}" for who, what in table.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for (_, level), row in table.iterrows():
            cells = [str(level)] + [f"{v:.3f}" for v in row.to_numpy()]
            lines.append("| " + " | ".join(cells) + " |")
        n = peers.replicate.nunique()
        lines += ["", verdict(gaps(ours, peers))]
        out.append(f"**{task}** ({n} replicate{'s' if n > 1 else ''})\n\n" + "\n".join(lines))
    return "\n\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--root", default="runs/quick", help="the lottery runs' root")
    parser.add_argument("--replicates", default="0", help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--levels", type=int, default=6)
    parser.add_argument("--importance", choices=sorted(IMPORTANCE), default="magnitude")
    parser.add_argument("--out", default="results/peers")
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    parser.add_argument(
        "--table",
        default=None,
        metavar="OURS_DIR",
        help="print the comparison with our committed rows in OURS_DIR (e.g. results/quick) "
        "for the comma-separated --task list, and run nothing",
    )
    args = parser.parse_args(argv)
    if args.table is not None:
        print(markdown(Path(args.table), Path(args.out), args.task.split(",")), end="")
        return 0
    torch.set_num_threads(1)
    out = Path(args.out) / f"{args.task}.csv"
    old = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=COLUMNS)
    for replicate in (int(r) for r in args.replicates.split(",")):
        mine = old[(old.replicate == replicate) & (old.criterion == args.importance)]
        if len(mine) >= args.levels:  # a replicate is written whole: finished ones are kept
            continue
        rows = run_replicate(
            args.task, args.root, replicate, args.levels, args.importance, args.profile
        )
        keep = old[~((old.replicate == replicate) & (old.criterion == args.importance))]
        old = pd.concat([keep, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)
        old = old.sort_values(["criterion", "replicate", "level"]).reset_index(drop=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        old.to_csv(tmp, index=False, float_format="%.6g")
        tmp.replace(out)  # each finished replicate is written at once
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The error a trimming step leaves before any retraining, per criterion and ranking cost.

One-shot users and early-bird tickets live with a step's damage until retraining repairs it,
and on BatchNorm networks the default ranking can hurt there. This benchmark takes the trained
references of an example lottery (quick profile) and, for each criterion and cost, trims a
copy in ``--steps`` steps of 30% with no training between them, recording the validation error
(and the test error beside it) after the first and the last step, as the step left the model
and again after re-estimating its BatchNorm statistics on 1,024 training examples
(``recal_*``: ``lt.recalibrate_norms``, forward passes only). No model is trained.

    python -m benchmarks.step_damage --task chord --root runs/quick --replicates 0,1,2 \\
        --out results/retraining

writes ``results/retraining/<task>-step-damage.csv`` (one row per replicate, criterion, cost
and step count). The lottery run must exist: run ``python -m examples.mir.run --task <task>
--profile quick`` first.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

import lotterytrim as lt
from examples.mir.models import TASKS
from examples.mir.profiles import PROFILES
from examples.mir.run import trained_reference
from lotterytrim.runner.config import unprunable_modules

_RECALIBRATION_EXAMPLES = 1024  # training examples that re-estimate norm statistics

# (criterion, cost): the default first; "none" ranks by the score alone
SETTINGS: tuple[tuple[str, str], ...] = (
    ("magnitude", "params"),
    ("magnitude", "none"),
    ("batchnorm", "params"),
    ("batchnorm", "none"),
    ("group_norm", "params"),
    ("group_norm", "none"),
    ("activation", "params"),
    ("random", "params"),
)


@dataclass
class _Reference:
    """One replicate's trained reference with what every setting needs."""

    task: str
    replicate: int
    model: nn.Module
    run: Any  # the example's TaskRun: example_inputs, evaluate, criterion_data
    unprunable: Any  # the lottery config's unprunable names
    amount: float
    seed: int
    before: dict[str, Any]
    recalibration: list[torch.Tensor]  # training batches that re-estimate norm statistics


def damage(
    task: str,
    root: str,
    replicate: int,
    steps: int,
    settings: Sequence[tuple[str, str]],
    profile_name: str = "quick",
) -> list[dict[str, Any]]:
    """Rows of one replicate of ``task``: the error after 1 and after ``steps`` steps."""
    profile = PROFILES[profile_name]
    lottery, run, model = trained_reference(task, profile_name, root, replicate)
    train_x = run.splits.train.inputs
    pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(replicate))
    train_x = train_x[pick[:_RECALIBRATION_EXAMPLES]]
    ref = _Reference(
        task,
        replicate,
        model,
        run,
        lottery.config.unprunable,
        profile.amount,
        profile.seed + replicate,
        run.evaluate(model),
        [train_x[i : i + 64] for i in range(0, len(train_x), 64)],
    )
    data = run.criterion_data()
    rows: list[dict[str, Any]] = []
    for criterion, cost in settings:
        label = {"task": task, "criterion": criterion, "cost": cost, "replicate": replicate}
        label.update(ref_val_error=ref.before["val_error"], ref_error=ref.before["error"])
        try:
            rows += [{**label, **row} for row in _steps(ref, data, steps, criterion, cost)]
        except lt.errors.CriterionError as error:  # e.g. batchnorm on a model without norms
            print(f"{task} replicate {replicate} {criterion}/{cost}: {error}", flush=True)
            rows.append({**label, "steps": 1, "note": str(error).split(":")[0]})
    return rows


def _steps(
    ref: _Reference, data: Any, steps: int, criterion: str, cost: str
) -> list[dict[str, Any]]:
    """Trim a copy of the reference ``steps`` times; the errors after the first and the last."""
    model = copy.deepcopy(ref.model)
    trimmer = lt.LotteryTrimmer(
        model,
        ref.run.example_inputs,
        criterion=criterion,
        amount=ref.amount,
        options=lt.TrimOptions(safeguards=lt.Safeguards(cost=cost)),
        method="finetune",
        unprunable=unprunable_modules(model, ref.unprunable),
        seed=ref.seed,
    )
    params0 = trimmer.params
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for step in range(1, steps + 1):
        trimmer.step(data=data)
        if step in (1, steps):
            scores = ref.run.evaluate(trimmer.model)
            seconds = time.perf_counter() - t0
            recalibrated = copy.deepcopy(trimmer.model)
            lt.recalibrate_norms(recalibrated, ref.recalibration)
            fresh = ref.run.evaluate(recalibrated)
            rows.append(
                {
                    "steps": step,
                    "kept": trimmer.params / params0,
                    "params": trimmer.params,
                    "val_error": scores["val_error"],
                    "error": scores["error"],
                    "recal_val_error": fresh["val_error"],
                    "recal_error": fresh["error"],
                    "seconds": seconds,
                }
            )
    print(
        f"{ref.task} replicate {ref.replicate} {criterion}/{cost}: after 1 step val "
        f"{rows[0]['val_error']:.3f}, after {steps} ({rows[-1]['kept']:.0%} kept) "
        f"{rows[-1]['val_error']:.3f} (reference {ref.before['val_error']:.3f})",
        flush=True,
    )
    return rows


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean validation error (and test beside it) per task, criterion, cost and step count."""
    grouped = rows.dropna(subset=["val_error"]).groupby(
        ["task", "steps", "criterion", "cost"], sort=False
    )
    out = grouped.agg(
        kept=("kept", "mean"),
        val_error=("val_error", "mean"),
        error=("error", "mean"),
        recal_val_error=("recal_val_error", "mean"),
        recal_error=("recal_error", "mean"),
        ref_val_error=("ref_val_error", "mean"),
        replicates=("replicate", "nunique"),
    )
    return out.round(3).reset_index()


def pivot(rows: pd.DataFrame, steps: int) -> pd.DataFrame:
    """One cell per criterion/cost and task: mean validation error after ``steps`` steps, then
    after recalibrating the norms in brackets; ``-`` where the criterion refused the model."""
    means = table(rows)
    means = means[means.steps == steps]
    cells = {
        (r.criterion, r.cost, r.task): f"{r.val_error:.3f} ({r.recal_val_error:.3f})"
        for r in means.itertuples()
    }
    tasks = list(dict.fromkeys(rows.task))
    settings = list(dict.fromkeys(zip(rows.criterion, rows.cost, strict=True)))
    refs = rows.groupby("task").ref_val_error.mean()
    body = [[f"{c} / {k}", *(cells.get((c, k, t), "-") for t in tasks)] for c, k in settings]
    body.append(["reference", *(f"{refs[t]:.3f}" for t in tasks)])
    return pd.DataFrame(body, columns=["criterion / cost", *tasks])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="chord", help="comma-separated example tasks")
    parser.add_argument("--root", default="runs/quick", help="the quick lottery's runs")
    parser.add_argument("--replicates", default="0", help="comma-separated replicates")
    parser.add_argument("--steps", type=int, default=4, help="steps of 30%%, no training")
    parser.add_argument("--criteria", default=None, help="criterion/cost,... (default: all)")
    parser.add_argument("--out", default=None, help="folder for <task>-step-damage.csv")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES))
    parser.add_argument("--table", default=None, help="print the table of this folder's rows")
    parser.add_argument("--pivot", action="store_true", help="with --table: a task per column")
    args = parser.parse_args(argv)
    if args.table:
        files = sorted(Path(args.table).glob("*-step-damage.csv"))
        rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        if args.pivot:
            for steps in sorted(set(rows.steps)):
                print(f"\nafter {steps} step(s):\n")
                print(pivot(rows, steps).to_markdown(index=False))
        else:
            print(table(rows).to_markdown(index=False))
        return 0
    settings = SETTINGS
    if args.criteria:
        pairs = [item.partition("/") for item in args.criteria.split(",")]
        if any(not sep for _, sep, _ in pairs):
            parser.error(f"--criteria takes criterion/cost pairs, got {args.criteria!r}")
        settings = tuple((criterion, cost) for criterion, _, cost in pairs)
    for task in args.task.split(","):
        if task not in TASKS:
            parser.error(f"unknown task {task!r}; choose from {sorted(TASKS)}")
        rows = []
        for replicate in (int(r) for r in args.replicates.split(",")):
            rows += damage(task, args.root, replicate, args.steps, settings, args.profile)
        frame = pd.DataFrame(rows)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            frame.to_csv(Path(args.out) / f"{task}-step-damage.csv", index=False)
        print(table(frame).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of a trimming lottery against a masking lottery on the same model and data.

Run from the repository root:

    python benchmarks/lottery_cost.py [--task chord] [--size paper] [--levels 10] [--epochs 8]
                                      [--examples 1500] [--threads 1] [--out benchmarks/results]

Both lotteries start from the same initial weights and train on the same synthetic data
(``examples/mir/synth.py``), in the same minibatch order, for the same epochs at every level,
with a validation pass and a lottery step (30%, magnitude, rewind to the weights after the
first epoch) after each level. Trimming removes units, so each level trains a smaller model;
masking zeroes weights but trains the full-size model every level (masks held at dense speed).
The two lotteries run interleaved level by level in one process, so load drift hits both.
The ideal ratio is the mean over levels of the trimmed model's parameter (or MAC) share: what
trimming would cost if training time followed model size exactly. Writes
``lottery_cost.csv`` and ``lottery_cost.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
# the repository's package and examples first
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from _machine import machine  # noqa: E402

import lotterytrim as lt  # noqa: E402
from examples.mir.models import TASKS, build_model  # noqa: E402
from examples.mir.synth import make_dataset  # noqa: E402
from lotterytrim.trimming import masking  # noqa: E402

TARGET = 0.35  # trimming should cost at most this share of masking


@dataclass
class _Lottery:
    """One lottery's model, trimmer and what each level cost."""

    name: str
    model: nn.Module
    trimmer: lt.LotteryTrimmer
    seconds: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    params: list[int] = field(default_factory=list)  # stored (trim) or unmasked (mask)
    macs: list[int] = field(default_factory=list)
    val_error: list[float] = field(default_factory=list)


def _loss_fn(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if TASKS[task].loss == "cross_entropy":
        return F.cross_entropy
    return F.binary_cross_entropy_with_logits


def _error(task: str, out: torch.Tensor, y: torch.Tensor) -> float:
    """Classification error (class targets) or wrong-bin rate (multi-label targets)."""
    if TASKS[task].loss == "cross_entropy":
        return float((out.argmax(1) != y).double().mean())
    return float(((out > 0).float() != (y > 0.5).float()).double().mean())


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    batch: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    model.train()
    for start in range(0, len(order) - batch + 1, batch):  # full batches (batch norm)
        idx = order[start : start + batch]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x[idx]), y[idx]).backward()
        optimizer.step()


def _validate(task: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])
    return _error(task, out, y)


def _macs(model: nn.Module, x: torch.Tensor) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lt.report(model, x, latency=False).macs


def _level(
    lot: _Lottery,
    task: str,
    level: int,
    args: argparse.Namespace,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    orders: list[torch.Tensor],
    last: bool,
) -> None:
    """Train one level (fresh optimizer after the rewind), validate, and step the lottery."""
    xt, yt, xv, yv = data
    loss_fn = _loss_fn(task)
    t0 = time.perf_counter()
    optimizer = torch.optim.SGD(lot.model.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(args.epochs):
        _train_epoch(lot.model, optimizer, xt, yt, orders[epoch], args.batch, loss_fn)
        if level == 0 and epoch == 0:
            lot.trimmer.capture_rewind()  # W_k: rewind to the weights after one epoch
    t_train = time.perf_counter() - t0
    lot.val_error.append(_validate(task, lot.model, xv, yv))
    if not last:
        lot.trimmer.step()
    lot.seconds.append(time.perf_counter() - t0)
    lot.train_seconds.append(t_train)


def _size(lot: _Lottery, x: torch.Tensor) -> None:
    """Record the parameters in use and the MACs of the model about to be trained."""
    total = sum(p.numel() for p in lot.model.parameters())
    if lot.trimmer.method == "mask":
        total -= masking.masked_count(lot.model)
    lot.params.append(total)
    lot.macs.append(_macs(lot.model, x[:1]))


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, float]]:
    """Both lotteries, interleaved level by level; per-level table and the ratios."""
    torch.set_num_threads(args.threads)
    splits = make_dataset(args.task, args.examples, seed=args.seed, size=args.size)
    xt, yt = splits.train.inputs, splits.train.targets
    xv, yv = splits.val.inputs, splits.val.targets
    torch.manual_seed(args.seed)
    base = build_model(args.task, args.size)
    gen = torch.Generator().manual_seed(args.seed)
    orders = [torch.randperm(len(xt), generator=gen) for _ in range(args.epochs)]
    example = xt[:8]
    lotteries = []
    for method in ("mask", "trim"):
        model = copy.deepcopy(base)
        trimmer = lt.LotteryTrimmer(
            model, example, criterion="magnitude", amount=args.amount, method=method
        )
        lotteries.append(_Lottery(method, model, trimmer))
    with tqdm(total=2 * args.levels, unit="level") as bar:
        for level in range(args.levels):
            for lot in lotteries:
                bar.set_postfix_str(f"{lot.name} level {level}")
                _size(lot, example)
                _level(
                    lot, args.task, level, args, (xt, yt, xv, yv), orders, level == args.levels - 1
                )
                bar.update()
    mask, trim = lotteries
    df = pd.DataFrame(
        {
            "level": range(args.levels),
            "trim_params": trim.params,
            "trim_macs": trim.macs,
            "trim_s": trim.seconds,
            "trim_train_s": trim.train_seconds,
            "trim_val_error": trim.val_error,
            "mask_params_unmasked": mask.params,
            "mask_macs": mask.macs,
            "mask_s": mask.seconds,
            "mask_train_s": mask.train_seconds,
            "mask_val_error": mask.val_error,
        }
    )
    df["level_ratio"] = df.trim_s / df.mask_s
    df["params_share"] = df.trim_params / trim.params[0]
    df["macs_share"] = df.trim_macs / trim.macs[0]
    ratios = {
        "measured": float(df.trim_s.sum() / df.mask_s.sum()),
        "measured_training_only": float(df.trim_train_s.sum() / df.mask_train_s.sum()),
        "ideal_params": float(df.params_share.mean()),
        "ideal_macs": float(df.macs_share.mean()),
        # level 0 trains the dense model in both lotteries; later mask levels train it masked
        "masked_vs_dense": float(df.mask_train_s[df.level > 0].mean() / df.mask_train_s[0])
        if len(df) > 1
        else float("nan"),
        "trim_total_s": float(df.trim_s.sum()),
        "mask_total_s": float(df.mask_s.sum()),
    }
    return df, ratios


def _markdown(df: pd.DataFrame, ratios: dict[str, float], header: str) -> str:
    table = pd.DataFrame(
        {
            "level": df.level,
            "trim params": [f"{p / 1e3:,.1f} K" for p in df.trim_params],
            "trim MACs": [f"{m / 1e6:,.2f} M" for m in df.trim_macs],
            "trim s": [f"{s:.1f}" for s in df.trim_s],
            "mask s": [f"{s:.1f}" for s in df.mask_s],
            "trim / mask": [f"{r:.2f}" for r in df.level_ratio],
            "params share": [f"{r:.3f}" for r in df.params_share],
            "MACs share": [f"{r:.3f}" for r in df.macs_share],
            "val error trim": [f"{e:.3f}" for e in df.trim_val_error],
            "val error mask": [f"{e:.3f}" for e in df.mask_val_error],
        }
    )
    met = "met" if ratios["measured"] <= TARGET else "missed"
    summary = pd.DataFrame(
        [
            ("measured: trimming / masking wall time", f"{ratios['measured']:.3f}"),
            ("measured, training loops only", f"{ratios['measured_training_only']:.3f}"),
            ("ideal by parameters kept (mean share over levels)", f"{ratios['ideal_params']:.3f}"),
            ("ideal by MACs kept (mean share over levels)", f"{ratios['ideal_macs']:.3f}"),
            (
                "masked training / dense training, per level (target <= 1.2)",
                f"{ratios['masked_vs_dense']:.3f}",
            ),
            ("trimming lottery total", f"{ratios['trim_total_s']:.1f} s"),
            ("masking lottery total", f"{ratios['mask_total_s']:.1f} s"),
            (f"target <= {TARGET}", met),
        ],
        columns=["figure", "value"],
    )
    return "\n".join(
        [header, "", table.to_markdown(index=False), "", summary.to_markdown(index=False), ""]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="chord", choices=sorted(TASKS))
    ap.add_argument("--size", default="paper", choices=["paper", "quick", "tiny"])
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=8, help="training epochs per level")
    ap.add_argument("--examples", type=int, default=1500, help="synthetic examples (all splits)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--amount", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    before = machine()
    t0 = time.perf_counter()
    df, ratios = run(args)
    command = "python benchmarks/lottery_cost.py " + " ".join(sys.argv[1:])
    header = (
        f"Command: `{command.strip()}`\n\n"
        f"Task `{args.task}`, size `{args.size}`, {args.levels} levels of {args.amount:.0%} "
        f"(magnitude), {args.epochs} epochs per level, batch {args.batch}, SGD lr {args.lr} "
        f"momentum 0.9, {args.examples} synthetic examples, {args.threads} torch thread(s). "
        f"Took {time.perf_counter() - t0:.0f} s.\n\n"
        f"Machine at start: {before}.\n\nMachine at end: {machine()}."
    )
    df.to_csv(args.out / "lottery_cost.csv", index=False, float_format="%.6g")
    text = _markdown(df, ratios, header)
    (args.out / "lottery_cost.md").write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

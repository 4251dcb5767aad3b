"""A trained level measured as a result row: what ``evaluate`` says, the report, the timings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lotterytrim.measure.report import report
from lotterytrim.runner.config import unprunable_modules
from lotterytrim.runner.context import LevelContext, evaluation_row

if TYPE_CHECKING:
    from lotterytrim.runner.lottery import Lottery

__all__ = ["level_row"]


def level_row(
    lottery: Lottery,
    model: nn.Module,
    params: int,
    params0: int,
    ctx: LevelContext,
    train_seconds: float,
    step_seconds: float,
    t0: float,
) -> dict[str, Any]:
    """Evaluate and report one trained level as a row (``t0``: when the level started).

    ``params0`` is the reference's parameter count, of which ``kept`` is the share; the
    cost columns of the whole cell (``total_*``) are the pacing's to add.
    """
    with torch.random.fork_rng(devices=[]):
        outcome = lottery.evaluate(model)
    row: dict[str, Any] = {
        "task": lottery.config.task,
        "method": ctx.method,
        "criterion": ctx.criterion,
        "replicate": ctx.replicate,
        "level": ctx.level,
    }
    row.update(evaluation_row(outcome))
    row.update(ctx.records)
    rep = report(
        model,
        lottery.example_inputs,
        latency=lottery.latency,
        unprunable=unprunable_modules(model, lottery.config.unprunable),
    )
    row.update(
        params=int(params),
        kept=float(params) / float(params0),
        macs=int(rep.macs),
        memory_bytes=int(rep.memory_bytes),
        disk_bytes=int(rep.disk_bytes),
        train_seconds=train_seconds,
        step_seconds=step_seconds,
        train_epochs=ctx.epochs_run,
    )
    if rep.latency_median_s is not None:
        row["latency_ms"] = rep.latency_median_s * 1e3
    row["seconds"] = time.perf_counter() - t0
    return row

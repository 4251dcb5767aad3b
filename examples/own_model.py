"""Train and trim your own model with the experiment runner (``lt.Lottery``): copy this file.

Runs in seconds on a CPU: ``python -m examples.own_model`` (``--help`` for the options).
To use it for your model, change the four functions marked CHANGE: ``make_splits`` (your
data), ``build_model`` (your model), ``train`` (your training loop, one level) and ``evaluate``
(your error), then the constants, ``SETTINGS`` and the ``LotteryConfig`` in :func:`run`. Keep
the functions at module level, so that ``--workers`` can send them to worker processes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

import lotterytrim as lt

LENGTH = 256  # samples per example
EXAMPLES, EPOCHS, BATCH, LR = 480, 4, 32, 3e-3
#: Everything outside the LotteryConfig that changes the results: hashed into the run folder.
SETTINGS = {"examples": EXAMPLES, "epochs": EPOCHS, "batch": BATCH, "lr": LR}


@functools.lru_cache(maxsize=1)
def make_splits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """CHANGE: your train / val / test data. Here: sine, square or sawtooth tones (3 classes)
    at random pitch and level in noise. Cached, so every level (and worker) makes it once."""
    rng = np.random.default_rng(0)
    n = EXAMPLES
    t = np.arange(LENGTH) / 8000.0
    labels = rng.permutation(np.arange(n) % 3)
    phase = (rng.uniform(100, 1000, (n, 1)) * t + rng.uniform(0, 1, (n, 1))) % 1.0
    waves = np.stack([np.sin(2 * np.pi * phase), np.sign(phase - 0.5), 2 * phase - 1])
    x = waves[labels, np.arange(n)] * rng.uniform(0.2, 1.0, (n, 1))
    x = x + rng.normal(0.0, 0.3, (n, LENGTH))
    inputs = torch.from_numpy(x.astype(np.float32)).unsqueeze(1)
    targets = torch.from_numpy(labels)
    cut = [0, n * 6 // 10, n * 8 // 10, n]
    return {
        name: (inputs[a:b], targets[a:b])
        for name, a, b in zip(("train", "val", "test"), cut[:-1], cut[1:], strict=True)
    }


def build_model() -> nn.Module:
    """CHANGE: a fresh, untrained model (the runner seeds torch before calling it)."""
    return nn.Sequential(
        nn.Conv1d(1, 16, 9, stride=2, padding=4),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.MaxPool1d(4),
        nn.Conv1d(16, 32, 5, padding=2),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.MaxPool1d(4),
        nn.Flatten(),
        nn.Linear(32 * (LENGTH // 32), 32),
        nn.ReLU(),
        nn.Linear(32, 3),  # the output layer: never trimmed
    )


def train(model: nn.Module, ctx: lt.LevelContext) -> None:
    """CHANGE: train ``model`` in place for one level. Build the optimizer here, every call:
    trimming replaces the parameters. ``ctx.epochs`` captures the rewind point on schedule."""
    x, y = make_splits()["train"]
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in ctx.epochs(EPOCHS):
        for rows in torch.randperm(len(y)).split(BATCH):
            opt.zero_grad()
            F.cross_entropy(model(x[rows]), y[rows]).backward()
            opt.step()


def _error(model: nn.Module, split: str) -> float:
    """Share of the split's examples that ``model`` gets wrong."""
    x, y = make_splits()[split]
    with torch.no_grad():
        return float((model(x).argmax(1) != y).float().mean())


def evaluate(model: nn.Module) -> dict[str, float]:
    """CHANGE: the errors of a trained level. ``val_error`` chooses models, ``error`` reports."""
    model.eval()
    return {"error": _error(model, "test"), "val_error": _error(model, "val")}


def criterion_batches() -> list[torch.Tensor]:
    """Validation inputs that data-driven criteria (activation, ...) read; magnitude does not."""
    return list(make_splits()["val"][0][:64].split(32))


def run(root: str = "runs", levels: int = 3, workers: int = 1) -> pd.DataFrame:
    """Run (or resume: finished levels are read back) the lottery; returns one row per level."""
    config = lt.LotteryConfig(
        task="own_model",
        levels=levels,  # each level removes `amount` of the remaining weights, then retrains
        amount=0.3,
        replicates=1,
        methods=("trim", "finetune"),  # trim: rewind to W_k and retrain; finetune: keep weights
        criteria=("magnitude",),
    )
    example = make_splits()["val"][0][:2]
    lottery = lt.Lottery(
        build_model,
        example,
        train,
        evaluate,
        config,
        data=criterion_batches,
        settings=SETTINGS,
        root=root,
        progress=False,
    )
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(lt.process_pool(workers)) if workers > 1 else None
        return lottery.run(pool)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lottery and print its rows and the models ``lt.pick_models`` chooses."""
    parser = argparse.ArgumentParser(prog="python -m examples.own_model", description=__doc__)
    parser.add_argument("--root", default="runs", help="folder of the run directories")
    parser.add_argument("--levels", type=int, default=3, help="trimming levels (default 3)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the fastest for a small model; workers get one thread each too
    results = run(args.root, args.levels, args.workers)
    print(results[["method", "level", "params", "val_error", "error"]].to_string(index=False))
    picks = lt.pick_models(results)  # reference, best, smallest, optimal: on val_error
    print(picks[["model", "method", "level", "params", "val_error", "error"]].to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Probe one task's quick reference under changed settings: its time, epochs and errors.

Sizing a task's quick lottery to the machine starts with its reference: how long an epoch
takes, when the validation curve flattens, and where it ends. This trains replicate 0's
reference only (no level), in its own run directory, with some profile fields changed:

    python -m benchmarks.reference_probe --task drum --set lr=0.003
    python -m benchmarks.reference_probe --task pitch --set examples=4000 --set lr=0.002 \\
        --capacity 1

``--set FIELD=VALUE`` changes a field of the quick profile (per-task fields change only the
task's value); ``--capacity`` changes CREPE's width multiplier at the quick size (pitch). The
validation curve is printed per epoch by the runner; the last line sums the probe up.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from types import MappingProxyType

import torch

from examples.mir.models import TASKS, SizeSpec
from examples.mir.profiles import PROFILES, Profile
from examples.mir.run import run_task


def changed_profile(task: str, settings: Sequence[str]) -> Profile:
    """The quick profile with ``FIELD=VALUE`` changes, one replicate and no level."""
    return PROFILES["quick"].with_settings(settings, [task]).override(replicates=1, levels=0)


def set_capacity(task: str, capacity: int) -> None:
    """Change the builder's ``capacity`` argument of ``task`` at the quick size, in place."""
    old = TASKS[task].sizes["quick"]
    if "capacity" not in old.model_kwargs:
        raise SystemExit(f"task {task!r} has no capacity argument")
    kwargs = MappingProxyType({**old.model_kwargs, "capacity": capacity})
    sizes = TASKS[task].sizes
    assert isinstance(sizes, dict), "the task table holds its sizes in a dict"
    sizes["quick"] = SizeSpec(kwargs, old.input_shape, old.sample_rate)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.reference_probe", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--task", required=True, choices=list(TASKS))
    parser.add_argument("--set", action="append", default=[], help="FIELD=VALUE")
    parser.add_argument("--capacity", type=int, default=None, help="CREPE width multiplier")
    parser.add_argument("--root", default="runs/probe")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.capacity is not None:
        set_capacity(args.task, args.capacity)
    profile = changed_profile(args.task, args.set)
    start = time.perf_counter()
    rows, lottery, _ = run_task(args.task, profile, args.root, progress=False)
    ref = rows[rows.level == 0].iloc[0]
    print(
        f"probe {args.task} {' '.join(args.set)} capacity={args.capacity}: "
        f"{time.perf_counter() - start:.0f} s, {int(ref.epochs)} epochs (best "
        f"{int(ref.best_epoch) + 1}), {ref.train_seconds / ref.epochs:.1f} s per epoch, "
        f"val error {ref.val_error:.3f}, test error {ref.error:.3f}; {lottery.directory}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How far repeated trimming steps can go under a floor of original units.

A floor (``lt.Safeguards(keep_floor=...)``) keeps a share of every layer's units, so a lottery
of fixed-share steps eventually removes less than it asks. This steps each example model
(quick size, untrained: the floor's bound depends on the architecture, not the weights) with
30% steps until a step falls short, and prints the level and the share of weights left.

    python -m benchmarks.floor_depth --floors 0.05,0.25
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd
import torch

import lotterytrim as lt
from examples.mir.models import TASKS, build_model, example_input


def depth(task: str, floor: float, amount: float = 0.3, levels: int = 20) -> dict[str, object]:
    """Step ``task``'s quick model until a step falls short; the level and the share kept."""
    torch.manual_seed(0)
    model = build_model(task, "quick")
    x = example_input(task, "quick", batch=2)
    total = sum(p.numel() for p in model.parameters())
    guard = lt.Safeguards(keep_floor=floor)
    trimmer = lt.LotteryTrimmer(model, x, amount=amount, method="finetune", safeguards=guard)
    short = None
    for level in range(1, levels + 1):
        if trimmer.step().shortfall:
            short = level
            break
    kept = sum(p.numel() for p in trimmer.model.parameters()) / total
    return {"task": task, "keep_floor": floor, "first short level": short, "kept": round(kept, 4)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floors", default="0.05,0.25", help="comma-separated keep_floor values")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated example tasks")
    parser.add_argument("--levels", type=int, default=20, help="most steps tried")
    args = parser.parse_args(argv)
    rows = [
        depth(task, float(floor), levels=args.levels)
        for floor in args.floors.split(",")
        for task in args.tasks.split(",")
    ]
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

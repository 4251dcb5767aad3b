"""Training speed of masked models: dense, lotterytrim's masks, and torch.nn.utils.prune's hooks.

    python -m benchmarks.mask_speed [--tasks instrument,chord,onset] [--steps 20] [--rounds 3]

For each example model (quick size), three copies train on the same random batch with Adam:
the dense model, the model with half its conv/linear weights masked by lotterytrim
(``method="mask"``'s masks), and the same masks applied with ``prune.custom_from_mask``. The
copies take turns round by round, so load drift hits all three; the ratio to dense is what
counts. Writes ``mask_speed.md`` / ``.csv`` next to the other results.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import prune

from examples.mir.models import build_model, example_input
from lotterytrim.trimming import masking

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine  # noqa: E402


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=2e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def measure(task: str, batch: int, steps: int, rounds: int) -> dict[str, float | str]:
    """Seconds of ``steps`` training steps per variant, summed over ``rounds``."""
    torch.manual_seed(0)
    model = build_model(task, "quick")
    x = example_input(task, "quick", batch)
    with torch.no_grad():
        y = torch.randint(0, model(x).shape[1], (batch,))
    masks = masking.global_magnitude_masks(model, 0.5)
    dense, ours, hooks = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    masking.apply_masks(ours, masks)
    for name, (module, attr) in masking.maskable(hooks).items():
        prune.custom_from_mask(module, attr, masks[name])
    seconds = {"dense": 0.0, "lotterytrim masks": 0.0, "prune hooks": 0.0}
    for _ in range(rounds):
        for key, m in zip(seconds, (dense, ours, hooks), strict=True):
            seconds[key] += _train(m, x, y, steps)
    zeros = all(
        bool(torch.all(mod.get_parameter("weight_orig")[masks[n] == 0] == 0))
        for n, (mod, _) in masking.maskable(ours).items()
    )
    return {
        "task": task,
        "batch": batch,
        **{k: round(v, 2) for k, v in seconds.items()},
        "masks / dense": round(seconds["lotterytrim masks"] / seconds["dense"], 3),
        "prune hooks / dense": round(seconds["prune hooks"] / seconds["dense"], 3),
        "masked weights still zero": zeros,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mask_speed", description=__doc__)
    parser.add_argument("--tasks", default="instrument,chord,onset")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/mask_speed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    before = machine()
    rows = [measure(t, args.batch, args.steps, args.rounds) for t in args.tasks.split(",")]
    table = pd.DataFrame(rows)
    out = Path(args.out)
    table.to_csv(out.with_suffix(".csv"), index=False)
    text = (
        f"Command: `python -m benchmarks.mask_speed --tasks {args.tasks} --batch {args.batch} "
        f"--steps {args.steps} --rounds {args.rounds}`\n\nMachine at start: {before}\n\n"
        f"Machine at end: {machine()}\n\n{table.to_markdown(index=False)}\n"
    )
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does each step of a lottery remove the share of parameters it asks for, on transformers?

Steps every transformer of the test zoo (random initial weights, magnitude criterion, default
selection) through a lottery of fixed-share steps and prints, per step, the share asked, the
share removed, the units each group lost and the step's ``shortfall``; then, per model, the
widths left; after every step, how far the trimmed model's output is from the original with
the removed units zeroed (the masked original, within 1e-5 counts as equal). Run from the
repository root:

    python benchmarks/transformer_budget.py --residual rank,last,keep

``--residual default`` runs the safeguards as they are (for a version without the option).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from helpers import masked_copy, randomize_norms  # noqa: E402
from zoo_models import TRANSFORMERS, ZOO, ZooCase, clone  # noqa: E402

import lotterytrim as lt  # noqa: E402
from lotterytrim.calls import run_model, tensor_leaves  # noqa: E402


def _params(model: nn.Module) -> int:
    """Parameters of a model, shared tensors counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _widths(model: nn.Module) -> tuple[int, int, int]:
    """Attention heads (all layers), residual width (first norm) and feed-forward width."""
    heads, ffn = 0, 0
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            heads += m.num_heads
        elif isinstance(getattr(m, "num_heads", None), int):
            heads += m.num_heads
        if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in ("linear1", "fc1", "up"):
            ffn += m.out_features
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    return heads, int(norms[-1].normalized_shape[0]), ffn


def _masked_gap(trimmed: nn.Module, original: nn.Module, plan: Any, x: Any) -> float:
    """Largest absolute difference between the trimmed model and the masked original."""
    masked = masked_copy(original, plan)
    with torch.no_grad():
        got = tensor_leaves(run_model(trimmed.eval(), x))
        want = tensor_leaves(run_model(masked.eval(), x))
    return max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))


def _guard(mode: str) -> lt.Safeguards:
    """The default safeguards with ``residual`` set to ``mode`` (as they are for "default")."""
    if mode == "default":
        return lt.Safeguards()
    return dataclasses.replace(lt.Safeguards(), residual=mode)


def run(
    case: ZooCase, mode: str, steps: int, amount: float, split: bool = False
) -> tuple[list[str], str]:
    """Step rows and the summary row of one model under one ``residual`` mode; ``split``
    first rewrites its ``nn.MultiheadAttention`` layers with ``lt.split_attention``."""
    torch.manual_seed(0)
    model, x = randomize_norms(case.build(), 0).eval(), case.inputs()
    if split:
        lt.split_attention(model)
    original = clone(model)
    n0 = _params(model)
    trimmer = lt.LotteryTrimmer(model, x, amount=amount, method="lrr", safeguards=_guard(mode))
    rows, misses, exact = [], [], 0
    name = f"{case.name} (split)" if split else case.name
    for level in range(1, steps + 1):
        res = trimmer.step()
        misses.append(res.achieved - amount)
        gap = _masked_gap(model, original, trimmer.plan, x)
        exact += gap <= 1e-5
        cut = ", ".join(f"{g} -{n}" for g, n in res.removed_units.items() if n) or "-"
        why = (res.shortfall or "-").partition(": ")[2] or res.shortfall or "-"
        rows.append(
            f"| {name} | {mode} | {level} | {amount:.0%} | {res.achieved:.1%} | "
            f"{_params(model) / n0:.1%} | {cut} | {gap:.1e} | {why[:110]} |"
        )
    heads, width, ffn = _widths(model)
    worst = max(misses, key=abs)
    within = sum(abs(m) <= 0.02 for m in misses)
    summary = (
        f"| {name} | {mode} | {_params(model) / n0:.1%} | {within} of {steps} | "
        f"{worst:+.1%} | {heads} | {width} | {ffn} | {exact} of {steps} |"
    )
    return rows, summary


def main(argv: Sequence[str] | None = None) -> int:
    """Print the step table and the summary table as markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residual", default="rank,last,keep", help="comma-separated modes")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--amount", type=float, default=0.3)
    parser.add_argument("--models", default=",".join(sorted(TRANSFORMERS)))
    parser.add_argument(
        "--split", action="store_true", help="split nn.MultiheadAttention first (as well)"
    )
    args = parser.parse_args(argv)
    names = args.models.split(",")
    cases = [c for c in ZOO if c.name in names]
    step_rows, summary = [], []
    for mode in args.residual.split(","):
        for case in cases:
            for split in (False, True) if args.split else (False,):
                rows, line = run(case, mode, args.steps, args.amount, split)
                step_rows += rows
                summary.append(line)
    print(
        "| model | residual | step | asked | removed | kept | units cut per group "
        "| max abs(trimmed - masked) | why (shortfall) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    print("\n".join(step_rows))
    print()
    print(
        "| model | residual | kept | steps within 2 points | worst miss | heads | residual "
        "width | feed-forward | steps equal to the masked original |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

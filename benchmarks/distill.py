"""Distillation from the reference on an example task: ``+kd`` lotteries at chosen temperatures
and weights, beside the quick lottery's own rows.

Each setting is a lottery in its own run directory (the temperature and weight are hashed)
of a method with and without distillation (``finetune,finetune+kd`` by default), so that both
start from the same references and the comparison is paired, replicate by replicate.

    python -m benchmarks.distill --task instrument --settings 2:0.7 --replicates 1 \\
        --root runs/kd --out results/retraining --workers 2
    python -m benchmarks.distill --table results/retraining --rows results/quick

The first writes ``results/retraining/<task>-kd.csv`` (one row per method, setting, replicate
and level, with ``kd_temperature`` and ``kd_weight``) after each setting; finished levels are
read back from their run directory, not retrained. The second prints, per task, the validation
error per level of each method and setting, with means over the trimmed levels. A file holding
``+kd`` rows only (a screen run with ``--methods finetune+kd``) is set beside the quick rows of
the same replicates instead, which is paired only where the references are the quick run's.
To pair such a run afterwards, run the plain method alone from its references into the same
rows file (its own run directory; ``--methods trim --references-from runs/kd/<task>-<hash>``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

import lotterytrim as lt
from examples.mir.models import TASKS
from examples.mir.profiles import PROFILES, Profile
from examples.mir.references import adopt_from_cli
from examples.mir.run import build_lottery

KEYS = ["task", "method", "kd_temperature", "kd_weight", "replicate", "level"]


def settings_of(text: str) -> list[tuple[float, float]]:
    """``"2:0.7,4:0.9"`` as [(temperature, weight), ...]."""
    pairs = []
    for item in text.split(","):
        temperature, _, weight = item.partition(":")
        try:
            pairs.append((float(temperature), float(weight)))
        except ValueError:
            raise SystemExit(f"--settings wants TEMPERATURE:WEIGHT pairs, got {item!r}") from None
    return pairs


def profile_for(
    methods: tuple[str, ...], temperature: float, weight: float, replicates: int, name: str
) -> Profile:
    """Profile ``name`` running ``methods`` at one distillation setting."""
    base = PROFILES[name].override(methods=methods, replicates=replicates)
    return base.with_settings([f"kd_temperature={temperature}", f"kd_weight={weight}"], list(TASKS))


def run(args: argparse.Namespace) -> None:
    """Run (or read back) every setting and write the task's rows after each."""
    out = Path(args.out) / f"{args.task}-kd.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    methods = tuple(m.strip() for m in args.methods.split(","))
    for temperature, weight in settings_of(args.settings):
        profile = profile_for(methods, temperature, weight, args.replicates, args.profile)
        lottery, _ = build_lottery(args.task, profile, args.root, progress=False)
        if args.references_from is not None:
            copied = adopt_from_cli(args.references_from, lottery, args.replicates)
            print(f"{copied} trained reference(s) copied from {args.references_from}")
        with contextlib.ExitStack() as stack:
            executor = None
            if args.workers > 1:
                executor = stack.enter_context(lt.process_pool(args.workers))
            results = lottery.run(executor=executor)
        rows = results.assign(kd_temperature=temperature, kd_weight=weight)
        if out.exists():
            rows = pd.concat([pd.read_csv(out), rows], ignore_index=True)
        rows = rows.drop_duplicates(KEYS, keep="last").sort_values(KEYS)
        rows.to_csv(out, index=False)
        print(f"T={temperature} w={weight}: {len(rows)} rows in {out}")


def table(folder: Path, quick: Path) -> str:
    """Per task, the validation error per level of each setting beside the quick rows'
    methods, with the mean validation and test error over the trimmed levels; settings are
    grouped by the replicates they ran, and the quick rows are read for those only."""
    parts = []
    for path in sorted(folder.glob("*-kd.csv")):
        kd = pd.read_csv(path)
        task = str(kd.task.iloc[0])
        named = zip(kd.method, kd.kd_temperature, kd.kd_weight, strict=True)
        kd["setting"] = [f"{m} T={t:g} w={w:g}" if "+kd" in m else m for m, t, w in named]
        plain = ~kd.method.str.contains("+kd", regex=False)
        if plain.any():  # the same method without distillation, from the same references
            base, kd = kd[plain].drop_duplicates(["method", "replicate", "level"]), kd[~plain]
        else:
            base = pd.read_csv(quick / f"{task}.csv").assign(
                setting=lambda d: d.method + " (quick)"
            )
        sets = kd.groupby("setting").replicate.agg(lambda r: tuple(sorted(set(r))))
        for replicates in sorted(set(sets)):
            chosen = kd[kd.setting.isin(sets[sets == replicates].index)]
            both = pd.concat([base[base.replicate.isin(replicates)], chosen], ignore_index=True)
            val = both.groupby(["setting", "level"]).val_error.mean().unstack("level").round(3)
            trimmed = both[both.level > 0].groupby("setting")
            val["mean val"] = trimmed.val_error.mean().round(4)
            val["mean test"] = trimmed.error.mean().round(4)
            reps = ", ".join(map(str, replicates))
            parts.append(
                f"{task}, replicate(s) {reps}: validation error per level (0: "
                "the reference); mean validation and test error over levels 1-6\n"
            )
            parts.append(val.to_markdown() + "\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Run settings of one task, or print the tables of the committed rows."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.distill", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--task", choices=list(TASKS))
    parser.add_argument("--settings", default="2:0.7", help="TEMPERATURE:WEIGHT, comma-separated")
    parser.add_argument("--methods", default="finetune,finetune+kd", help="comma-separated")
    parser.add_argument("--workers", type=int, default=1, help="cells at once (processes)")
    parser.add_argument("--replicates", type=int, default=1)
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    parser.add_argument("--root", default="runs/kd")
    parser.add_argument("--out", default="results/retraining")
    parser.add_argument(
        "--references-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="a run directory of the task whose trained references every setting starts from",
    )
    parser.add_argument("--table", default=None, help="print the tables of this rows folder")
    parser.add_argument("--rows", default="results/quick", help="the quick lottery's rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as the example runner: one thread per process, in and out of workers
    if args.table:
        print(table(Path(args.table), Path(args.rows)))
        return 0
    if args.task is None:
        parser.error("--task is needed to run settings")
    if "+kd" not in args.methods and args.references_from is None:
        parser.error(
            f"--methods must include one that distils (+kd), got {args.methods!r}; plain "
            "methods alone run only beside a distilled run, from its --references-from"
        )
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
